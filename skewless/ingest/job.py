"""`skewless compact`: read a landing hour, call the transforms in `ingest.transforms`, write, audit.

A landing hour is the unit of work: one `replaceWhere` commit per table replaces exactly its rows, so a
rerun converges and a killed run leaves the previous commit visible; the audit row comes last.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import audit
from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta, replace_rows
from skewless.core.errors import ConfigError, InvariantError, UsageError
from skewless.core.names import FeatureType
from skewless.core.paths import LANDING_SUFFIXES, predictions_date, predictions_hour, table_path
from skewless.core.policy import HashKey, resolve_key
from skewless.core.progress import Progress, summary
from skewless.core.storage import LandingFile, gzip_isize, list_files, list_subfolders, read_landing_text
from skewless.ingest.parse import LINE_COLUMNS, ParseRules, classify_lines, explain_unparsed, parse_lines
from skewless.ingest.transforms import (
    bytes_read_per_file,
    drop_rows,
    duplicate_rows,
    feature_sightings,
    feature_types_of,
    first_records,
    infer_feature_types,
    members_seen,
    run_stats,
    to_feature_logs,
    to_quarantine,
    truncated_files,
    with_source_lines,
)
from skewless.privacy.job import purge_quarantine
from skewless.privacy.tombstones import forgotten_filter, previous_keys
from skewless.privacy.transforms import MAP_SECTIONS, apply_policy, plan_for
from skewless.serving.logformat import parse_date, parse_hour

# Min/max statistics only where queries and replaceWhere prune: not on every nested feature.
# The change data feed lets the labels job read only the rows added since its last run.
FEATURE_LOG_PROPERTIES = {
    "delta.dataSkippingStatsColumns": f"{N.REQUEST_ID},{N.LOGGED_AT},{N.LANDING_HOUR},{N.SAMPLE_RATE}",
    "delta.enableChangeDataFeed": "true",
}
# Never min/max statistics of raw text: the Delta log outlives VACUUM and would keep PII prefixes.
QUARANTINE_PROPERTIES = {
    "delta.dataSkippingStatsColumns": f"{N.LANDING_HOUR},{N.REASON}",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--hour", help="landing hour to compact, e.g. 2026-11-25T13")
    when.add_argument("--date", help="compact every landed hour of this date, e.g. 2026-11-25")


def hours_to_run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> list[datetime]:
    try:
        if args.hour:
            return [parse_hour(args.hour)]
        day = parse_date(args.date)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    folder = predictions_date(cfg.paths.landing, day)
    return [day.replace(hour=int(name.split("=")[1])) for name in list_subfolders(spark, folder, "hour=")]


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    progress = Progress("compact")
    policy = cfg.privacy_policy
    # Before any read: prod refuses a missing key, and only demo/test may use the public demo key.
    key = resolve_key(policy.key, cfg.profile, policy.source, warehouse=cfg.paths.warehouse)
    previous = previous_keys(cfg)
    hours = hours_to_run(spark, cfg, args)
    if not hours:
        progress.step(f"no landing hours found for {args.date}")
    results = []
    for hour in hours:
        results.append(compact_hour(spark, cfg, hour, progress, key, previous))
    keys = ("files", "records_read", "loaded", "duplicates", "quarantined", "late_records")
    total: dict[str, Any] = {k: sum(r[k] for r in results) for k in keys}
    if args.date:  # the nightly run also enforces the quarantine's retention
        purged = purge_quarantine(spark, cfg, None, policy.retention.vacuum_retain_hours, progress)
        total["purged_quarantine"] = sum(v for k, v in purged.items() if k.startswith("purged_"))
    total.update(job="compact", hours=len(results), runs=[r["run_id"] for r in results],
                 seconds=progress.elapsed())
    summary(total)
    return 0


def read_lines(spark: SparkSession, files: list[LandingFile], hour: datetime) -> DataFrame:
    lines = read_landing_text(spark, files)
    return lines.select(*lines.columns, F.lit(hour).cast("timestamp").alias(N.LANDING_HOUR)).select(*LINE_COLUMNS)


def table_members(spark: SparkSession, path: str) -> dict[str, list[tuple[str, str]]]:
    """(name, simple type) of the fields of each object column the table already holds."""
    if not is_table(spark, path):
        return {}
    schema = read_delta(spark, path).schema
    out: dict[str, list[tuple[str, str]]] = {}
    for name in (N.FEATURES, *MAP_SECTIONS):
        struct = schema[name].dataType if name in schema.fieldNames() else None
        if isinstance(struct, T.StructType):
            out[name] = [(f.name, f.dataType.simpleString()) for f in struct.fields]
    return out


def parse_rules(cfg: Config, hour: datetime, existing: dict[str, FeatureType]) -> ParseRules:
    features = dict(existing)
    for name, ftype in cfg.declared_features().items():
        if name in existing and existing[name] != ftype:
            raise ConfigError(cfg.source, f"models: feature {name}.type",
                              f"declared {ftype} but {N.FEATURE_LOGS} stores it as {existing[name]}")
        features.setdefault(name, ftype)
    c = cfg.compaction
    return ParseRules(hour, timedelta(hours=c.late_tolerance_hours),
                      timedelta(minutes=c.future_tolerance_minutes), features)


def _ts(value: datetime) -> str:
    return f"TIMESTAMP'{value:%Y-%m-%d %H:%M:%S}'"


@dataclass(frozen=True)
class HourRun:
    """What one landing hour's run needs besides its data: names, rules, paths and the key."""

    hour: datetime          # naive UTC, as stored in landing_hour
    run_id: str
    started: datetime
    files: list[LandingFile]
    rules: ParseRules
    members: dict[str, list[tuple[str, str]]]
    fl_path: str
    q_path: str
    key: HashKey

    @property
    def label(self) -> str:
        return f"{self.hour:%Y-%m-%dT%H}"


