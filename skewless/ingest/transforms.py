"""Hourly compaction: landing JSON lines -> Delta `feature_logs`, `feature_logs_quarantine`, `ingestion_audit`.

    skewless compact --hour 2026-11-25T13          (or --date 2026-11-25 for every landed hour)
    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/compact.py --hour 2026-11-25T13

A landing hour is the unit of work. Its rows carry `landing_hour`; a run replaces exactly the rows of
its landing hour in one Delta commit per table (`replaceWhere`), so a rerun converges and a killed run
leaves the previous commit visible. The audit row is written last: a run without one did not finish.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.frames import require_columns
from skewless.core.jsonrules import is_number, variant_type
from skewless.core.names import FeatureType
from skewless.core.paths import AVRO_SUFFIX
from skewless.ingest.parse import SPARK_TYPES, type_ok, typed_value

_FIRST = "_first_row"
_LINES = "_lines"
_OFFSET = "_line_offset"


def first_records(classified: DataFrame) -> DataFrame:
    """Per file split (source_file, split start): the row id of its first line, its line count, and
    the bytes of text read from it (to compare with what the file says it holds). Row ids are
    consecutive within a split: a split is read whole, in order, by one task."""
    require_columns(classified, (N.ROW_ID, N.SOURCE_FILE, N.SPLIT_START, N.LINE_BYTES), "first_records")
    return classified.groupBy(N.SOURCE_FILE, N.SPLIT_START).agg(
        F.min(N.ROW_ID).alias(_FIRST), F.count(F.lit(1)).alias(_LINES), F.sum(N.LINE_BYTES).alias(N.LINE_BYTES))


def bytes_read_per_file(firsts: DataFrame) -> DataFrame:
    """(source_file, bytes): uncompressed bytes of text Spark returned for each file (small)."""
    return firsts.groupBy(N.SOURCE_FILE).agg(F.sum(N.LINE_BYTES).alias("bytes"))


def with_source_lines(classified: DataFrame, firsts: DataFrame) -> DataFrame:
    """Add the 1-based line number in the source file, also in a file Spark read as several splits
    (a line belongs to the split it starts in: the lines of the splits before it come first)."""
    require_columns(firsts, (N.SOURCE_FILE, N.SPLIT_START, _FIRST, _LINES), "with_source_lines")
    before = Window.partitionBy(N.SOURCE_FILE).orderBy(N.SPLIT_START).rowsBetween(Window.unboundedPreceding, -1)
    offsets = firsts.select(N.SOURCE_FILE, N.SPLIT_START, _FIRST,
                            F.coalesce(F.sum(_LINES).over(before), F.lit(0)).alias(_OFFSET))
    joined = classified.join(F.broadcast(offsets), on=[N.SOURCE_FILE, N.SPLIT_START], how="left")
    line = (F.col(_OFFSET) + F.col(N.ROW_ID) - F.col(_FIRST) + 1).cast("long")
    return joined.withColumn(N.SOURCE_LINE, line).drop(_FIRST, N.SPLIT_START, _OFFSET)


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
    """The JSON types the values of each undeclared feature hold, among loadable rows:
    (name, values, numeric, boolean, string) counts of non-null values (small: one row per name)."""
    require_columns(classified, (N.REASON, N.EXTRA_FEATURES, N.FEATURES), "feature_sightings")
    valid = classified.where(F.col(N.REASON).isNull() & F.col(N.EXTRA_FEATURES).isNotNull())
    struct = classified.schema[N.FEATURES].dataType
    known = [f.name for f in struct.fields] if isinstance(struct, T.StructType) else []
    exploded = valid.select(F.explode(N.EXTRA_FEATURES).alias("name", "value")).where(~F.col("name").isin(*known))
    vtype = variant_type(F.col("value"))
    return exploded.groupBy("name").agg(
        F.count_if(vtype != "VOID").alias("values"), F.count_if(is_number(vtype)).alias("numeric"),
        F.count_if(vtype == "BOOLEAN").alias("boolean"), F.count_if(vtype == "STRING").alias("string"),
    )


def reject_extras(classified: DataFrame, new_features: Mapping[str, FeatureType],
                  rejected: Mapping[str, str]) -> DataFrame:
    """Quarantine the loadable rows that carry a rejected undeclared feature (`rejected`: name ->
    reason) or a new feature's value of another JSON type than the one it was added with."""
    require_columns(classified, (N.REASON, N.EXTRA_FEATURES), "reject_extras")
    if not new_features and not rejected:
        return classified
    extra = F.col(N.EXTRA_FEATURES)
    conditions: list[tuple[Column, Column]] = []
    if rejected:
        names = sorted(rejected)
        hits = F.array_intersect(F.map_keys(extra), F.array(*map(F.lit, names)))
        reasons = F.create_map(*[F.lit(x) for n in names for x in (n, f"{rejected[n]}:{n}")])
        conditions.append((F.size(hits) > 0, F.element_at(reasons, F.get(hits, 0))))
    for name, ftype in new_features.items():
        conditions.append((~type_ok(variant_type(extra[name]), ftype), F.lit(f"{N.TYPE_MISMATCH}:{name}")))
    why: Column | None = None
    for cond, label in conditions:
        why = F.when(cond, label) if why is None else why.when(cond, label)
    assert why is not None
    loadable = F.col(N.REASON).isNull() & extra.isNotNull()
    reason = F.when(loadable, why).otherwise(F.col(N.REASON))
    # classify_lines kept the raw text of every row with undeclared features: a rejected one has it.
    return classified.withColumn(N.REASON, reason)


