"""Pure transforms that turn landing lines into typed, classified prediction records.

Every input line ends in exactly one place: a loadable row (`reason` null) or a quarantine row with
the first rule it broke as `reason` and its raw text.

Types are strict, as the format's JSON Schema says: each line is parsed once as VARIANT, which keeps
JSON's types, so a quoted "1.5" is a string (never a number), a boolean is true/false only, and an
object where a string belongs is a type mismatch, never its JSON text. A line that is not valid
UTF-8, longer than the maximum record size, holds a duplicate key or a NaN/Infinity token is
quarantined with its own reason; an unknown top-level field too (the format allows none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.frames import require_columns
from skewless.core.jsonrules import NON_FINITE, has_duplicate_key, is_number, variant_type
from skewless.core.names import FeatureType
from skewless.serving.logformat import SPARK_RFC3339, feature_statuses

SPARK_TYPES: dict[str, T.DataType] = {
    "numeric": T.DoubleType(), "categorical": T.StringType(), "boolean": T.BooleanType(),
}
TOP_FIELDS = (N.SCHEMA_VERSION, N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.ENTITY, N.FEATURES, N.FEATURE_STATUS,
              N.PREDICTION, N.SAMPLE_RATE, N.CONTEXT)
DEFAULT_MAX_RECORD_BYTES = 1 << 20

# The format's shape as a Spark schema: for readers that want one (the benchmark's baseline).
RAW_SCHEMA = T.StructType([
    T.StructField(N.SCHEMA_VERSION, T.StringType()),
    T.StructField(N.REQUEST_ID, T.StringType()),
    T.StructField(N.LOGGED_AT, T.StringType()),
    T.StructField(N.MODEL, T.StructType([T.StructField("name", T.StringType()),
                                         T.StructField("version", T.StringType())])),
    T.StructField(N.ENTITY, T.MapType(T.StringType(), T.StringType())),
    T.StructField(N.FEATURES, T.MapType(T.StringType(), T.StringType())),
    T.StructField(N.FEATURE_STATUS, T.MapType(T.StringType(), T.StringType())),
    T.StructField(N.PREDICTION, T.MapType(T.StringType(), T.StringType())),
    T.StructField(N.SAMPLE_RATE, T.StringType()),
    T.StructField(N.CONTEXT, T.MapType(T.StringType(), T.StringType())),
    T.StructField(N.CORRUPT, T.StringType()),
])

LINE_COLUMNS = (N.RAW_VALUE, N.SOURCE_FILE, N.SPLIT_START, N.ROW_ID, N.LANDING_HOUR)
_UNPARSED = "_unparsed"  # a placeholder reason between classify_lines and explain_unparsed
_SEP = "\u0001"          # joins names and values into one string, so no lambda is needed
_OBJECT_FIELDS = (N.MODEL, N.ENTITY, N.FEATURES, N.FEATURE_STATUS, N.PREDICTION, N.CONTEXT)


@dataclass(frozen=True)
class ParseRules:
    """What a record is checked against: the hour it landed in and the typed feature columns."""

    landing_hour: datetime
    late_tolerance: timedelta
    future_tolerance: timedelta
    features: Mapping[str, FeatureType]
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


def type_ok(vtype: Column, ftype: FeatureType) -> Column:
    """The JSON type a feature of `ftype` may hold (JSON null always: a missing value is data)."""
    ok = {"numeric": is_number(vtype), "boolean": vtype == "BOOLEAN", "categorical": vtype == "STRING"}[ftype]
    return ok | (vtype == "VOID")


def typed_value(value: Column, ftype: FeatureType) -> Column:
    """A feature's VARIANT as its Spark type when its JSON type is right, else null."""
    return F.when(type_ok(variant_type(value), ftype), F.try_variant_get(value, "$", SPARK_TYPES[ftype].simpleString()))


def _string_map(value: Column) -> tuple[Column, Column]:
    """(map<string,string>, ok): an object whose values are all strings (or null), as the format wants
    for entity and context. The check reads the value's type signature: no per-entry lambda."""
    vtype = variant_type(value)
    ok = vtype.isNull() | (vtype == "VOID") | (vtype.startswith("OBJECT<") & ~vtype.rlike(": (?!STRING|VOID)[A-Z]"))
    return F.try_variant_get(value, "$", "map<string,string>"), ok


def first_true(conditions: list[tuple[Column, Column | str]]) -> Column:
    """The label of the first true condition, else null (the reason precedence)."""
    expr: Column | None = None
    for cond, label in conditions:
        lab = F.lit(label) if isinstance(label, str) else label
        expr = F.when(cond, lab) if expr is None else expr.when(cond, lab)
    return expr if expr is not None else F.lit(None).cast("string")


