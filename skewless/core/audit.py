"""The `ingestion_audit` table: one row per job run, appended last so a missing row means an unfinished run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Row, SparkSession
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.access import tag_schema
from skewless.core.delta import retry_conflicts
from skewless.core.localframe import local_frame
from skewless.core.storage import LandingFile

AUDIT_SCHEMA = T.StructType([
    T.StructField(N.RUN_ID, T.StringType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField(N.LANDING_HOUR, T.TimestampType()),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()),
    T.StructField("duration_s", T.DoubleType()),
    T.StructField("status", T.StringType()),
    T.StructField("files", T.LongType()),
    T.StructField("bytes", T.LongType()),
    T.StructField("records_read", T.LongType()),
    T.StructField("loaded", T.LongType()),
    T.StructField("duplicates", T.LongType()),
    T.StructField("duplicates_in_run", T.LongType()),
    T.StructField("duplicates_existing", T.LongType()),
    T.StructField("quarantined", T.LongType()),
    T.StructField("quarantined_by_reason", T.MapType(T.StringType(), T.LongType())),
    T.StructField("late_records", T.LongType()),
    T.StructField("event_hours", T.ArrayType(T.StringType())),
    T.StructField("new_features", T.MapType(T.StringType(), T.StringType())),
    T.StructField("unknown_models", T.ArrayType(T.StringType())),
    T.StructField("feature_logs_version", T.LongType()),
    T.StructField("quarantine_version", T.LongType()),
    T.StructField("optimized_hours", T.ArrayType(T.StringType())),
    T.StructField("config", T.StringType()),
    T.StructField("details", T.MapType(T.StringType(), T.LongType())),  # job-specific counts
    T.StructField("truncated_files", T.ArrayType(T.StringType())),  # files not wholly read (names)
    T.StructField("unreadable_files", T.ArrayType(T.StringType())),  # the same, "name: why"
    T.StructField("privacy_policy", T.StringType()),  # the policy version the run applied
    T.StructField("key_version", T.StringType()),     # the HMAC key version that made its hashes
])
# Every audit column is internal: counts and file names, no record content.
TAGGED_SCHEMA = tag_schema(AUDIT_SCHEMA, {f.name: "internal" for f in AUDIT_SCHEMA.fields})


def compaction_record(
    *, run_id: str, hour: datetime, started: datetime, files: list[LandingFile], stats: Iterable[Row],
    dedup: Mapping[str, int], new_features: Mapping[str, str], known_models: set[str],
    versions: tuple[int, int], optimized: list[str], config: str,
) -> dict[str, Any]:
    """Fold the run's small aggregates into one audit row (plain dict, also the JSON summary)."""
    finished = datetime.now(UTC).replace(tzinfo=None)
    read = quarantined = late = 0
    by_reason: dict[str, int] = {}
    event_hours: set[str] = set()
    models: set[str] = set()
    for r in stats:
        read += r["n"]
        if r[N.REASON] is not None:
            quarantined += r["n"]
            by_reason[r[N.REASON]] = by_reason.get(r[N.REASON], 0) + r["n"]
            continue
        event_hours.add(f"{r['hour']:%Y-%m-%dT%H}")
        late += r["n"] if r["hour"] != hour else 0
        if r["model"] is not None:
            models.add(r["model"])
    in_run, existing = int(dedup.get("in_run", 0)), int(dedup.get("existing", 0))
    return {
        N.RUN_ID: run_id, "job": "compact", N.LANDING_HOUR: hour, "started_at": started,
        "finished_at": finished, "duration_s": round((finished - started).total_seconds(), 3),
        "status": "succeeded", "files": len(files), "bytes": sum(f.size for f in files),
        "records_read": read, "loaded": int(dedup.get("loaded", 0)), "duplicates": in_run + existing,
        "duplicates_in_run": in_run, "duplicates_existing": existing, "quarantined": quarantined,
        "quarantined_by_reason": dict(sorted(by_reason.items())), "late_records": late,
        "event_hours": sorted(event_hours), "new_features": dict(new_features),
        "unknown_models": sorted(models - known_models), "feature_logs_version": versions[0],
        "quarantine_version": versions[1], "optimized_hours": optimized, "config": config,
    }


def append(spark: SparkSession, path: str, record: Mapping[str, Any]) -> None:
    """Append one row. The transaction id is the run's own (txnAppId = job:run_id, txnVersion 1): a
    retried append of the same run is a no-op, and no other run can shadow it. (Keyed by hour with
    the start time as version, a run that started earlier but committed later lost its row.)"""
    row = [tuple(record.get(f.name) for f in AUDIT_SCHEMA.fields)]
    retry_conflicts(lambda: (
        local_frame(spark, row, TAGGED_SCHEMA).coalesce(1).write.format("delta").mode("append")
        .option("txnAppId", f"{record['job']}:{record[N.RUN_ID]}").option("txnVersion", 1)
        .option("mergeSchema", "true").save(path)), f"audit row of {record[N.RUN_ID]}")
