"""Pure transforms that turn landing lines into typed, classified prediction records.

Every input line ends in exactly one place: a loadable row (`reason` null) or a quarantine row with
the first rule it broke as `reason` and its raw text.

Feature values are read as JSON text (`map<string,string>`) and converted with `try_cast`: a numeric
feature must hold something a double parses from (a number, or a numeric string such as "1.5"), a
boolean feature true/false. Reading them as VARIANT would tell a quoted "1.5" from 1.5, but costs
~40% more per record on the hot path; the quoted case is rare and loses no information.
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
from skewless.core.names import FeatureType
from skewless.serving.logformat import SPARK_RFC3339, feature_statuses

SPARK_TYPES: dict[str, T.DataType] = {
    "numeric": T.DoubleType(), "categorical": T.StringType(), "boolean": T.BooleanType(),
}
_OBJECT_FIELDS = (N.MODEL, N.ENTITY, N.FEATURES, N.FEATURE_STATUS, N.PREDICTION, N.CONTEXT)

# The explicit read schema (never inferred). Scalars are read as JSON text and converted afterwards,
# so a wrong type is reported per field instead of nulling the record; `_corrupt` catches lines that
# are not JSON or whose objects are not objects.
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


@dataclass(frozen=True)
class ParseRules:
    """What a record is checked against: the hour it landed in and the typed feature columns."""

    landing_hour: datetime
    late_tolerance: timedelta
    future_tolerance: timedelta
    features: Mapping[str, FeatureType]


def json_type(value: Column) -> Column:
    """The JSON type of a VARIANT value: 'VOID' for null, 'STRING', 'DOUBLE', 'OBJECT<...>', ..."""
    return F.schema_of_variant(value)


def typed_text(text: Column, ftype: FeatureType) -> Column:
    """A feature's JSON text as its Spark type; null when it does not convert (or JSON null)."""
    if ftype == "categorical":
        return text
    return text.try_cast(SPARK_TYPES[ftype])


def _first(conditions: list[tuple[Column, Column | str]]) -> Column:
    """The label of the first true condition, else null (the reason precedence)."""
    expr: Column | None = None
    for cond, label in conditions:
        lab = F.lit(label) if isinstance(label, str) else label
        expr = F.when(cond, lab) if expr is None else expr.when(cond, lab)
    return expr if expr is not None else F.lit(None).cast("string")


def parse_lines(lines: DataFrame) -> DataFrame:
    """Lines -> lines plus the parsed struct `_parsed` (explicit schema, permissive)."""
    require_columns(lines, LINE_COLUMNS, "parse_lines")
    opts = {"columnNameOfCorruptRecord": N.CORRUPT, "mode": "PERMISSIVE"}
    return lines.select(*LINE_COLUMNS, F.from_json(N.RAW_VALUE, RAW_SCHEMA, opts).alias(N.PARSED))


def classify(parsed: DataFrame, rules: ParseRules) -> DataFrame:
    """Parsed lines -> one row per line with `reason` (null when loadable) and typed columns."""
    return explain_unparsed(classify_lines(parsed, rules))


def classify_lines(parsed: DataFrame, rules: ParseRules) -> DataFrame:
    """`classify`, except that a line from_json could not fully convert has the reason `_unparsed`
    until `explain_unparsed` says why. Persist in between: the explanation re-reads the few such
    lines as VARIANT, and in the same projection as the rules its code made the generated methods
    too large for the JIT to compile (measured on 1M lines, warm: 17 s instead of 12 s).

    Three projections, so each conversion and the reason run once per row, and no higher-order
    function (a lambda) appears: those switch whole-stage code generation off for the projection.
    """
    require_columns(parsed, (*LINE_COLUMNS, N.PARSED), "classify")
    p = F.col(N.PARSED)
    feats = p[N.FEATURES]
    typed = {n: typed_text(feats[n], t).alias(n) for n, t in rules.features.items()}
    known = F.array(*[F.lit(n) for n in rules.features]) if rules.features else F.array().cast("array<string>")
    converted = parsed.select(
        *LINE_COLUMNS, p[N.CORRUPT].alias(N.CORRUPT), p[N.SCHEMA_VERSION].alias(N.SCHEMA_VERSION),
        p[N.REQUEST_ID].alias(N.REQUEST_ID), p[N.LOGGED_AT].alias("_logged_at_text"),
        F.try_to_timestamp(p[N.LOGGED_AT], F.lit(SPARK_RFC3339)).alias(N.LOGGED_AT),
        F.struct(p[N.MODEL]["name"].alias("name"), p[N.MODEL]["version"].alias("version")).alias(N.MODEL),
        p[N.ENTITY].alias(N.ENTITY), F.struct(*typed.values()).alias(N.FEATURES),
        # The whole map is kept for the rare row with undeclared features; they are picked out later.
        F.when(F.size(F.array_except(F.map_keys(feats), known)) > 0, feats).alias(N.EXTRA_FEATURES),
        p[N.FEATURE_STATUS].alias(N.FEATURE_STATUS),
        F.array_except(F.map_values(p[N.FEATURE_STATUS]), F.array(*map(F.lit, feature_statuses())))
        .alias("_bad_statuses"),
        p[N.PREDICTION].alias("_prediction"), typed_text(p[N.PREDICTION][N.SCORE], "numeric").alias(N.SCORE),
        p[N.SAMPLE_RATE].alias("_rate_text"), typed_text(p[N.SAMPLE_RATE], "numeric").alias(N.SAMPLE_RATE),
        p[N.CONTEXT].alias(N.CONTEXT),
        *[(feats[n].isNotNull() & typed_text(feats[n], t).isNull()).alias(f"_bad_{n}")
          for n, t in rules.features.items() if t != "categorical"],
    )
    reasoned = converted.select("*", _reason(rules).alias(N.REASON))
    value = F.col(N.RAW_VALUE)
    return reasoned.select(
        N.REASON,
        F.when(F.col(N.REASON).isNotNull(), value).alias(N.RAW_TEXT),
        F.when(F.col(N.REASON).isNull(), F.xxhash64(value)).alias(N.RECORD_HASH),
        (F.octet_length(value) + 1).alias(N.LINE_BYTES),
        N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.ENTITY, N.FEATURES, N.EXTRA_FEATURES, N.FEATURE_STATUS,
        F.struct(F.col(N.SCORE).alias(N.SCORE), F.col("_prediction").alias(N.OUTPUTS)).alias(N.PREDICTION),
        N.SAMPLE_RATE, N.CONTEXT, N.LANDING_HOUR, N.SOURCE_FILE, N.SPLIT_START, N.ROW_ID,
    )