@dataclass(frozen=True)
class FeatureLimits:
    """How far one run may grow the features struct: past these, records are quarantined, not the hour failed."""

    new_per_run: int = 20
    per_table: int = 500


FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def decide_features(sightings: list[tuple[str, int, int, int, int]], existing: list[str],
                    limits: FeatureLimits) -> tuple[dict[str, FeatureType], dict[str, str]]:
    """Undeclared features seen in a run -> (new columns and their types, rejected names -> reason).

    A name must be an identifier (letters, digits, `_`) that differs from every other feature by more
    than case: anything else cannot be a Delta column, or would make two. The type is the JSON type
    most values hold (ties: numeric, then boolean, then string); values of another type are type
    mismatches. A feature seen only as null waits for a run where it has a value. The most frequent
    names come first within the limits; the rest are rejected as `feature_limit`."""
    taken = {n.lower() for n in existing}
    lowered: dict[str, int] = {}
    for name, *_ in sightings:
        lowered[name.lower()] = lowered.get(name.lower(), 0) + 1
    new: dict[str, FeatureType] = {}
    rejected: dict[str, str] = {}
    room = max(0, min(limits.new_per_run, limits.per_table - len(existing)))
    for name, values, numeric, boolean, string in sorted(sightings, key=lambda s: (-s[1], s[0])):
        if not FEATURE_NAME.match(name) or name.lower() in taken or lowered[name.lower()] > 1:
            rejected[name] = N.BAD_FEATURE_NAME
        elif values == 0:
            continue
        elif len(new) >= room:
            rejected[name] = N.FEATURE_LIMIT
        else:
            ranked: list[tuple[int, int, FeatureType]] = [
                (numeric, 2, "numeric"), (boolean, 1, "boolean"), (string, 0, "categorical")]
            new[name] = max(ranked)[2]
    return new, rejected


def to_feature_logs(rows: DataFrame, new_features: Mapping[str, FeatureType], run_id: str,
                    ingested_at: datetime) -> DataFrame:
    """Loadable rows -> the feature_logs contract, new features appended to the features struct."""
    require_columns(rows, (N.REASON, N.FEATURES, N.EXTRA_FEATURES, N.SOURCE_LINE, N.RECORD_HASH), "to_feature_logs")
    extra = F.col(N.EXTRA_FEATURES)
    features: Column = F.col(N.FEATURES)
    if new_features:
        features = F.struct(F.col(f"{N.FEATURES}.*"),
                            *[typed_value(extra[n], t).alias(n) for n, t in new_features.items()])
    # The log format a row came in: v2 files are Avro, v1 files JSON lines (one format per file).
    version = F.when(F.col(N.SOURCE_FILE).endswith(AVRO_SUFFIX), F.lit(2)).otherwise(F.lit(1))
    return rows.where(F.col(N.REASON).isNull()).select(
        N.REQUEST_ID, N.LOGGED_AT, version.alias(N.SCHEMA_VERSION), N.MODEL, N.ENTITY,
        features.alias(N.FEATURES), N.FEATURE_STATUS, N.PREDICTION, N.SAMPLE_RATE, N.CONTEXT,
        F.to_date(N.LOGGED_AT).alias(N.EVENT_DATE), F.hour(N.LOGGED_AT).alias(N.EVENT_HOUR),
        N.LANDING_HOUR, N.SOURCE_FILE, N.SOURCE_LINE, N.RECORD_HASH,
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT),
    )