def compact_hour(spark: SparkSession, cfg: Config, hour: datetime, progress: Progress,
                 key: HashKey, previous: tuple[HashKey, ...] = ()) -> dict[str, Any]:
    started = datetime.now(UTC).replace(tzinfo=None)
    fl_path = table_path(cfg.paths.warehouse, N.FEATURE_LOGS)
    members = table_members(spark, fl_path)
    run = HourRun(
        hour=hour.replace(tzinfo=None), run_id=f"compact-{hour:%Y%m%dT%H}-{uuid.uuid4().hex[:10]}", started=started,
        files=list_files(spark, predictions_hour(cfg.paths.landing, hour), LANDING_SUFFIXES),
        rules=parse_rules(cfg, hour, feature_types_of(members.get(N.FEATURES, []))), members=members,
        fl_path=fl_path, q_path=table_path(cfg.paths.warehouse, N.FEATURE_LOGS_QUARANTINE), key=key)
    progress.step(f"hour {run.label}: {len(run.files)} files, {sum(f.size for f in run.files) / 1e6:.1f} MB")
    # Parsed once, read by every step below. On disk: memory stays flat whatever the hour's size.
    # Only the steps that report reasons (the counts, the quarantine) explain unparsed lines.
    classified = classify_lines(parse_lines(read_lines(spark, run.files, run.hour)), run.rules)
    # A forgotten subject's records never load again, whatever file or rerun brings them.
    classified = forgotten_filter(spark, cfg, (key, *previous))(classified).persist(StorageLevel.DISK_ONLY)
    held = [classified]
    try:
        stats = run_stats(explain_unparsed(classified)).collect()
        progress.step(f"hour {run.label}: parsed {sum(r['n'] for r in stats)} lines")
        firsts = first_records(classified).persist(StorageLevel.MEMORY_AND_DISK)
        held.append(firsts)
        truncated = _truncated(spark, run.files, firsts)
        for name in truncated:
            progress.step(f"hour {run.label}: WARNING {name} ended early (a cut upload) or is not UTF-8: "
                          "its readable lines load, the rest cannot be read")
        new_features = {k: v for k, v in infer_feature_types(
            [(r["name"], r["values"], r["numeric"], r["boolean"]) for r in feature_sightings(classified).collect()]
        ).items() if k not in run.rules.features}
        valid_hours = [r["hour"] for r in stats if r[N.REASON] is None]
        dups = duplicate_rows(classified, _existing_ids(spark, cfg, run, valid_hours)).persist(
            StorageLevel.MEMORY_AND_DISK)
        held.append(dups)
        # The privacy step: members without a policy stop the run here, before the first write.
        plan = plan_for(cfg.privacy_policy, key, members_seen(stats),
                        {k: [n for n, _ in v] for k, v in members.items()}, [*run.rules.features, *new_features],
                        run.label)
        located = with_source_lines(classified, firsts)
        rows = apply_policy(to_feature_logs(drop_rows(located, dups), new_features, run.run_id, started), plan)
        dedup, versions = _write(cfg, run, rows, located, dups, progress)
        optimized = _optimize(spark, cfg, fl_path, sorted(set(valid_hours)))
    finally:
        for df in held:
            df.unpersist()
    record = audit.compaction_record(
        run_id=run.run_id, hour=run.hour, started=started, files=run.files, stats=stats, dedup=dedup,
        new_features=new_features, known_models={m.name for m in cfg.models}, versions=versions,
        optimized=optimized, config=cfg.source,
    )
    return _finish(spark, cfg, run, record, truncated, progress)