def explain_unparsed(classified: DataFrame) -> DataFrame:
    """Replace the reason `_unparsed` by why from_json could not convert the line: not JSON, not an
    object, or which object field holds something else. Only those lines are re-read (as VARIANT)."""
    require_columns(classified, (N.REASON, N.RAW_TEXT), "explain_unparsed")
    unparsed = F.col(N.REASON) == _UNPARSED
    # Inside the CASE, so only the rare unparsed line pays for the second parse.
    whole = F.when(unparsed, F.try_parse_json(F.col(N.RAW_TEXT)))
    wrong_object = _first([
        (~json_type(F.try_variant_get(whole, f"$.{name}", "variant")).startswith("OBJECT")
         & ~F.is_variant_null(F.try_variant_get(whole, f"$.{name}", "variant")),
         f"{N.TYPE_MISMATCH}:{name}")
        for name in _OBJECT_FIELDS
    ])
    why = (F.when(whole.isNull(), N.MALFORMED_JSON)
           .when(~json_type(whole).startswith("OBJECT"), N.NOT_AN_OBJECT)
           .otherwise(F.coalesce(wrong_object, F.lit(f"{N.TYPE_MISMATCH}:unknown"))))
    return classified.withColumn(N.REASON, F.when(unparsed, why).otherwise(F.col(N.REASON)))


def _reason(rules: ParseRules) -> Column:
    """The first rule a converted row breaks, in order; null when it breaks none."""
    value, ts = F.col(N.RAW_VALUE), F.col(N.LOGGED_AT)
    hour = F.lit(rules.landing_hour).cast("timestamp")
    earliest = hour - F.expr(f"INTERVAL {int(rules.late_tolerance.total_seconds())} SECONDS")
    latest = hour + F.expr(f"INTERVAL {3600 + int(rules.future_tolerance.total_seconds())} SECONDS")
    statuses, bad = F.col(N.FEATURE_STATUS), F.col("_bad_statuses")
    bad_status_name = F.map_keys(statuses)[F.array_position(F.map_values(statuses), bad[0]) - 1]
    rate = F.col(N.SAMPLE_RATE)
    checkable = [n for n, t in rules.features.items() if t != "categorical"]
    return _first([
        (F.trim(value) == "", N.EMPTY_RECORD),
        (F.col(N.CORRUPT).isNotNull(), _UNPARSED),
        (F.col(N.SCHEMA_VERSION).isNull() | (F.col(N.SCHEMA_VERSION) != "1"), N.UNSUPPORTED_SCHEMA_VERSION),
        (F.col(N.REQUEST_ID).isNull() | (F.trim(N.REQUEST_ID) == ""), N.MISSING_REQUEST_ID),
        (F.col("_logged_at_text").isNull(), N.MISSING_LOGGED_AT),
        (ts.isNull(), N.BAD_TIMESTAMP),
        ((ts < earliest) | (ts >= latest), N.OUT_OF_RANGE_TIMESTAMP),
        (F.col(N.MODEL)["name"].isNull() | F.col(N.MODEL)["version"].isNull(), N.MISSING_MODEL),
        (F.col("_prediction")[N.SCORE].isNull(), N.MISSING_SCORE),
        (F.col(N.SCORE).isNull(), f"{N.TYPE_MISMATCH}:{N.PREDICTION}.{N.SCORE}"),
        (F.col("_rate_text").isNull(), N.MISSING_SAMPLE_RATE),
        (rate.isNull(), f"{N.TYPE_MISMATCH}:{N.SAMPLE_RATE}"),
        ((rate <= 0) | (rate > 1), N.BAD_SAMPLE_RATE),
        (F.size(bad) > 0, F.concat(F.lit(f"{N.BAD_FEATURE_STATUS}:"), bad_status_name)),
        *[(F.col(f"_bad_{n}"), f"{N.TYPE_MISMATCH}:{n}") for n in checkable],
    ])
