"""`skewless labels`: ingest label dates into `labels`, with the label watermark and policies in the
same commit, and count how the day's labels join the served rows they can reach. No choice is stored:
`labeled_examples` picks each request's label from the events when it is read (`skewless.labels.view`),
so a night costs in proportion to its labels, never to the history."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import audit
from skewless.core import names as N
from skewless.core.accounting import file_key, file_rows, unread_files
from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.delta import (
    is_table,
    read_delta,
    read_table,
    replace_rows,
    rows_added,
    table_properties,
)
from skewless.core.deltalog import latest_version
from skewless.core.errors import InvariantError, UsageError
from skewless.core.localframe import local_frame
from skewless.core.paths import LANDING_SUFFIXES, labels_date, labels_root, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import list_files, list_subfolders, read_landing_text
from skewless.labels.state import (
    LabelState,
    label_windows,
    labels_as_of_watermark,
    last_state,
    latest_as_of_between,
    policies_digest,
    reach_from,
    set_state,
)
from skewless.labels.transforms import (
    POLICY_SCHEMA,
    classify_labels,
    dedup_label_events,
    examples_from_events,
    files_to_label_quarantine,
    label_join_counts,
    policy_rows,
    to_label_quarantine,
    to_labels,
)
from skewless.privacy.tombstones import forgotten_filter
from skewless.serving.logformat import parse_date

# Deletion vectors: a forget marks a subject's few events instead of rewriting their label dates' files.
LABEL_PROPERTIES = {"delta.enableDeletionVectors": "true"}
LABEL_QUARANTINE_PROPERTIES = {"delta.dataSkippingStatsColumns": f"{N.REASON},{N.REQUEST_ID}"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=checked(parse_date),
                      help="label date folder to ingest, e.g. 2026-12-06 (the nightly run)")
    when.add_argument("--through", type=checked(parse_date),
                      help="ingest every label date folder up to this date (a backfill)")


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
        # With the counts, the earliest observation of the loadable events: how far back they can reach.
        grouped = classified.groupBy(N.REASON).agg(F.count(F.lit(1)).alias("n"), F.min(N.OBSERVED_AT).alias("first"))
        by_reason, first_observed = {}, None
        for r in grouped.collect():
            by_reason[r[0]] = int(r["n"])
            first_observed = r["first"] if r[0] is None else first_observed
        read = {file_key(r[0]): int(r[1]) for r in
                classified.groupBy(N.SOURCE_FILE).agg(F.sum(N.LINE_BYTES)).collect()}
        unread = unread_files(spark, files, read)
        for f in unread:
            progress.step(f"labels {label}: WARNING {f.name}: {f.detail}")
        loaded_events = to_labels(dedup_label_events(classified), run_id, started)
        where = _dates_sql(days)
        policy = cfg.privacy_policy
        labels_path = table_path(cfg.paths.warehouse, N.LABELS)
        before = latest_version(spark, labels_path)
        state = _state(spark, cfg, labels_path, before, days)
        # The watermark and policies ride in the commit of the events they describe.
        commit = replace_rows(loaded_events, labels_path, (N.LABEL_DATE,), where, LABEL_PROPERTIES, policy, run_id,
                              state.to_dict())
        _settle_state(spark, labels_path, state, before, commit)
        # Loaded: counted where written (Delta's metrics of this run's commit); the rest of the
        # loadable events were repeats.
        loaded = rows_added(commit["metrics"])
        metrics = {"loaded": loaded, "duplicates": int(by_reason.get(None, 0)) - loaded,
                   "labels_files_written": int(commit["metrics"].get("numFiles", 0))}
        progress.step(f"labels {label}: {loaded} events committed to labels (version {commit['version']})")
        joined = _join_counts(spark, cfg, loaded_events, first_observed, state.as_of, progress)
        q_path = table_path(cfg.paths.warehouse, N.LABELS_QUARANTINE)
        # Nothing quarantined now or before for these dates: a replace would commit an empty change.
        if unread or any(k is not None for k in by_reason) or _quarantined_before(spark, q_path, days, where):
            whole = files_to_label_quarantine(file_rows(spark, unread), run_id, started)
            replace_rows(to_label_quarantine(classified, run_id, started).unionByName(whole).coalesce(1), q_path,
                         (N.LABEL_DATE,), where, LABEL_QUARANTINE_PROPERTIES, policy, run_id)
    finally:
        classified.unpersist()
    quarantined = {k: v for k, v in by_reason.items() if k is not None}
    counts = {"files": len(files), "bytes": sum(f.size for f in files), "records_read": sum(by_reason.values()),
              "loaded": int(metrics["loaded"]), "duplicates": int(metrics["duplicates"]),
              "labels_files_written": metrics["labels_files_written"],
              "quarantined": sum(quarantined.values()), "quarantined_by_reason": dict(sorted(quarantined.items())),
              "unreadable_files": [f"{f.name}: {f.detail}" for f in unread], **joined}
    progress.step(f"labels {label}: read={counts['records_read']} loaded={counts['loaded']} "
                  f"duplicates={counts['duplicates']} quarantined={counts['quarantined']}")
    return counts


def _state(spark: SparkSession, cfg: Config, labels_path: str, before: int | None,
           days: list[datetime]) -> LabelState:
    """The state this run records: labels are known through its last date, also when that day brought
    no label; a rerun of an older date never moves the watermark back."""
    prev = last_state(spark, labels_path, before) if before is not None else None
    as_of = max(days) + timedelta(days=1)
    if prev is not None:
        as_of = max(as_of, prev.as_of)
    elif before is not None:  # events loaded with no state recorded: they tell how far labels go
        as_of = max(as_of, labels_as_of_watermark(read_delta(spark, labels_path)) or as_of)
    rows = tuple(policy_rows(cfg.models))
    return LabelState(as_of, policies_digest(rows), rows)


def _settle_state(spark: SparkSession, labels_path: str, state: LabelState, before: int | None,
                  commit: dict[str, Any]) -> None:
    """Make the latest recorded state this run's, with the furthest watermark any run reached: a
    replace of an empty date makes no commit, and a concurrent run may have committed a later
    watermark between this run's read of the state and its commit (Delta reorders commits of
    disjoint dates without replaying them)."""
    if commit["operation"] is None:
        latest = last_state(spark, labels_path)
        if latest is not None and latest.as_of > state.as_of:  # a concurrent run went further
            state = LabelState(latest.as_of, state.policies, state.rules)
        if latest != state:
            set_state(spark, labels_path, state)
        return
    later = latest_as_of_between(spark, labels_path, before, commit["version"]) if before is not None else None
    if later is not None and later > state.as_of:
        set_state(spark, labels_path, LabelState(later, state.policies, state.rules))


def _join_counts(spark: SparkSession, cfg: Config, loaded: DataFrame, first_observed: datetime | None,
                 as_of: datetime, progress: Progress) -> dict[str, int]:
    """How the run's label events join the served rows they can reach (those served within the
    longest label window before the earliest of them): joinable, observed before the prediction, or
    matching no served row (orphaned). Reads those dates' request ids and serving times only."""
    fl_path = table_path(cfg.paths.warehouse, N.FEATURE_LOGS)
    if first_observed is None or not is_table(spark, fl_path):
        return {"joinable": 0, "orphaned": 0, "before_prediction": 0, "feature_logs_files_read": 0}
    served = read_delta(spark, fl_path).where(F.col(N.EVENT_DATE) >= F.lit(reach_from(first_observed,
                                                                                       label_windows(cfg))))
    row = label_join_counts(loaded, served.select(N.REQUEST_ID, N.LOGGED_AT)).first()
    assert row is not None
    counts = {k: int(row[k]) for k in ("joinable", "orphaned", "before_prediction")}
    # Files the reachable rows' read touches, from the Delta log (partition pruning only).
    counts["feature_logs_files_read"] = len(served.inputFiles())
    progress.step(f"labels as of {as_of:%Y-%m-%d}: joinable={counts['joinable']} "
                  f"orphaned={counts['orphaned']} before_prediction={counts['before_prediction']}")
    return counts