def _write(cfg: Config, run: HourRun, rows: DataFrame, located: DataFrame, dups: DataFrame,
           progress: Progress) -> tuple[dict[str, int], tuple[int, int]]:
    """The hour's two commits: feature_logs, then its quarantine, each replacing the landing hour's rows."""
    policy = cfg.privacy_policy
    dup_counts = {r[0]: r[1] for r in dups.groupBy(N.DUP_KIND).count().collect()}
    obs = Observation(f"loaded-{run.run_id}")
    lo = (run.hour - run.rules.late_tolerance).date()
    hi = (run.hour + timedelta(hours=1) + run.rules.future_tolerance).date()
    fl_commit = replace_rows(
        rows.observe(obs, F.count(F.lit(1)).alias("loaded")), run.fl_path, N.FEATURE_LOG_PARTITIONS,
        f"{N.EVENT_DATE} >= DATE'{lo}' AND {N.EVENT_DATE} <= DATE'{hi}' AND {N.LANDING_HOUR} = {_ts(run.hour)}",
        FEATURE_LOG_PROPERTIES, policy)
    dedup = {"loaded": obs.get["loaded"], N.DUP_IN_RUN: dup_counts.get(N.DUP_IN_RUN, 0),
             N.DUP_EXISTING: dup_counts.get(N.DUP_EXISTING, 0)}
    progress.step(f"hour {run.label}: feature_logs v{fl_commit['version']} written")
    q_commit = replace_rows(
        to_quarantine(explain_unparsed(located), run.run_id, run.started).coalesce(1), run.q_path,
        N.QUARANTINE_PARTITIONS,
        f"{N.LANDING_DATE} = DATE'{run.hour.date()}' AND {N.LANDING_HOUR} = {_ts(run.hour)}",
        QUARANTINE_PROPERTIES, policy)
    progress.step(f"hour {run.label}: quarantine v{q_commit['version']} written")
    return dedup, (fl_commit["version"], q_commit["version"])


def _finish(spark: SparkSession, cfg: Config, run: HourRun, record: dict[str, Any], truncated: list[str],
            progress: Progress) -> dict[str, Any]:
    """The audit row, last: a run without one did not finish."""
    record["truncated_files"] = truncated
    record.update(privacy_policy=cfg.privacy_policy.tag, key_version=run.key.version)
    reconciled = record["records_read"] == record["loaded"] + record["duplicates"] + record["quarantined"]
    record["status"] = "succeeded" if reconciled else "failed_reconciliation"
    audit.append(spark, table_path(cfg.paths.warehouse, N.INGESTION_AUDIT), record)
    progress.step(
        f"hour {run.label}: read={record['records_read']} loaded={record['loaded']} "
        f"duplicates={record['duplicates']} quarantined={record['quarantined']} late={record['late_records']} "
        f"new_features={sorted(record['new_features'])} ({record['duration_s']:.1f}s)")
    if not reconciled:
        raise InvariantError(f"run {run.run_id}: read != loaded + duplicates + quarantined: {record}")
    return record


def _truncated(spark: SparkSession, files: list[LandingFile], firsts: DataFrame) -> list[str]:
    """Names of gzip files that ended early (a cut upload): Spark reads them up to the cut, silently."""
    gz = {f.path.rsplit("/", 1)[-1]: f for f in files if f.path.endswith(".gz")}
    if not gz:
        return []
    read = {r[N.SOURCE_FILE].rsplit("/", 1)[-1]: int(r["bytes"]) for r in bytes_read_per_file(firsts).collect()}
    sizes = {name: size for name, f in gz.items() if (size := gzip_isize(spark, f.path, f.size)) is not None}
    return truncated_files(read, sizes) + sorted(name for name, f in gz.items() if f.size < 18)


def _existing_ids(spark: SparkSession, cfg: Config, run: HourRun, event_hours: list[datetime]) -> DataFrame:
    """Request ids already loaded by other landing hours near this run's event hours."""
    path, hour = run.fl_path, run.hour
    if not event_hours or not is_table(spark, path):
        return spark.createDataFrame([], T.StructType([T.StructField(N.REQUEST_ID, T.StringType())]))
    pad = timedelta(hours=cfg.compaction.dedup_lookback_hours)
    lo, hi = (min(event_hours) - pad).date(), (max(event_hours) + pad).date()
    table = read_delta(spark, path)
    return table.where((F.col(N.EVENT_DATE) >= F.lit(lo)) & (F.col(N.EVENT_DATE) <= F.lit(hi))
                       & (F.col(N.LANDING_HOUR) != F.lit(hour).cast("timestamp"))).select(N.REQUEST_ID)


def _optimize(spark: SparkSession, cfg: Config, path: str, event_hours: list[datetime]) -> list[str]:
    """Compact the small files of each touched event hour once it holds `min_files` or more."""
    policy = cfg.compaction.optimize
    done: list[str] = []
    if not policy.enabled or not is_table(spark, path):
        return done
    for h in event_hours:
        pred = f"{N.EVENT_DATE} = DATE'{h.date()}' AND {N.EVENT_HOUR} = {h.hour}"
        n_files = len(read_delta(spark, path).where(pred).inputFiles())
        if n_files >= policy.min_files:
            DeltaTable.forPath(spark, path).optimize().where(pred).executeCompaction()
            done.append(f"{h:%Y-%m-%dT%H}")
    return done
