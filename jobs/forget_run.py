"""The I/O half of `forget` and `purge`: MERGE-deletes, deletion-vector purge, VACUUM, the request log."""

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

from jobs import names as N
from jobs.access import read_tags, tag_schema
from jobs.config import Warehouse
from jobs.errors import UsageError
from jobs.forget import NEEDLE, SUBJECT, parse_subject, pseudonyms, quarantine_match, subject_rows
from jobs.logformat import parse_date
from jobs.policy import resolve_key
from jobs.progress import Progress, summary
from jobs.tables import (
    ensure_table,
    is_table,
    last_commit,
    list_subfolders,
    qualify,
    session_conf,
    table_path,
    table_property,
)
from jobs.versions import SNAPSHOTS_DIR

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
BY_REQUEST = (N.LABELED_EXAMPLES, N.LABELS, N.LABELS_QUARANTINE)


def add_forget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--entity", required=True, metavar="FIELD=VALUE",
                   help="the subject, by an entity field and its raw value, e.g. user_id=U123")
    p.add_argument("--reason", default="", help="why (a ticket number); stored in privacy_requests")
    p.add_argument("--vacuum-retain-hours", type=int,
                   help="VACUUM retention (default: the policy's retention.vacuum_retain_hours)")


def add_purge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--before", help="purge quarantine rows landed before this date (default: today minus "
                                    "retention.quarantine_days)")
    p.add_argument("--vacuum-retain-hours", type=int, help="VACUUM retention (default: the policy's)")


def run_forget(spark: SparkSession, wh: Warehouse, args: argparse.Namespace) -> int:
    policy = wh.privacy_policy
    member, raw, hashed = parse_subject(args.entity, policy)
    keys = [resolve_key(k, wh.profile, policy.source, current=i == 0)
            for i, k in enumerate((policy.key, *policy.previous_keys))]
    values = pseudonyms(raw, keys) if hashed else [raw]
    retain = policy.retention.vacuum_retain_hours if args.vacuum_retain_hours is None else args.vacuum_retain_hours
    progress = Progress("forget")
    started = datetime.now(UTC).replace(tzinfo=None)
    path = {name: table_path(wh.paths.warehouse, name) for name in N.TABLES}
    deleted: dict[str, int] = {}
    matches = spark.createDataFrame([(v,) for v in values], f"{SUBJECT} string")
    if is_table(spark, path[N.FEATURE_LOGS]):
        logs = spark.read.format("delta").load(path[N.FEATURE_LOGS])
        if f"{N.ENTITY}.{member}" not in read_tags(logs.schema):
            raise UsageError(f"--entity {member}: feature_logs has no column {N.ENTITY}.{member}")
        rows = subject_rows(logs, member, matches).persist(StorageLevel.MEMORY_AND_DISK)
    else:
        rows = spark.createDataFrame([], f"{N.REQUEST_ID} string, {N.EVENT_DATE} date")
    # Snapshot versions hold the subject's rows too (by request id): see README on reproducibility.
    path.update(snapshot_tables(spark, wh))
    try:
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
        if is_table(spark, path[name]):
            make_physical(spark, path[name], retain)
    progress.step(f"deletion vectors purged and files older than {retain} h vacuumed")
    record = {"privacy_request_id": uuid.uuid4().hex, "requested_at": started, "entity_field": member,
              "subject_pseudonym": values[0], "key_versions": [k.version for k in keys] if hashed else [],
              "rows_deleted": deleted, "vacuum_retain_hours": retain, "privacy_policy": policy.tag,
              "reason": args.reason}
    _log_request(spark, path[N.PRIVACY_REQUESTS], record)
    summary({"job": "forget", "entity_field": member, "rows_deleted": sum(deleted.values()),
             **{f"deleted_{k}": v for k, v in deleted.items()}, "vacuum_retain_hours": retain,
             "seconds": progress.elapsed()})
    return 0


def snapshot_tables(spark: SparkSession, wh: Warehouse) -> dict[str, str]:
    """`snapshots/NAME/vNNNN` -> path, for every materialized snapshot version."""
    root = f"{qualify(wh.paths.warehouse).rstrip('/')}/{SNAPSHOTS_DIR}"
    out = {}
    for name in list_subfolders(spark, root, ""):
        for version in list_subfolders(spark, f"{root}/{name}", "v"):
            out[f"{SNAPSHOTS_DIR}/{name}/{version}"] = f"{root}/{name}/{version}"
    return out


def _merge_delete(spark: SparkSession, path: str, source: DataFrame, condition: Any) -> int:
    """Delete the target rows matching any source row; the number deleted (0 when the table is absent)."""
    if not is_table(spark, path):
        return 0
    before = last_commit(spark, path)["version"]
    DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), condition).whenMatchedDelete().execute()
    after = last_commit(spark, path)
    return int(after["metrics"].get("numTargetRowsDeleted", 0)) if after["version"] != before else 0


def make_physical(spark: SparkSession, path: str, retain_hours: int) -> None:
    """Rewrite files whose rows are only marked deleted, then remove files older than the retention."""
    if table_property(spark, path, "delta.enableDeletionVectors") == "true":
        spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    # A shorter retention than Delta's default is deliberate here.
    with session_conf(spark, "spark.databricks.delta.retentionDurationCheck.enabled",
                      "false" if retain_hours < 168 else "true"):
        DeltaTable.forPath(spark, path).vacuum(float(retain_hours))


def _log_request(spark: SparkSession, path: str, record: dict[str, Any]) -> None:
    schema = tag_schema(REQUESTS_SCHEMA, {f.name: "restricted" for f in REQUESTS_SCHEMA.fields})
    df = spark.createDataFrame([tuple(record[f.name] for f in schema.fields)], schema)
    ensure_table(spark, path, df.schema, (), {})
    df.coalesce(1).write.format("delta").mode("append").save(path)


def run_purge(spark: SparkSession, wh: Warehouse, args: argparse.Namespace) -> int:
    policy = wh.privacy_policy
    try:
        before = parse_date(args.before).date() if args.before else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    retain = policy.retention.vacuum_retain_hours if args.vacuum_retain_hours is None else args.vacuum_retain_hours
    counts = purge_quarantine(spark, wh, before, retain, Progress("purge"))
    summary({"job": "purge", **counts})
    return 0


def purge_quarantine(spark: SparkSession, wh: Warehouse, before: date | None, retain_hours: int,
                     progress: Progress) -> dict[str, Any]:
    """Delete quarantine rows (raw text) older than the retention, and VACUUM what they leave behind."""
    cutoff = before or (datetime.now(UTC).date() - timedelta(days=wh.privacy_policy.retention.quarantine_days))
    out: dict[str, Any] = {"before": cutoff.isoformat()}
    for name, column in ((N.FEATURE_LOGS_QUARANTINE, N.LANDING_DATE), (N.LABELS_QUARANTINE, N.LABEL_DATE)):
        path = table_path(wh.paths.warehouse, name)
        if not is_table(spark, path):
            out[f"purged_{name}"] = 0
            continue
        previous = last_commit(spark, path)["version"]
        DeltaTable.forPath(spark, path).delete(F.col(column) < F.lit(cutoff))
        commit = last_commit(spark, path)
        out[f"purged_{name}"] = int(commit["metrics"].get("numDeletedRows", 0)) if commit["version"] != previous else 0
        make_physical(spark, path, retain_hours)
        progress.step(f"{name}: {out[f'purged_{name}']} rows landed before {cutoff} purged")
    return out