def _quarantined_before(spark: SparkSession, q_path: str, days: list[datetime], where: str) -> bool:
    """Whether the label quarantine may hold rows of these dates, which this run's replace must then
    clear (True when the table does not exist yet: the first run creates it). Storage answers first: a
    date whose partition folder was never written holds no row, and one listing of the table's folders
    answers for every date, where looking inside loads the table's snapshot (a few Spark jobs, about a
    second on 2 cores)."""
    if not is_table(spark, q_path):
        return True
    props = table_properties(spark, q_path)
    # Hive-style folders, unless column mapping or random prefixes put the files elsewhere.
    hive_style = (props.get("delta.columnMapping.mode", "none") == "none"
                  and props.get("delta.randomizeFilePrefixes", "false") != "true")
    written = set(list_subfolders(spark, q_path, f"{N.LABEL_DATE}=")) if hive_style else None
    if written is not None and not any(f"{N.LABEL_DATE}={d:%Y-%m-%d}" in written for d in days):
        return False
    return bool(read_delta(spark, q_path).where(where).limit(1).count())


def examples_as_of(spark: SparkSession, cfg: Config, as_of: datetime) -> DataFrame:
    """Training view: every served prediction, its features, and the label known at `as_of` (label
    history is kept, so this gives the same rows later, after corrections and late labels arrive)."""
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS)
    labels = read_table(spark, cfg.paths.warehouse, N.LABELS)
    policies = local_frame(spark, policy_rows(cfg.models), POLICY_SCHEMA)
    # The logged row rides along in the same scan (no second read of feature_logs to join it back).
    return examples_from_events(logs, labels, policies, as_of, features=True)