def parse_lines(lines: DataFrame, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DataFrame:
    """Lines -> lines plus `_parsed`, the top-level object as map<string,variant> (null when the line is
    too large, not UTF-8, not JSON or not an object: `explain_unparsed` says which)."""
    require_columns(lines, LINE_COLUMNS, "parse_lines")
    value = F.col(N.RAW_VALUE)
    parseable = (F.octet_length(value) <= max_record_bytes) & F.is_valid_utf8(value)
    top = F.when(parseable, F.try_variant_get(F.try_parse_json(value), "$", "map<string,variant>"))
    return lines.select(*LINE_COLUMNS, top.alias(N.PARSED))


def classify(parsed: DataFrame, rules: ParseRules) -> DataFrame:
    """Parsed lines -> one row per line with `reason` (null when loadable) and typed columns."""
    return explain_unparsed(classify_lines(parsed, rules))


_VALUES, _MAP = "_feature_values", "_feature_map"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _feature_columns(rules: ParseRules) -> list[Column]:
    """The first projection: the declared features' VARIANTs read out of the object in one pass (a
    struct of variants, matched by exact name like a map lookup), whether each one's JSON type is
    right, and the object as a map for the undeclared-name check. A projection of its own, so each
    is computed once per row: inside a CASE WHEN, Spark evaluates a shared conversion again for
    every branch."""
    top = F.col(N.PARSED)
    values = (F.try_variant_get(top[N.FEATURES], "$", "struct<" + ", ".join(
        f"{_quoted(n)}: variant" for n in rules.features) + ">") if rules.features else F.lit(None))
    return [*map(F.col, LINE_COLUMNS), top.alias(N.PARSED), values.alias(_VALUES),
            *[type_ok(variant_type(F.col(_VALUES)[n]), t).alias(f"_ok{i}")
              for i, (n, t) in enumerate(rules.features.items())],
            F.try_variant_get(top[N.FEATURES], "$", "map<string,variant>").alias(_MAP)]


def _converted_columns(rules: ParseRules) -> list[Column]:
    top = F.col(N.PARSED)
    feats = F.col(_MAP)
    values = {n: (F.col(_VALUES)[n], F.col(f"_ok{i}")) for i, n in enumerate(rules.features)}
    model = F.try_variant_get(top[N.MODEL], "$", "map<string,variant>")
    prediction = F.try_variant_get(top[N.PREDICTION], "$", "map<string,variant>")
    entity, entity_ok = _string_map(top[N.ENTITY])
    context, context_ok = _string_map(top[N.CONTEXT])
    known = F.array(*[F.lit(n) for n in rules.features]) if rules.features else F.array().cast("array<string>")
    statuses = F.try_variant_get(top[N.FEATURE_STATUS], "$", "map<string,string>")
    scalars = {name: top[name] for name in (N.SCHEMA_VERSION, N.REQUEST_ID, N.LOGGED_AT, N.SAMPLE_RATE)}
    return [
        *map(F.col, LINE_COLUMNS), top.isNull().alias("_unparsed"),
        F.array_except(F.map_keys(top), F.array(*map(F.lit, TOP_FIELDS))).alias("_unknown_fields"),
        *[variant_type(v).alias(f"_t_{k}") for k, v in scalars.items()],
        *[variant_type(top[k]).alias(f"_t_{k}") for k in (N.MODEL, N.FEATURE_STATUS, N.PREDICTION)],
        # An object's type string is long: only a features value that is not an object needs one.
        F.when(feats.isNotNull(), F.lit("OBJECT<")).otherwise(variant_type(top[N.FEATURES])).alias(f"_t_{N.FEATURES}"),
        F.try_variant_get(scalars[N.SCHEMA_VERSION], "$", "double").alias(N.SCHEMA_VERSION),
        F.try_variant_get(scalars[N.REQUEST_ID], "$", "string").alias(N.REQUEST_ID),
        F.try_variant_get(scalars[N.LOGGED_AT], "$", "string").alias("_logged_at_text"),
        F.struct(*[F.when(variant_type(model[k]) == "STRING", F.try_variant_get(model[k], "$", "string")).alias(k)
                   for k in ("name", "version")]).alias(N.MODEL),
        *[(~F.coalesce(variant_type(model[k]), F.lit("VOID")).isin("STRING", "VOID")).alias(f"_bad_model_{k}")
          for k in ("name", "version")],
        entity.alias(N.ENTITY), entity_ok.alias("_entity_ok"),
        context.alias(N.CONTEXT), context_ok.alias("_context_ok"),
        F.struct(*[F.when(values[n][1], F.try_variant_get(values[n][0], "$", SPARK_TYPES[t].simpleString()))
                   .alias(n) for n, t in rules.features.items()]).alias(N.FEATURES),
        *[(~values[n][1]).alias(f"_bad_{n}") for n in rules.features],
        # The whole map is kept for the rare row with undeclared features; they are picked out later.
        F.when(F.size(F.array_except(F.map_keys(feats), known)) > 0, feats).alias(N.EXTRA_FEATURES),
        statuses.alias(N.FEATURE_STATUS),
        F.array_except(F.map_values(statuses), F.array(*map(F.lit, feature_statuses()))).alias("_bad_statuses"),
        F.try_variant_get(top[N.PREDICTION], "$", "map<string,string>").alias("_prediction"),
        variant_type(prediction[N.SCORE]).alias("_t_score"),
        F.try_variant_get(prediction[N.SCORE], "$", "double").alias(N.SCORE),
        F.try_variant_get(scalars[N.SAMPLE_RATE], "$", "double").alias(N.SAMPLE_RATE),
    ]


def classify_lines(parsed: DataFrame, rules: ParseRules) -> DataFrame:
    """`classify`, except that a line that did not parse has the reason `_unparsed` until
    `explain_unparsed` says why. Persist in between: the explanation parses those few lines again.

    Three projections, so each conversion and the reason run once per row, and no higher-order
    function (a lambda) appears: those switch whole-stage code generation off for the projection.
    """
    require_columns(parsed, (*LINE_COLUMNS, N.PARSED), "classify")
    converted = parsed.select(*_feature_columns(rules)).select(*_converted_columns(rules))
    ts = F.try_to_timestamp(F.col("_logged_at_text"), F.lit(SPARK_RFC3339))
    reasoned = converted.withColumn(N.LOGGED_AT, ts).select("*", _reason(rules).alias(N.REASON))
    value = F.col(N.RAW_VALUE)
    return reasoned.select(
        N.REASON,
        # Also for rows with undeclared features: a later step may reject those (bad name, limit).
        F.when(F.col(N.REASON).isNotNull() | F.col(N.EXTRA_FEATURES).isNotNull(), F.make_valid_utf8(value))
        .alias(N.RAW_TEXT),
        F.when(F.col(N.REASON).isNull(), F.xxhash64(value)).alias(N.RECORD_HASH),
        (F.octet_length(value) + 1).alias(N.LINE_BYTES),
        N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.ENTITY, N.FEATURES, N.EXTRA_FEATURES, N.FEATURE_STATUS,
        F.struct(F.col(N.SCORE).alias(N.SCORE), F.col("_prediction").alias(N.OUTPUTS)).alias(N.PREDICTION),
        N.SAMPLE_RATE, N.CONTEXT, N.LANDING_HOUR, N.SOURCE_FILE, N.SPLIT_START, N.ROW_ID,
    )


def explain_unparsed(classified: DataFrame) -> DataFrame:
    """Replace the reason `_unparsed` by why the line did not parse. Only those lines pay for it."""
    require_columns(classified, (N.REASON, N.RAW_TEXT), "explain_unparsed")
    text = F.col(N.RAW_TEXT)
    unparsed = F.col(N.REASON) == _UNPARSED
    whole = F.when(unparsed, F.try_parse_json(text))
    why = (F.when(whole.isNull() & text.rlike(NON_FINITE), N.NON_FINITE_NUMBER)
           .when(whole.isNull() & has_duplicate_key(text, _OBJECT_FIELDS), N.DUPLICATE_KEY)
           .when(whole.isNull(), N.MALFORMED_JSON)
           .otherwise(N.NOT_AN_OBJECT))
    return classified.withColumn(N.REASON, F.when(unparsed, why).otherwise(F.col(N.REASON)))


def _bad_status_name() -> Column:
    """The first feature whose status is not in the enum (a JSON null included), never null itself."""
    statuses, bad = F.col(N.FEATURE_STATUS), F.col("_bad_statuses")
    values = F.split(F.array_join(F.map_values(statuses), _SEP, "\u0002null"), _SEP)
    at = F.array_position(values, F.coalesce(F.get(bad, 0), F.lit("\u0002null")))
    # get(): null when out of range (ANSI `[]` would fail; common subexpressions run on every row).
    return F.coalesce(F.get(F.map_keys(statuses), at - 1), F.lit("?"))


def _reason(rules: ParseRules) -> Column:
    """The first rule a converted row breaks, in order; null when it breaks none."""
    value, ts = F.col(N.RAW_VALUE), F.col(N.LOGGED_AT)
    hour = F.lit(rules.landing_hour).cast("timestamp")
    earliest = hour - F.expr(f"INTERVAL {int(rules.late_tolerance.total_seconds())} SECONDS")
    latest = hour + F.expr(f"INTERVAL {3600 + int(rules.future_tolerance.total_seconds())} SECONDS")
    rate = F.col(N.SAMPLE_RATE)
    absent = {k: F.col(f"_t_{k}").isNull() | (F.col(f"_t_{k}") == "VOID")
              for k in (N.SCHEMA_VERSION, N.REQUEST_ID, N.LOGGED_AT, N.SAMPLE_RATE, N.MODEL, "score")}
    not_object = {k: ~absent.get(k, F.col(f"_t_{k}").isNull() | (F.col(f"_t_{k}") == "VOID"))
                  & ~F.col(f"_t_{k}").startswith("OBJECT<") for k in (N.MODEL, N.FEATURES, N.FEATURE_STATUS,
                                                                        N.PREDICTION)}
    # A line that parsed was valid UTF-8, not too large and not blank (`parse_lines`): only unparsed
    # lines pay for scanning (and, for the blank check, copying) the whole text again.
    unparsed = F.col("_unparsed")
    return first_true([
        (unparsed & (F.octet_length(value) > rules.max_record_bytes), N.RECORD_TOO_LARGE),
        (unparsed & ~F.is_valid_utf8(value), N.INVALID_UTF8),
        (unparsed & (F.btrim(value, F.lit(" \t\r")) == ""), N.EMPTY_RECORD),
        (unparsed, _UNPARSED),
        (F.size("_unknown_fields") > 0, F.concat(F.lit(f"{N.UNKNOWN_FIELD}:"), F.get(F.col("_unknown_fields"), 0))),
        (absent[N.SCHEMA_VERSION] | (F.col(N.SCHEMA_VERSION) != 1) | ~is_number(F.col(f"_t_{N.SCHEMA_VERSION}")),
         N.UNSUPPORTED_SCHEMA_VERSION),
        (absent[N.REQUEST_ID], N.MISSING_REQUEST_ID),
        (F.col(f"_t_{N.REQUEST_ID}") != "STRING", f"{N.TYPE_MISMATCH}:{N.REQUEST_ID}"),
        (F.trim(N.REQUEST_ID) == "", N.MISSING_REQUEST_ID),
        (absent[N.LOGGED_AT], N.MISSING_LOGGED_AT),
        (F.col(f"_t_{N.LOGGED_AT}") != "STRING", f"{N.TYPE_MISMATCH}:{N.LOGGED_AT}"),
        (ts.isNull(), N.BAD_TIMESTAMP),
        ((ts < earliest) | (ts >= latest), N.OUT_OF_RANGE_TIMESTAMP),
        (not_object[N.MODEL] | F.col("_bad_model_name") | F.col("_bad_model_version"), f"{N.TYPE_MISMATCH}:{N.MODEL}"),
        (F.col(N.MODEL)["name"].isNull() | F.col(N.MODEL)["version"].isNull(), N.MISSING_MODEL),
        (not_object[N.PREDICTION], f"{N.TYPE_MISMATCH}:{N.PREDICTION}"),
        (absent["score"], N.MISSING_SCORE),
        (~is_number(F.col("_t_score")), f"{N.TYPE_MISMATCH}:{N.PREDICTION}.{N.SCORE}"),
        (absent[N.SAMPLE_RATE], N.MISSING_SAMPLE_RATE),
        (~is_number(F.col(f"_t_{N.SAMPLE_RATE}")), f"{N.TYPE_MISMATCH}:{N.SAMPLE_RATE}"),
        ((rate <= 0) | (rate > 1), N.BAD_SAMPLE_RATE),
        (~F.col("_entity_ok"), f"{N.TYPE_MISMATCH}:{N.ENTITY}"),
        (~F.col("_context_ok"), f"{N.TYPE_MISMATCH}:{N.CONTEXT}"),
        (not_object[N.FEATURE_STATUS], f"{N.TYPE_MISMATCH}:{N.FEATURE_STATUS}"),
        (F.size("_bad_statuses") > 0, F.concat(F.lit(f"{N.BAD_FEATURE_STATUS}:"), _bad_status_name())),
        (not_object[N.FEATURES], f"{N.TYPE_MISMATCH}:{N.FEATURES}"),
        *[(F.col(f"_bad_{n}"), f"{N.TYPE_MISMATCH}:{n}") for n in rules.features],
    ])
