"""Tombstones of forgotten subjects (`forgotten_subjects`): written by `forget` before it deletes
anything, consulted by compaction and labels, so a rerun, a late file or a replayed landing folder can
never bring a forgotten subject back.

A tombstone is (entity_field, value): the subject's pseudonym under every key the policy knew when
it was forgotten, and each of its request ids. The table is restricted and holds no raw value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.access import tag_schema
from skewless.core.config import Config
from skewless.core.delta import commit_metrics, ensure_table, is_table, read_delta
from skewless.core.paths import table_path
from skewless.core.policy import HashKey, resolve_key
from skewless.privacy.transforms import REQUEST_FIELD, TOMBSTONE_FIELD, TOMBSTONE_VALUE, mark_forgotten

SCHEMA = T.StructType([
    T.StructField(TOMBSTONE_FIELD, T.StringType(), False),
    T.StructField(TOMBSTONE_VALUE, T.StringType(), False),
    T.StructField("privacy_request_id", T.StringType()),
    T.StructField("forgotten_at", T.TimestampType()),
])
TAGGED = tag_schema(SCHEMA, {f.name: "restricted" for f in SCHEMA.fields})
# No min/max statistics: the Delta log would otherwise hold pseudonym prefixes of forgotten subjects.
PROPERTIES = {"delta.dataSkippingNumIndexedCols": "0"}


def previous_keys(cfg: Config) -> tuple[HashKey, ...]:
    """The rotated-out keys (forgotten subjects' tombstones may have been made under them)."""
    policy = cfg.privacy_policy
    return tuple(resolve_key(k, cfg.profile, policy.source, current=False, warehouse=cfg.paths.warehouse)
                 for k in policy.previous_keys)


def forgotten_filter(spark: SparkSession, cfg: Config,
                     keys: tuple[HashKey, ...]) -> Callable[[DataFrame], DataFrame]:
    """`mark_forgotten` against the tombstones, or the identity while nobody has been forgotten."""
    path = table_path(cfg.paths.warehouse, N.FORGOTTEN_SUBJECTS)
    if not is_table(spark, path):
        return lambda rows: rows
    tombstones = read_delta(spark, path).select(TOMBSTONE_FIELD, TOMBSTONE_VALUE)
    fields: list[str] = []
    if keys:  # without keys (labels: request ids only) no pseudonym is computed, so no member is needed
        # The member names only (a handful), to know which pseudonyms to compute: no subject's value.
        fields = sorted(r[0] for r in tombstones.select(TOMBSTONE_FIELD).distinct().collect()
                        if r[0] != REQUEST_FIELD)
    return lambda rows: mark_forgotten(rows, tombstones, fields, keys)


def record(spark: SparkSession, cfg: Config, entity_field: str, values: list[str], request_ids: DataFrame,
           request_id: str, at: datetime) -> int:
    """Add the subject's tombstones (idempotent: a MERGE inserts only what is not there yet); the
    number of new rows."""
    path = table_path(cfg.paths.warehouse, N.FORGOTTEN_SUBJECTS)
    ensure_table(spark, path, TAGGED, (), PROPERTIES)
    entity = spark.createDataFrame([(entity_field, v) for v in values], f"{TOMBSTONE_FIELD} string, "
                                                                        f"{TOMBSTONE_VALUE} string")
    requests = request_ids.select(F.lit(REQUEST_FIELD).alias(TOMBSTONE_FIELD),
                                  F.col(N.REQUEST_ID).alias(TOMBSTONE_VALUE))
    source = entity.unionByName(requests).distinct().select(
        TOMBSTONE_FIELD, TOMBSTONE_VALUE, F.lit(request_id).alias("privacy_request_id"),
        F.lit(at).cast("timestamp").alias("forgotten_at"))
    merge = (DeltaTable.forPath(spark, path).alias("t")
             .merge(source.alias("s"), f"t.{TOMBSTONE_FIELD} = s.{TOMBSTONE_FIELD} AND "
                                       f"t.{TOMBSTONE_VALUE} = s.{TOMBSTONE_VALUE}")
             .whenNotMatchedInsertAll())
    return int(commit_metrics(spark, path, merge.execute).get("numTargetRowsInserted", 0))

