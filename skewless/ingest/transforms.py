"""Hourly compaction: landing JSON lines -> Delta `feature_logs`, `feature_logs_quarantine`, `ingestion_audit`.

    skewless compact --hour 2026-11-25T13          (or --date 2026-11-25 for every landed hour)
    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/compact.py --hour 2026-11-25T13

A landing hour is the unit of work. Its rows carry `landing_hour`; a run replaces exactly the rows of
its landing hour in one Delta commit per table (`replaceWhere`), so a rerun converges and a killed run
leaves the previous commit visible. The audit row is written last: a run without one did not finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.frames import require_columns
from skewless.core.names import FeatureType
from skewless.ingest.parse import SPARK_TYPES, typed_text

_FIRST = "_first_row"
_PART = "_input_partition"


def first_records(classified: DataFrame) -> DataFrame:
    """Per (input partition, file): the row id of the file's first line in that partition, and the
    bytes of text read from it (to compare with what the file says it holds)."""
    require_columns(classified, (N.ROW_ID, N.SOURCE_FILE, N.SPLIT_START, N.LINE_BYTES), "first_records")
    return classified.groupBy(F.shiftright(N.ROW_ID, 33).alias(_PART), N.SOURCE_FILE).agg(
        F.min(N.ROW_ID).alias(_FIRST), F.min(N.SPLIT_START).alias(N.SPLIT_START),
        F.sum(N.LINE_BYTES).alias(N.LINE_BYTES))


def bytes_read_per_file(firsts: DataFrame) -> DataFrame:
    """(source_file, bytes): uncompressed bytes of text Spark returned for each file (small)."""
    return firsts.groupBy(N.SOURCE_FILE).agg(F.sum(N.LINE_BYTES).alias("bytes"))


def truncated_files(read_bytes: Mapping[str, int], gzip_sizes: Mapping[str, int]) -> list[str]:
    """Gzip files whose trailer (uncompressed size mod 2^32) disagrees with the text read from them:
    a cut upload, read up to the cut. A last line without a newline counts one byte short, so allow it."""
    return sorted(path for path, expected in gzip_sizes.items()
                  if not (0 <= (read_bytes.get(path, 0) % 2**32) - expected <= 1))


def with_source_lines(classified: DataFrame, firsts: DataFrame) -> DataFrame:
    """Add the 1-based line number in the source file (null for a file Spark split mid-way)."""
    require_columns(firsts, (_PART, N.SOURCE_FILE, _FIRST, N.SPLIT_START), "with_source_lines")
    keyed = classified.drop(N.SPLIT_START).withColumn(_PART, F.shiftright(N.ROW_ID, 33))
    joined = keyed.join(F.broadcast(firsts), on=[_PART, N.SOURCE_FILE], how="left")
    line = F.when(F.col(N.SPLIT_START) == 0, F.col(N.ROW_ID) - F.col(_FIRST) + 1).cast("long")
    return joined.withColumn(N.SOURCE_LINE, line).drop(_FIRST, N.SPLIT_START, _PART)


def run_stats(classified: DataFrame) -> DataFrame:
    """Counts per (reason, event hour, model), and the member names of each logged object among
    loadable rows (the privacy policy must cover every one): small enough to collect."""
    loadable = F.col(N.REASON).isNull()
    members = {N.ENTITY: F.col(N.ENTITY), N.CONTEXT: F.col(N.CONTEXT),
               N.PREDICTION: F.col(N.PREDICTION)[N.OUTPUTS]}
    return classified.groupBy(
        F.col(N.REASON), F.date_trunc("hour", N.LOGGED_AT).alias("hour"), F.col(N.MODEL)["name"].alias("model"),
    ).agg(F.count(F.lit(1)).alias("n"),
          # Sets of key lists: rows of one source share a few shapes, so the sets stay tiny.
          *[F.collect_set(F.when(loadable, F.array_sort(F.map_keys(m)))).alias(f"{name}_members")
            for name, m in members.items()])


def members_seen(stats: list[Any]) -> dict[str, set[str]]:
    """Union of the member names per logged object over run_stats rows."""
    out: dict[str, set[str]] = {}
    for name in (N.ENTITY, N.CONTEXT, N.PREDICTION):
        out[name] = {k for r in stats for keys in (r[f"{name}_members"] or []) for k in keys}
    return out


def feature_sightings(classified: DataFrame) -> DataFrame:
    """What the values of each undeclared feature parse as, among loadable rows:
    (name, values, numeric, boolean) counts of non-null values."""
    require_columns(classified, (N.REASON, N.EXTRA_FEATURES, N.FEATURES), "feature_sightings")
    valid = classified.where(F.col(N.REASON).isNull() & F.col(N.EXTRA_FEATURES).isNotNull())
    struct = classified.schema[N.FEATURES].dataType
    known = [f.name for f in struct.fields] if isinstance(struct, T.StructType) else []
    exploded = valid.select(F.explode(N.EXTRA_FEATURES).alias("name", "text")).where(
        F.col("text").isNotNull() & ~F.col("name").isin(*known))
    return exploded.groupBy("name").agg(
        F.count(F.lit(1)).alias("values"),
        F.count(F.col("text").try_cast("double")).alias("numeric"),
        F.count_if(F.lower("text").isin("true", "false")).alias("boolean"),
    )


def infer_feature_types(sightings: list[tuple[str, int, int, int]]) -> dict[str, FeatureType]:
    """A new feature's column type from its values: all numeric -> numeric, all true/false ->
    boolean, anything else (strings, or a mix) -> categorical, kept as text rather than lost.
    A feature seen only as null waits for a run where it has a value."""
    out: dict[str, FeatureType] = {}
    for name, values, numeric, boolean in sorted(sightings):
        if values == 0:
            continue
        out[name] = "numeric" if numeric == values else "boolean" if boolean == values else "categorical"
    return out


def to_feature_logs(rows: DataFrame, new_features: Mapping[str, FeatureType], run_id: str,
                    ingested_at: datetime) -> DataFrame:
    """Loadable rows -> the feature_logs contract, new features appended to the features struct."""
    require_columns(rows, (N.REASON, N.FEATURES, N.EXTRA_FEATURES, N.SOURCE_LINE, N.RECORD_HASH), "to_feature_logs")
    extra = F.col(N.EXTRA_FEATURES)
    features: Column = F.col(N.FEATURES)
    if new_features:
        features = F.struct(F.col(f"{N.FEATURES}.*"),
                            *[typed_text(extra[n], t).alias(n) for n, t in new_features.items()])
    return rows.where(F.col(N.REASON).isNull()).select(
        N.REQUEST_ID, N.LOGGED_AT, F.lit(1).alias(N.SCHEMA_VERSION), N.MODEL, N.ENTITY,
        features.alias(N.FEATURES), N.FEATURE_STATUS, N.PREDICTION, N.SAMPLE_RATE, N.CONTEXT,
        F.to_date(N.LOGGED_AT).alias(N.EVENT_DATE), F.hour(N.LOGGED_AT).alias(N.EVENT_HOUR),
        N.LANDING_HOUR, N.SOURCE_FILE, N.SOURCE_LINE, N.RECORD_HASH,
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT),
    )


def duplicate_rows(classified: DataFrame, existing_ids: DataFrame) -> DataFrame:
    """(_row_id, _dup_kind) of every loadable row that is not kept: `in_run` for a repeat of a request
    id in this run, `existing` when the id is already in the table. The survivor is the earliest
    logged, then the first in file order. Only narrow columns are shuffled; the result is small."""
    require_columns(classified, (N.REASON, N.REQUEST_ID, N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID), "duplicate_rows")
    require_columns(existing_ids, (N.REQUEST_ID,), "duplicate_rows(existing_ids)")
    narrow = classified.where(F.col(N.REASON).isNull()).select(N.REQUEST_ID, N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID)
    order = Window.partitionBy(N.REQUEST_ID).orderBy(N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID)
    ranked = narrow.withColumn("_rank", F.row_number().over(order))
    known = existing_ids.select(N.REQUEST_ID).dropDuplicates([N.REQUEST_ID]).withColumn("_exists", F.lit(True))
    joined = ranked.join(known, on=N.REQUEST_ID, how="left")
    kind = (F.when(F.col("_rank") > 1, F.lit(N.DUP_IN_RUN))
            .when(F.col("_exists"), F.lit(N.DUP_EXISTING)))
    return joined.select(N.ROW_ID, kind.alias(N.DUP_KIND)).where(F.col(N.DUP_KIND).isNotNull())


def drop_rows(rows: DataFrame, row_ids: DataFrame) -> DataFrame:
    """Rows whose `_row_id` is not in `row_ids` (small: broadcast, so the wide side never shuffles)."""
    return rows.join(F.broadcast(row_ids.select(N.ROW_ID)), on=N.ROW_ID, how="left_anti")


def to_quarantine(rows: DataFrame, run_id: str, ingested_at: datetime) -> DataFrame:
    require_columns(rows, (N.REASON, N.RAW_TEXT, N.SOURCE_LINE), "to_quarantine")
    return rows.where(F.col(N.REASON).isNotNull()).select(
        F.to_date(N.LANDING_HOUR).alias(N.LANDING_DATE), N.LANDING_HOUR, N.SOURCE_FILE, N.SOURCE_LINE,
        N.REASON, N.REQUEST_ID, N.RAW_TEXT,
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT),
    )


def feature_types_of(schema_features: list[tuple[str, str]]) -> dict[str, FeatureType]:
    """Table struct fields (name, simpleString type) -> feature types."""
    by_spark = {t.simpleString(): k for k, t in SPARK_TYPES.items()}
    return {name: by_spark[t] for name, t in schema_features}  # type: ignore[misc]
