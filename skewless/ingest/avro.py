"""Pure transforms for log format v2: records Spark's Avro source read -> the same classified rows as
v1's `classify_lines`, so dedup, the privacy step, the quarantine and the audit are shared.

Avro's types replace v1's JSON type checks: a record that reached a v2 file is typed by its writer
schema. What is left to check per record is what a type cannot say (a blank request id, a timestamp
outside the landing hour's window, a sample rate outside (0, 1], a non-finite number, a feature whose
writer type is not the warehouse's) and what the file's schema check decided for all its records.
A record's raw text, kept only when it is quarantined or carries an undeclared feature, is its JSON
rendering; its position is its file and 1-based record index.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.frames import require_columns
from skewless.ingest.avroschema import WriterSchema
from skewless.ingest.parse import SPARK_TYPES, ParseRules, first_true
from skewless.serving.logformat import feature_statuses

POSITION_COLUMNS = (N.SOURCE_FILE, N.SPLIT_START, N.ROW_ID, N.LANDING_HOUR)


def _any(conditions: list[Column]) -> Column:
    # An OR chain, not exists(array, lambda): a higher-order function switches code generation off.
    return reduce(or_, conditions, F.lit(False))


def _finite(x: Column) -> Column:
    return ~(F.isnan(x) | x.isin(float("inf"), float("-inf")))


def _col(writer: WriterSchema, name: str, cast: str) -> Column:
    return F.col(name) if name in writer.fields else F.lit(None).cast(cast)


def classify_avro(records: DataFrame, rules: ParseRules, writer: WriterSchema) -> DataFrame:
    """Avro records of one writer schema -> `classify_lines`' columns, a reason per record (null: loadable)."""
    require_columns(records, (*POSITION_COLUMNS, *writer.fields), "classify_avro")
    feats = {n: t for n, t in writer.features.items()}
    extra = [n for n in feats if n not in rules.features]
    fcol = {n: F.col(f"{N.FEATURES}.{n}") for n in feats}
    declared = F.struct(*[
        (fcol[n].cast(SPARK_TYPES[t].simpleString()) if feats.get(n) == t else F.lit(None).cast(SPARK_TYPES[t]))
        .alias(n) for n, t in rules.features.items()])
    # Undeclared features as v1 has them (name -> VARIANT), only on records where one holds a value.
    extras = (F.when(_any([fcol[n].isNotNull() for n in extra]),
                     F.map_from_arrays(F.array(*map(F.lit, extra)),
                                       F.array(*[_as_variant(fcol[n], feats[n]) for n in extra])))
              if extra else F.lit(None).cast("map<string,variant>"))
    score = F.col(f"{N.PREDICTION}.{N.SCORE}").cast("double") if N.PREDICTION in writer.fields \
        else F.lit(None).cast("double")
    outputs = (F.col(f"{N.PREDICTION}.{N.OUTPUTS}") if N.PREDICTION in writer.fields
               and "outputs" in records.schema[N.PREDICTION].dataType.fieldNames()  # type: ignore[attr-defined]
               else F.lit(None).cast("map<string,string>"))
    converted = records.select(
        *POSITION_COLUMNS,
        _col(writer, N.REQUEST_ID, "string").alias(N.REQUEST_ID),
        _col(writer, N.LOGGED_AT, "timestamp").alias(N.LOGGED_AT),
        (F.struct(F.col(f"{N.MODEL}.name").alias("name"), F.col(f"{N.MODEL}.version").alias("version"))
         if N.MODEL in writer.fields else F.lit(None).cast("struct<name:string,version:string>")).alias(N.MODEL),
        F.coalesce(_col(writer, N.ENTITY, "map<string,string>"), F.create_map().cast("map<string,string>"))
        .alias(N.ENTITY),
        declared.alias(N.FEATURES), extras.alias(N.EXTRA_FEATURES),
        _col(writer, N.FEATURE_STATUS, "map<string,string>").alias(N.FEATURE_STATUS),
        F.struct(score.alias(N.SCORE), outputs.alias(N.OUTPUTS)).alias(N.PREDICTION),
        _col(writer, N.SAMPLE_RATE, "double").cast("double").alias(N.SAMPLE_RATE),
        _col(writer, N.CONTEXT, "map<string,string>").alias(N.CONTEXT),
        # The record as read; rendered as JSON only for the rows that keep their raw text (below).
        F.struct(*[F.col(c) for c in writer.fields]).alias("_record"),
        F.xxhash64(F.lit(0), *[_hashable(records.schema[c].dataType, F.col(c)) for c in writer.fields])
        .alias(N.RECORD_HASH),
        *[(fcol[n].isNotNull() & (F.lit(feats[n] != t))).alias(f"_bad_{n}") for n, t in rules.features.items()
          if n in feats],
        *[(fcol[n].isNotNull() & ~_finite(fcol[n].cast("double"))).alias(f"_nonfinite_{n}") for n in feats
          if feats[n] == "numeric"],
    )
    reason = _reason(rules, writer, feats)
    return converted.select(
        reason.alias(N.REASON), N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.ENTITY, N.FEATURES, N.EXTRA_FEATURES,
        N.FEATURE_STATUS, N.PREDICTION, N.SAMPLE_RATE, N.CONTEXT, N.RECORD_HASH, "_record", *POSITION_COLUMNS,
    ).select(
        N.REASON,
        F.when(F.col(N.REASON).isNotNull() | F.col(N.EXTRA_FEATURES).isNotNull(),
               F.to_json(F.col("_record"))).alias(N.RAW_TEXT),
        F.when(F.col(N.REASON).isNull(), F.col(N.RECORD_HASH)).alias(N.RECORD_HASH),
        F.lit(1).cast("long").alias(N.LINE_BYTES),  # for a v2 file, units read are records (core.accounting)
        N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.ENTITY, N.FEATURES, N.EXTRA_FEATURES, N.FEATURE_STATUS,
        N.PREDICTION, N.SAMPLE_RATE, N.CONTEXT, N.LANDING_HOUR, N.SOURCE_FILE, N.SPLIT_START, N.ROW_ID,
    )


