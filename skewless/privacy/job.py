"""Forget a subject, and purge quarantined raw text past its retention.

    skewless forget --entity user_id=U123
    skewless purge                      (also run by the nightly `skewless compact --date ...`)
    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/forget.py --entity user_id=U123

The raw value is hashed with every key the policy knows (current and rotated out), so rows hashed
before a rotation are found too. Rows go from every table that holds the subject: the tables keyed by
request id first, `feature_logs` last, so a run killed midway still finds the subject's request ids
on rerun. Each delete is a MERGE against a small source DataFrame, so neither the raw value nor its
hash appears in a Delta commit's predicate text. Deletion vectors are purged (REORG) and old files
VACUUMed, so no table version reachable by time travel keeps the data once the retention passed.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.access import read_tags, tag_schema
from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.delta import (
    commit_metrics,
    created_ms,
    ensure_table,
    is_table,
    may_have_deletion_vectors,
    read_delta,
    session_conf,
)
from skewless.core.errors import UsageError
from skewless.core.localframe import local_frame
from skewless.core.paths import SNAPSHOTS_DIR, snapshots_root, table_path
from skewless.core.policy import resolve_key
from skewless.core.progress import Progress, summary
from skewless.core.storage import list_subfolders
from skewless.privacy import landing, tombstones
from skewless.privacy.transforms import (
    NEEDLE,
    SUBJECT,
    parse_subject,
    pseudonyms,
    quarantine_match,
    subject_rows,
)
from skewless.serving.logformat import parse_date

REQUESTS_SCHEMA = T.StructType([
    T.StructField("privacy_request_id", T.StringType(), False),
    T.StructField("requested_at", T.TimestampType(), False),
    T.StructField("entity_field", T.StringType()),
    T.StructField("subject_pseudonym", T.StringType()),  # hash under the current key: never the raw value
    T.StructField("key_versions", T.ArrayType(T.StringType())),
    T.StructField("rows_deleted", T.MapType(T.StringType(), T.LongType())),
    T.StructField("vacuum_retain_hours", T.IntegerType()),
    T.StructField("privacy_policy", T.StringType()),
    T.StructField("reason", T.StringType()),
])
# Tables keyed by request id, cleaned before feature_logs (whose rows tell which request ids to clean).
BY_REQUEST = (N.LABELS, N.LABELS_QUARANTINE)


def add_forget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--entity", required=True, metavar="FIELD=VALUE",
                   help="the subject, by an entity field and its raw value, e.g. user_id=U123")
    p.add_argument("--reason", default="", help="why (a ticket number); stored in privacy_requests")
    p.add_argument("--vacuum-retain-hours", type=int,
                   help="VACUUM retention (default: the policy's retention.vacuum_retain_hours)")
    p.add_argument("--rewrite-landing", action="store_true",
                   help="also remove the subject's lines from the landing files (prediction and label logs)")


def add_purge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--before", type=checked(parse_date),
                   help="purge quarantine rows landed before this date (default: today minus "
                        "retention.quarantine_days)")
    p.add_argument("--vacuum-retain-hours", type=int, help="VACUUM retention (default: the policy's)")


def run_forget(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    policy = cfg.privacy_policy
    member, raw, hashed = parse_subject(args.entity, policy)
    keys = [resolve_key(k, cfg.profile, policy.source, current=i == 0, warehouse=cfg.paths.warehouse)
            for i, k in enumerate((policy.key, *policy.previous_keys))]
    values = pseudonyms(raw, keys) if hashed else [raw]
    retain = policy.retention.vacuum_retain_hours if args.vacuum_retain_hours is None else args.vacuum_retain_hours
    progress = Progress("forget")
    started = datetime.now(UTC).replace(tzinfo=None)
    request_id = uuid.uuid4().hex
    path = {name: table_path(cfg.paths.warehouse, name) for name in N.TABLES}
    deleted: dict[str, int] = {}
    matches = spark.createDataFrame([(v,) for v in values], f"{SUBJECT} string")
    if is_table(spark, path[N.FEATURE_LOGS]):
        logs = read_delta(spark, path[N.FEATURE_LOGS])
        if f"{N.ENTITY}.{member}" not in read_tags(logs.schema):
            raise UsageError(f"--entity {member}: feature_logs has no column {N.ENTITY}.{member}")
        rows = subject_rows(logs, member, matches).persist(StorageLevel.MEMORY_AND_DISK)
    else:
        rows = spark.createDataFrame([], f"{N.REQUEST_ID} string, {N.EVENT_DATE} date")
    # Snapshot versions hold the subject's rows too (by request id): see README on reproducibility.
    path.update(snapshot_tables(spark, cfg))
    try:
        # Tombstones first: from here on no rerun, late file or labels run can load the subject again,
        # even if this run is killed before its deletes.
        tombstoned = tombstones.record(spark, cfg, member, values, rows.select(N.REQUEST_ID).distinct(),
                                       request_id, started)
        progress.step(f"{N.FORGOTTEN_SUBJECTS}: {tombstoned} tombstones added")
        if getattr(args, "rewrite_landing", False):
            deleted["landing_lines"] = landing.rewrite(spark, cfg.paths.landing, json.dumps(raw),
                                                       rows.select(N.REQUEST_ID).distinct(), progress)
        for name in (*BY_REQUEST, *[n for n in path if n.startswith("snapshots/")]):
            deleted[name] = _merge_delete(spark, path[name], rows.select(N.REQUEST_ID).distinct(),
                                          f"t.{N.REQUEST_ID} = s.{N.REQUEST_ID}")
            progress.step(f"{name}: {deleted[name]} rows deleted")
        needle = spark.createDataFrame([(None, json.dumps(raw))], f"{N.REQUEST_ID} string, {NEEDLE} string")
        source = rows.select(N.REQUEST_ID, F.lit(None).cast("string").alias(NEEDLE)).unionByName(needle)
        deleted[N.FEATURE_LOGS_QUARANTINE] = _merge_delete(spark, path[N.FEATURE_LOGS_QUARANTINE], source,
                                                           quarantine_match("t", "s"))
        progress.step(f"{N.FEATURE_LOGS_QUARANTINE}: {deleted[N.FEATURE_LOGS_QUARANTINE]} rows deleted")
        deleted[N.FEATURE_LOGS] = _merge_delete(spark, path[N.FEATURE_LOGS], matches,
                                                F.col(f"t.{N.ENTITY}.{member}") == F.col(f"s.{SUBJECT}"))
        progress.step(f"{N.FEATURE_LOGS}: {deleted[N.FEATURE_LOGS]} rows deleted")
    finally:
        rows.unpersist()
    for name in deleted:  # even where this run deleted nothing: a killed earlier run may have
        if name in path and is_table(spark, path[name]):
            make_physical(spark, path[name], retain)
    progress.step(f"deletion vectors purged and files older than {retain} h vacuumed")
    record = {"privacy_request_id": request_id, "requested_at": started, "entity_field": member,
              "subject_pseudonym": values[0], "key_versions": [k.version for k in keys] if hashed else [],
              "rows_deleted": deleted, "vacuum_retain_hours": retain, "privacy_policy": policy.tag,
              "reason": args.reason}
    _log_request(spark, path[N.PRIVACY_REQUESTS], record)
    summary({"job": "forget", "entity_field": member, "rows_deleted": sum(deleted.values()),
             **{f"deleted_{k}": v for k, v in deleted.items()}, "vacuum_retain_hours": retain,
             "seconds": progress.elapsed()})
    return 0


def snapshot_tables(spark: SparkSession, cfg: Config) -> dict[str, str]:
    """`snapshots/NAME/vNNNN` -> path, for every materialized snapshot version."""
    root = snapshots_root(cfg.paths.warehouse)
    out = {}
    for name in list_subfolders(spark, root, ""):
        for version in list_subfolders(spark, f"{root}/{name}", "v"):
            out[f"{SNAPSHOTS_DIR}/{name}/{version}"] = f"{root}/{name}/{version}"
    return out


def _merge_delete(spark: SparkSession, path: str, source: DataFrame, condition: Any) -> int:
    """Delete the target rows matching any source row; the number deleted (0 when the table is absent)."""
    if not is_table(spark, path):
        return 0
    merge = DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), condition).whenMatchedDelete()
    return int(commit_metrics(spark, path, merge.execute).get("numTargetRowsDeleted", 0))


# A table's files are written after its first commit, or in the write that makes it (the margin).
VACUUM_MARGIN = timedelta(hours=24)


def vacuum_can_delete(created_ms: int | None, now: datetime, retain_hours: float) -> bool:
    """False only when no file of the table can be older than the retention: it was created (version 0
    committed) after now - retention + VACUUM_MARGIN. Unknown creation (log cleaned up): True."""
    if created_ms is None:
        return True
    created = datetime.fromtimestamp(created_ms / 1000, UTC)
    return created < now - timedelta(hours=retain_hours) + VACUUM_MARGIN


def make_physical(spark: SparkSession, path: str, retain_hours: int, *, reorg: bool = True) -> bool:
    """Rewrite files whose rows are only marked deleted (`reorg`), then remove files older than the
    retention; True when the VACUUM ran. Each step is skipped only when the log proves it has nothing
    to do (no deletion vector; a table younger than the retention): each costs a few Spark jobs even on
    a tiny table."""
    if reorg and may_have_deletion_vectors(spark, path):
        spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    if not vacuum_can_delete(created_ms(spark, path), datetime.now(UTC), retain_hours):
        return False
    # A shorter retention than Delta's default is deliberate here.
    with session_conf(spark, "spark.databricks.delta.retentionDurationCheck.enabled",
                      "false" if retain_hours < 168 else "true"):
        DeltaTable.forPath(spark, path).vacuum(float(retain_hours))
    return True


def _log_request(spark: SparkSession, path: str, record: dict[str, Any]) -> None:
    schema = tag_schema(REQUESTS_SCHEMA, {f.name: "restricted" for f in REQUESTS_SCHEMA.fields})
    df = local_frame(spark, [tuple(record[f.name] for f in schema.fields)], schema)
    ensure_table(spark, path, df.schema, (), {})
    df.coalesce(1).write.format("delta").mode("append").save(path)


def run_purge(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    policy = cfg.privacy_policy
    try:
        before = parse_date(args.before).date() if args.before else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    retain = policy.retention.vacuum_retain_hours if args.vacuum_retain_hours is None else args.vacuum_retain_hours
    counts = purge_quarantine(spark, cfg, before, retain, Progress("purge"))
    summary({"job": "purge", **counts})
    return 0


def purge_quarantine(spark: SparkSession, cfg: Config, before: date | None, retain_hours: int,
                     progress: Progress) -> dict[str, Any]:
    """Delete quarantine rows (raw text) older than the retention, and VACUUM what they leave behind."""
    cutoff = before or (datetime.now(UTC).date() - timedelta(days=cfg.privacy_policy.retention.quarantine_days))
    out: dict[str, Any] = {"before": cutoff.isoformat()}
    for name, column in ((N.FEATURE_LOGS_QUARANTINE, N.LANDING_DATE), (N.LABELS_QUARANTINE, N.LABEL_DATE)):
        path = table_path(cfg.paths.warehouse, name)
        if not is_table(spark, path):
            out[f"purged_{name}"] = 0
            continue
        table = DeltaTable.forPath(spark, path)
        metrics = commit_metrics(spark, path, lambda: table.delete(F.col(column) < F.lit(cutoff)))  # noqa: B023
        out[f"purged_{name}"] = int(metrics.get("numDeletedRows", 0))
        progress.step(f"{name}: {out[f'purged_{name}']} rows landed before {cutoff} purged")
    out["vacuumed_tables"] = vacuum_all(spark, cfg, retain_hours, progress)
    return out


def vacuum_all(spark: SparkSession, cfg: Config, retain_hours: int, progress: Progress) -> int:
    """VACUUM every table and snapshot version at the retention: data files a forget or an update
    replaced, and the `_change_data` files of the change feed, leave the disk once it has passed.
    The nightly duty (`compact --date` runs purge), so no deleted row outlives the retention by much."""
    paths = {name: table_path(cfg.paths.warehouse, name) for name in N.TABLES}
    paths.update(snapshot_tables(spark, cfg))
    done = young = 0
    for path in paths.values():
        if is_table(spark, path):
            if make_physical(spark, path, retain_hours, reorg=False):
                done += 1
            else:
                young += 1
    progress.step(f"{done} tables vacuumed (files older than {retain_hours} h, _change_data included); "
                  f"{young} younger than that skipped")
    return done

