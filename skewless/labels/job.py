"""`skewless labels`: ingest label dates, then bring `label_choices` up to date (MERGE or recompute);
`labeled_examples` is derived from it at read time (`skewless.labels.view`)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
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
from skewless.core.errors import InvariantError, UsageError
from skewless.core.localframe import local_frame
from skewless.core.paths import LANDING_SUFFIXES, labels_date, labels_root, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import list_files, list_subfolders, read_landing_text
from skewless.labels.choices import update_choices
from skewless.labels.sync import LABEL_DATES_KEY
from skewless.labels.transforms import (
    EXAMPLE_COLUMNS,
    POLICY_SCHEMA,
    SERVED_COLUMNS,
    classify_labels,
    dedup_label_events,
    examples_from_events,
    files_to_label_quarantine,
    policy_rows,
    to_label_quarantine,
    to_labels,
    with_features,
)
from skewless.privacy.tombstones import forgotten_filter
from skewless.serving.logformat import parse_date

LABEL_PROPERTIES = {"delta.enableChangeDataFeed": "true"}
LABEL_QUARANTINE_PROPERTIES = {"delta.dataSkippingStatsColumns": f"{N.REASON},{N.REQUEST_ID}"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=checked(parse_date),
                      help="label date folder to ingest, e.g. 2026-12-06 (the nightly run)")
    when.add_argument("--through", type=checked(parse_date),
                      help="ingest every label date folder up to this date (a backfill)")
    p.add_argument("--full", action="store_true", help="recompute label_choices from scratch instead of MERGE")


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
    first_observed = counts.pop("first_observed")
    counts.update(update_choices(spark, cfg, days, full=getattr(args, "full", False), progress=progress,
                                 ingested=True, first_observed=first_observed))
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
        events = dedup_label_events(classified)
        where = _dates_sql(days)
        policy = cfg.privacy_policy
        # The commit names its dates: the next run takes them if this one dies before label_choices.
        commit = replace_rows(to_labels(events, run_id, started), table_path(cfg.paths.warehouse, N.LABELS),
                              (N.LABEL_DATE,), where, LABEL_PROPERTIES, policy, run_id,
                              {LABEL_DATES_KEY: [f"{d:%Y-%m-%d}" for d in days]})
        # Loaded: counted where written (Delta's metrics of this run's commit); the rest of the
        # loadable events were repeats.
        loaded = rows_added(commit["metrics"])
        metrics = {"loaded": loaded, "duplicates": int(by_reason.get(None, 0)) - loaded}
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
              "quarantined": sum(quarantined.values()), "quarantined_by_reason": dict(sorted(quarantined.items())),
              "unreadable_files": [f"{f.name}: {f.detail}" for f in unread], "first_observed": first_observed}
    progress.step(f"labels {label}: read={counts['records_read']} loaded={counts['loaded']} "
                  f"duplicates={counts['duplicates']} quarantined={counts['quarantined']}")
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
    examples = examples_from_events(logs.select(*SERVED_COLUMNS), labels, policies, as_of).select(*EXAMPLE_COLUMNS)
    return with_features(examples, logs)
