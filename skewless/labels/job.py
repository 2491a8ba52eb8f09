"""`skewless labels`: ingest label dates, then bring `labeled_examples` up to date (MERGE or recompute)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import audit
from skewless.core import names as N
from skewless.core.access import tagged
from skewless.core.accounting import file_key, file_rows, unread_files
from skewless.core.argtypes import checked
from skewless.core.config import Config, LabelPolicy
from skewless.core.delta import (
    commit_metrics,
    ensure_table,
    is_table,
    last_commit,
    read_delta,
    read_table,
    replace_rows,
    session_conf,
)
from skewless.core.errors import InvariantError, UsageError
from skewless.core.paths import LANDING_SUFFIXES, labels_date, labels_root, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import list_files, list_subfolders, read_landing_text
from skewless.labels.sync import (
    SyncState,
    affected_rows,
    feed_covers,
    labels_as_of_watermark,
    last_state,
    maturing_filter,
    open_from,
    policies_digest,
    served_changes,
)
from skewless.labels.transforms import (
    EXAMPLE_COLUMNS,
    POLICY_SCHEMA,
    SERVED_COLUMNS,
    classify_labels,
    dedup_label_events,
    files_to_label_quarantine,
    label_examples,
    label_join_counts,
    policy_rows,
    to_label_quarantine,
    to_labels,
    with_features,
)
from skewless.privacy.tombstones import forgotten_filter
from skewless.serving.logformat import parse_date

LABEL_PROPERTIES = {"delta.enableChangeDataFeed": "true"}
# Deletion vectors: a MERGE that touches a few rows per file marks them instead of rewriting the file.
EXAMPLE_PROPERTIES = {"delta.enableDeletionVectors": "true"}
LABEL_QUARANTINE_PROPERTIES = {"delta.dataSkippingStatsColumns": f"{N.REASON},{N.REQUEST_ID}"}
_CHANGED = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in (N.LABEL, N.LABEL_STATE, N.LABEL_OBSERVED_AT,
                                                          N.LABEL_SOURCE, N.WINDOW_END))


def add_arguments(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=checked(parse_date),
                      help="label date folder to ingest, e.g. 2026-12-06 (the nightly run)")
    when.add_argument("--through", type=checked(parse_date),
                      help="ingest every label date folder up to this date (a backfill)")
    p.add_argument("--full", action="store_true", help="recompute labeled_examples from scratch instead of MERGE")


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    try:
        last = parse_date(args.date or args.through).replace(tzinfo=None)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    days = [last] if args.date else label_dates(spark, cfg, last)
    progress = Progress("labels")
    started = datetime.now(UTC).replace(tzinfo=None)
    run_id = f"labels-{last:%Y%m%d}-{uuid.uuid4().hex[:10]}"
    counts = ingest(spark, cfg, days, run_id, started, progress)
    counts.update(update_examples(spark, cfg, days, full=getattr(args, "full", False), progress=progress))
    unreadable: list[str] = counts.pop("unreadable_files")
    reconciled = counts["records_read"] == counts["loaded"] + counts["duplicates"] + counts["quarantined"]
    record = {
        N.RUN_ID: run_id, "job": "labels", "started_at": started, "finished_at": datetime.now(UTC).replace(tzinfo=None),
        "status": "failed_reconciliation" if not reconciled else "incomplete" if unreadable else "succeeded",
        "config": cfg.source, "unreadable_files": unreadable,
        "truncated_files": [u.split(":", 1)[0] for u in unreadable],
        **{k: counts[k] for k in ("files", "bytes", "records_read", "loaded", "duplicates", "quarantined")},
        "quarantined_by_reason": counts["quarantined_by_reason"],
        "details": {k: int(v) for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)},
    }
    record["duration_s"] = round((record["finished_at"] - started).total_seconds(), 3)
    audit.append(spark, table_path(cfg.paths.warehouse, N.INGESTION_AUDIT), record)
    summary({"job": "labels", "dates": len(days), "through": f"{last:%Y-%m-%d}", "run_id": run_id,
             "seconds": progress.elapsed(), "unreadable_files": len(unreadable),
             **{k: v for k, v in counts.items() if k != "quarantined_by_reason"}})
    if not reconciled:
        raise InvariantError(f"run {run_id}: read != loaded + duplicates + quarantined: {counts}")
    return 1 if unreadable else 0  # what could be read is in; a check failed: some files were not


def label_dates(spark: SparkSession, cfg: Config, through: datetime) -> list[datetime]:
    folder = labels_root(cfg.paths.landing)
    days = [parse_date(name.split("=", 1)[1]).replace(tzinfo=None) for name in list_subfolders(spark, folder, "date=")]
    return [d for d in days if d <= through]


def _dates_sql(days: list[datetime]) -> str:
    dates = ", ".join(f"DATE'{d:%Y-%m-%d}'" for d in days)
    return f"{N.LABEL_DATE} IN ({dates})"


def ingest(spark: SparkSession, cfg: Config, days: list[datetime], run_id: str, started: datetime,
           progress: Progress) -> dict[str, Any]:
    root = labels_root(cfg.paths.landing)
    files = [f for d in days for f in list_files(spark, labels_date(cfg.paths.landing, d), LANDING_SUFFIXES)]
    if not days:
        raise UsageError(f"no label date folders under {root}")
    label = f"{days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}" if len(days) > 1 else f"{days[0]:%Y-%m-%d}"
    progress.step(f"labels {label}: {len(days)} dates, {len(files)} files")
    # The label date is the folder's, taken from each line's file path.
    date_of_file = F.to_date(F.regexp_extract(F.col(N.SOURCE_FILE), r"date=(\d{4}-\d{2}-\d{2})", 1))
    lines = read_landing_text(spark, files).select(N.RAW_VALUE, N.SOURCE_FILE, N.ROW_ID,
                                                   date_of_file.alias(N.LABEL_DATE))
    classified = forgotten_filter(spark, cfg, ())(classify_labels(lines, cfg.compaction.max_record_bytes)).persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        by_reason = {r[0]: r[1] for r in classified.groupBy(N.REASON).count().collect()}
        read = {file_key(r[0]): int(r[1]) for r in
                classified.groupBy(N.SOURCE_FILE).agg(F.sum(N.LINE_BYTES)).collect()}
        unread = unread_files(spark, files, read)
        for f in unread:
            progress.step(f"labels {label}: WARNING {f.name}: {f.detail}")
        events = dedup_label_events(classified)
        where = _dates_sql(days)
        policy = cfg.privacy_policy
        commit = replace_rows(to_labels(events, run_id, started), table_path(cfg.paths.warehouse, N.LABELS),
                              (N.LABEL_DATE,), where, LABEL_PROPERTIES, policy, run_id)
        # Loaded: counted where written (Delta's metrics of this run's commit); the rest of the
        # loadable events were repeats.
        loaded = int(commit["metrics"].get("numOutputRows", 0))
        metrics = {"loaded": loaded, "duplicates": int(by_reason.get(None, 0)) - loaded}
        q_path = table_path(cfg.paths.warehouse, N.LABELS_QUARANTINE)
        # Nothing quarantined now or before for these dates: a replace would commit an empty change.
        if unread or any(k is not None for k in by_reason) or not is_table(spark, q_path) or (
                read_delta(spark, q_path).where(where).limit(1).count()):
            whole = files_to_label_quarantine(file_rows(spark, unread), run_id, started)
            replace_rows(to_label_quarantine(classified, run_id, started).unionByName(whole).coalesce(1), q_path,
                         (N.LABEL_DATE,), where, LABEL_QUARANTINE_PROPERTIES, policy, run_id)
    finally:
        classified.unpersist()
    quarantined = {k: v for k, v in by_reason.items() if k is not None}
    counts = {"files": len(files), "bytes": sum(f.size for f in files), "records_read": sum(by_reason.values()),
              "loaded": int(metrics["loaded"]), "duplicates": int(metrics["duplicates"]),
              "quarantined": sum(quarantined.values()), "quarantined_by_reason": dict(sorted(quarantined.items())),
              "unreadable_files": [f"{f.name}: {f.detail}" for f in unread]}
    progress.step(f"labels {label}: read={counts['records_read']} loaded={counts['loaded']} "
                  f"duplicates={counts['duplicates']} quarantined={counts['quarantined']}")
    return counts


def update_examples(spark: SparkSession, cfg: Config, days: list[datetime], *, full: bool,
                    progress: Progress) -> dict[str, int]:
    fl_path = table_path(cfg.paths.warehouse, N.FEATURE_LOGS)
    if not is_table(spark, fl_path):
        progress.step("no feature_logs yet: labels ingested, nothing to join")
        return {"joinable": 0, "orphaned": 0, "before_prediction": 0, "updated": 0, "inserted": 0, "matured": 0}
    labels = read_table(spark, cfg.paths.warehouse, N.LABELS)
    # Labels are known through the last ingested date, also when that day brought no label.
    as_of = max(labels_as_of_watermark(labels) or datetime.min, max(days) + timedelta(days=1))
    rows = policy_rows(cfg.models)
    policies = spark.createDataFrame(rows, POLICY_SCHEMA)
    run_labels = labels.where(_dates_sql(days))
    # Every read of feature_logs below is pinned to this version, which the commit then records.
    state = SyncState(last_commit(spark, fl_path)["version"], as_of, policies_digest(rows))
    ex_path = table_path(cfg.paths.warehouse, N.LABELED_EXAMPLES)
    prev = None if full or not is_table(spark, ex_path) else last_state(spark, ex_path)
    if prev is not None and prev.policies != state.policies:
        progress.step("label policies changed since the last run: recomputing labeled_examples")
        prev = None
    if prev is None:
        return _recompute(spark, cfg, fl_path, ex_path, labels, run_labels, policies, state, progress)
    windows = [r[1] for r in rows] + [LabelPolicy().window_days]
    return _merge_changes(spark, cfg, fl_path, ex_path, labels, run_labels, policies, state, prev, windows, progress)


def _join_counts(run_labels: DataFrame, served: DataFrame, as_of: datetime,
                 progress: Progress) -> tuple[dict[str, int], datetime | None]:
    """How this run's labels join `served` (which must hold every served row they name), and the
    earliest observed_at among them."""
    jc = label_join_counts(run_labels, served).first()
    assert jc is not None
    counts = {k: int(jc[k]) for k in ("joinable", "orphaned", "before_prediction")}
    progress.step(f"labels as of {as_of:%Y-%m-%d}: joinable={counts['joinable']} "
                  f"orphaned={counts['orphaned']} before_prediction={counts['before_prediction']}")
    return counts, jc["first_observed"]


def _recompute(spark: SparkSession, cfg: Config, fl_path: str, ex_path: str, labels: DataFrame,
               run_labels: DataFrame, policies: DataFrame, state: SyncState, progress: Progress) -> dict[str, int]:
    served = (read_delta(spark, fl_path, version=state.feature_logs_version)
              .select(*SERVED_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK))
    try:
        # A day's labels are few: only the served rows they name are joined (broadcast, no shuffle of served).
        named = served.join(F.broadcast(run_labels.select(N.REQUEST_ID).distinct()), on=N.REQUEST_ID, how="left_semi")
        counts = _join_counts(run_labels, named, state.as_of, progress)[0]
        rows = tagged(label_examples(served, labels, policies, state.as_of).select(*EXAMPLE_COLUMNS),
                      N.LABELED_EXAMPLES, cfg.privacy_policy)
        ensure_table(spark, ex_path, rows.schema, (N.EVENT_DATE,), EXAMPLE_PROPERTIES)
        # One file per event date: later MERGEs then touch (and mark) few, larger files.
        (rows.repartition(N.EVENT_DATE).write.format("delta").mode("overwrite").option("overwriteSchema", "true")
         .option("userMetadata", state.to_metadata()).partitionBy(N.EVENT_DATE).save(ex_path))
    finally:
        served.unpersist()
    metrics = last_commit(spark, ex_path)["metrics"]
    counts.update(updated=0, inserted=int(metrics.get("numOutputRows", 0)), matured=0)
    progress.step(f"labeled_examples recomputed as of {state.as_of:%Y-%m-%d}: {counts['inserted']} rows")
    return counts


def _merge_changes(spark: SparkSession, cfg: Config, fl_path: str, ex_path: str, labels: DataFrame,
                   run_labels: DataFrame, policies: DataFrame, state: SyncState, prev: SyncState,
                   windows: list[int], progress: Progress) -> dict[str, int]:
    """MERGE the rows whose answer can have changed: requests labeled in this run, served rows added
    since the last run, and pending rows whose window closed since. Unchanged rows are not rewritten.
    labeled_examples itself is the index of served rows: it is scanned once, narrow, before the MERGE,
    and feature_logs is read only for what is new."""
    examples = DeltaTable.forPath(spark, ex_path)
    new = _new_served(spark, cfg, fl_path, examples.toDF(), state, prev, progress).persist(
        StorageLevel.MEMORY_AND_DISK)
    held = [new]  # what the run stored: released at the end, whatever happens
    try:
        # Materialized, so the joins below know its size (a day of served rows).
        sized = new.agg(F.count(F.lit(1)).alias("n"), F.min(N.EVENT_DATE).alias("first")).first()
        assert sized is not None
        n_new = int(sized["n"])
        affected = affected_rows(examples.toDF(), new, run_labels,
                                 maturing_filter(prev.as_of, state.as_of, windows))
        # Checkpointed, not cached: its lineage then no longer names labeled_examples, so the MERGE's commit
        # does not make Spark re-plan it, and the MERGE may read it without copying it first.
        affected = affected.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        held.append(affected)
        new.unpersist()
        counts, first_observed = _join_counts(run_labels, affected, state.as_of, progress)
        lo = open_from(first_observed, prev.as_of, windows, sized["first"])
        # Rows named by a label but served before `lo` cannot change: they are counted above, not merged.
        affected = affected.where(F.col(N.EVENT_DATE) >= F.lit(lo))
        tally = affected.agg(F.count(F.lit(1)).alias("n"), F.count_if("_maturing").alias("matured")).first()
        assert tally is not None
        matured = int(tally["matured"])
        progress.step(f"{tally['n']} affected requests served on or after {lo:%Y-%m-%d} ({n_new} new served "
                      f"rows, {matured} newly matured)")
        if tally["n"] == 0:
            # A quiet day commits nothing. The recorded state stays behind, which is safe: the next run
            # reads the change feed and the maturity range from further back, a superset of what it needs.
            progress.step("labeled_examples unchanged: nothing to merge, no commit")
            counts.update(updated=0, inserted=0, matured=0)
            return counts
        served = affected.select(*SERVED_COLUMNS)
        fresh = label_examples(served, labels.join(served.select(N.REQUEST_ID), on=N.REQUEST_ID, how="left_semi"),
                               policies, state.as_of).select(*EXAMPLE_COLUMNS)
        # Fresh names for the checkpoint's columns: they would otherwise share ids with the target's.
        fresh = fresh.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        held.append(fresh)
        m = commit_metrics(spark, ex_path, lambda: _merge(spark, examples, fresh, lo, inserts=n_new > 0, state=state))
    finally:
        for df in held:  # the checkpoints themselves: frames derived from them hold no blocks of their own
            df.unpersist()
    counts.update(updated=int(m.get("numTargetRowsUpdated", 0)), inserted=int(m.get("numTargetRowsInserted", 0)),
                  matured=matured)
    progress.step(f"labeled_examples merged as of {state.as_of:%Y-%m-%d}: updated={counts['updated']} "
                  f"inserted={counts['inserted']} matured={matured} (merge scan {m.get('scanTimeMs', '-')} ms, "
                  f"rewrite {m.get('rewriteTimeMs', '-')} ms, {m.get('numTargetDeletionVectorsAdded', 0)} "
                  f"deletion vectors)")
    return counts


def _new_served(spark: SparkSession, cfg: Config, fl_path: str, examples: DataFrame, state: SyncState,
                prev: SyncState, progress: Progress) -> DataFrame:
    """Served rows feature_logs gained since the last run: its change feed, or a whole-table compare."""
    retain = cfg.privacy_policy.retention.vacuum_retain_hours
    if feed_covers(spark, fl_path, prev.feature_logs_version, state.feature_logs_version, retain):
        return served_changes(spark, fl_path, prev.feature_logs_version, state.feature_logs_version)
    progress.step("feature_logs' change feed does not cover the range (off, or older than the VACUUM "
                  "retention): comparing whole tables")
    pinned = read_delta(spark, fl_path, version=state.feature_logs_version)
    return pinned.select(*SERVED_COLUMNS).join(examples.select(N.REQUEST_ID), on=N.REQUEST_ID, how="left_anti")


def _merge(spark: SparkSession, examples: DeltaTable, fresh: DataFrame, lo: date, *, inserts: bool,
           state: SyncState) -> None:
    source = fresh.select(*[F.col(c).alias(c) for c in EXAMPLE_COLUMNS])
    merge = examples.alias("t").merge(
        source.alias("s"), f"t.{N.REQUEST_ID} = s.{N.REQUEST_ID} AND t.{N.EVENT_DATE} = s.{N.EVENT_DATE} "
        f"AND t.{N.EVENT_DATE} >= DATE'{lo:%Y-%m-%d}'",  # the target files to scan: the open windows'
    ).whenMatchedUpdateAll(condition=_CHANGED)
    if inserts:  # without new served rows every source row matches: no outer join needed
        merge = merge.whenNotMatchedInsertAll()
    # The API has no per-call userMetadata option: the commit takes it from the session.
    # The source is a checkpoint (fixed rows): Delta need not copy it once more before its two passes.
    with session_conf(spark, "spark.databricks.delta.commitInfo.userMetadata", state.to_metadata()), \
            session_conf(spark, "spark.databricks.delta.merge.materializeSource", "none"):
        merge.execute()


def examples_as_of(spark: SparkSession, cfg: Config, as_of: datetime) -> DataFrame:
    """Training view: every served prediction, its features, and the label known at `as_of` (label
    history is kept, so this gives the same rows later, after corrections and late labels arrive)."""
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS)
    labels = read_table(spark, cfg.paths.warehouse, N.LABELS)
    policies = spark.createDataFrame(policy_rows(cfg.models), POLICY_SCHEMA)
    examples = label_examples(logs.select(*SERVED_COLUMNS), labels, policies, as_of).select(*EXAMPLE_COLUMNS)
    return with_features(examples, logs)