def id_counts(classified: DataFrame) -> DataFrame:
    """(request_id, count) over the run's loadable rows: one narrow aggregation."""
    require_columns(classified, (N.REASON, N.REQUEST_ID), "id_counts")
    return classified.where(F.col(N.REASON).isNull()).groupBy(N.REQUEST_ID).count()


def ids_in_table(existing_ids: DataFrame, counts: DataFrame, *, broadcast_ids: bool = True) -> DataFrame:
    """The distinct request ids of `existing_ids` (the table) that this run also holds.

    `broadcast_ids`: probe the table with a hash of the run's ids, so the table is scanned and never
    shuffled; the caller turns it off when the run's ids are too many to ship to every task. A
    semi-join needs no distinct table ids: the probe only asks whether an id is there."""
    require_columns(existing_ids, (N.REQUEST_ID,), "ids_in_table(existing_ids)")
    require_columns(counts, (N.REQUEST_ID,), "ids_in_table(counts)")
    return (existing_ids.select(N.REQUEST_ID)
            .join(_small(counts.select(N.REQUEST_ID), broadcast_ids), on=N.REQUEST_ID, how="left_semi")
            .dropDuplicates([N.REQUEST_ID]))


def _small(df: DataFrame, broadcast: bool) -> DataFrame:
    """`df` hinted for a broadcast join when the caller judged it small enough to ship to every task."""
    return F.broadcast(df) if broadcast else df


def duplicate_rows(classified: DataFrame, counts: DataFrame, known: DataFrame, *,
                   broadcast_ids: bool = True) -> DataFrame:
    """(_row_id, _dup_kind) of every loadable row that is not kept: `in_run` for a repeat of a request
    id in this run, `existing` when the id is already in the table (`known`, from `ids_in_table`).
    The survivor is the earliest logged, then the first in file order. Only the suspects (ids seen
    twice in the run, per `counts` from `id_counts`, or in the table) are ranked; the result is small."""
    require_columns(classified, (N.REASON, N.REQUEST_ID, N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID), "duplicate_rows")
    require_columns(counts, (N.REQUEST_ID, "count"), "duplicate_rows(counts)")
    require_columns(known, (N.REQUEST_ID,), "duplicate_rows(known)")

    narrow = classified.where(F.col(N.REASON).isNull()).select(N.REQUEST_ID, N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID)
    known = known.select(N.REQUEST_ID)
    suspects = (counts.where(F.col("count") > 1).select(N.REQUEST_ID).unionByName(known)
                .dropDuplicates([N.REQUEST_ID]))
    # Every row of a suspect id is ranked, so its survivor is the one a ranking of the whole run picks.
    ranked = (narrow.join(_small(suspects, broadcast_ids), on=N.REQUEST_ID, how="left_semi")
              .withColumn("_rank", F.row_number().over(
                  Window.partitionBy(N.REQUEST_ID).orderBy(N.LOGGED_AT, N.SOURCE_FILE, N.ROW_ID))))
    joined = ranked.join(_small(known.withColumn("_exists", F.lit(True)), broadcast_ids), on=N.REQUEST_ID, how="left")
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


def files_to_quarantine(files: DataFrame, landing_hour: datetime, run_id: str, ingested_at: datetime) -> DataFrame:
    """Unread files (source_file, reason) -> quarantine rows: no line, no text, the file named."""
    require_columns(files, (N.SOURCE_FILE, N.REASON), "files_to_quarantine")
    return files.select(
        F.lit(landing_hour.date()).alias(N.LANDING_DATE), F.lit(landing_hour).cast("timestamp").alias(N.LANDING_HOUR),
        N.SOURCE_FILE, F.lit(None).cast("long").alias(N.SOURCE_LINE), N.REASON,
        F.lit(None).cast("string").alias(N.REQUEST_ID), F.lit(None).cast("string").alias(N.RAW_TEXT),
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT),
    )


def feature_types_of(schema_features: list[tuple[str, str]]) -> dict[str, FeatureType]:
    """Table struct fields (name, simpleString type) -> feature types."""
    by_spark = {t.simpleString(): k for k, t in SPARK_TYPES.items()}
    return {name: by_spark[t] for name, t in schema_features}  # type: ignore[misc]