def _hashable(dtype: T.DataType, value: Column) -> Column:
    """A value xxhash64 accepts: maps (unordered, not hashable) as their sorted entries, also in structs."""
    if isinstance(dtype, T.MapType):
        # sort_array, not array_sort: the same order for entries (keys are never null), and code
        # generation stays on (array_sort is a higher-order function, which switches it off).
        return F.sort_array(F.map_entries(value))
    if isinstance(dtype, T.StructType):
        return F.struct(*[_hashable(f.dataType, value[f.name]).alias(f.name) for f in dtype.fields])
    return value


def _as_variant(value: Column, ftype: str | None) -> Column:
    """A typed value as the VARIANT v1 would have parsed: numbers, strings, booleans; another type is
    its JSON text as a string, which no feature type accepts (a type mismatch, as in v1)."""
    if ftype is None:
        return F.variant_get(F.parse_json(F.to_json(F.struct(value.alias("v")))), "$.v", "variant")
    return value.cast("variant")


def _reason(rules: ParseRules, writer: WriterSchema, feats: Mapping[str, str | None]) -> Column:
    if writer.reason is not None:
        return F.lit(writer.reason)
    ts, rate, score = F.col(N.LOGGED_AT), F.col(N.SAMPLE_RATE), F.col(N.PREDICTION)[N.SCORE]
    hour = F.lit(rules.landing_hour).cast("timestamp")
    earliest = hour - F.expr(f"INTERVAL {int(rules.late_tolerance.total_seconds())} SECONDS")
    latest = hour + F.expr(f"INTERVAL {3600 + int(rules.future_tolerance.total_seconds())} SECONDS")
    statuses = F.col(N.FEATURE_STATUS)
    bad_status = F.array_except(F.coalesce(F.map_values(statuses), F.array().cast("array<string>")),
                                F.array(*map(F.lit, feature_statuses())))
    status_rule = [] if writer.status_enum else [  # an enum cannot hold a bad status: no check, no lambda
        (F.size(bad_status) > 0, F.concat(F.lit(f"{N.BAD_FEATURE_STATUS}:"), _first_key_with(statuses, bad_status)))]
    nonfinite = [F.col(f"_nonfinite_{n}") for n in feats if feats[n] == "numeric"]
    return first_true([
        (F.col(N.REQUEST_ID).isNull() | (F.trim(N.REQUEST_ID) == ""), N.MISSING_REQUEST_ID),
        (ts.isNull(), N.MISSING_LOGGED_AT),
        ((ts < earliest) | (ts >= latest), N.OUT_OF_RANGE_TIMESTAMP),
        (F.col(N.MODEL)["name"].isNull() | F.col(N.MODEL)["version"].isNull(), N.MISSING_MODEL),
        (score.isNull(), N.MISSING_SCORE),
        (rate.isNull(), N.MISSING_SAMPLE_RATE),
        (~_finite(score) | ~_finite(rate) | _any(nonfinite), N.NON_FINITE_NUMBER),
        ((rate <= 0) | (rate > 1), N.BAD_SAMPLE_RATE),
        *status_rule,
        *[(F.col(f"_bad_{n}"), f"{N.TYPE_MISMATCH}:{n}") for n in rules.features if n in feats],
    ])


def _first_key_with(statuses: Column, bad: Column) -> Column:
    """The feature whose status is the first bad one (a string map of statuses: the enum cannot be bad)."""
    keys = F.map_keys(F.map_filter(statuses, lambda _k, v: v == F.get(bad, 0)))
    return F.coalesce(F.get(keys, 0), F.lit("?"))
