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
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import audit
from skewless.core import names as N
from skewless.core.accounting import UnreadFile, file_key, file_rows, unread_files
from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.delta import (
    current_version,
    file_count,
    is_table,
    others_added_rows,
    read_delta,
    replace_rows,
    rows_added,
)
from skewless.core.errors import ConcurrentCommitError, ConfigError, InvariantError, UsageError
from skewless.core.names import FeatureType
from skewless.core.paths import AVRO_SUFFIX, LANDING_SUFFIXES, predictions_date, predictions_hour, table_path
from skewless.core.policy import HashKey, resolve_key
from skewless.core.progress import Progress, summary
from skewless.core.storage import LandingFile, list_files, list_subfolders
from skewless.ingest.parse import ParseRules, explain_unparsed
from skewless.ingest.sources import AvroFile, classified_hour, unread_avro, walk_avro
from skewless.ingest.transforms import (
    FeatureLimits,
    bytes_read_per_file,
    decide_features,
    drop_rows,
    duplicate_rows,
    feature_sightings,
    feature_types_of,
    files_to_quarantine,
    first_records,
    id_counts,
    ids_in_table,
    members_seen,
    reject_extras,
    run_stats,
    to_feature_logs,
    to_quarantine,
    with_source_lines,
)
from skewless.privacy.job import purge_quarantine
from skewless.privacy.tombstones import forgotten_filter, previous_keys
from skewless.privacy.transforms import MAP_SECTIONS, apply_policy, plan_for
from skewless.serving.logformat import parse_date, parse_hour

# Min/max statistics only where queries and replaceWhere prune: not on every nested feature.
FEATURE_LOG_PROPERTIES = {
    "delta.dataSkippingStatsColumns": f"{N.REQUEST_ID},{N.LOGGED_AT},{N.LANDING_HOUR},{N.SAMPLE_RATE}",
}
# Never min/max statistics of raw text: the Delta log outlives VACUUM and would keep PII prefixes.
QUARANTINE_PROPERTIES = {
    "delta.dataSkippingStatsColumns": f"{N.LANDING_HOUR},{N.REASON}",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--hour", type=checked(parse_hour),
                      help="landing hour to compact, e.g. 2026-11-25T13")
    when.add_argument("--date", type=checked(parse_date),
                      help="compact every landed hour of this date, e.g. 2026-11-25")


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
    incomplete = [r["unreadable_files"] for r in results if r["status"] == "incomplete"]
    total.update(job="compact", hours=len(results), runs=[r["run_id"] for r in results],
                 unreadable_files=sum(len(x) for x in incomplete), seconds=progress.elapsed())
    summary(total)
    return 1 if incomplete else 0  # loaded what could be read; a check failed: some files were not


def table_members(spark: SparkSession, path: str, version: int | None = None) -> dict[str, list[tuple[str, str]]]:
    """(name, simple type) of the fields of each object column the table holds (at `version`)."""
    if not is_table(spark, path):
        return {}
    schema = read_delta(spark, path, version=version).schema
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
                      timedelta(minutes=c.future_tolerance_minutes), features, c.max_record_bytes)


def _ts(value: datetime) -> str:
    return f"TIMESTAMP'{value:%Y-%m-%d %H:%M:%S}'"


@dataclass(frozen=True)
class HourRun:
    """What one landing hour's run needs besides its data: names, rules, paths and the key."""

    hour: datetime          # naive UTC, as stored in landing_hour
    run_id: str
    started: datetime
    files: list[LandingFile]
    avro: list[AvroFile]    # the v2 files among `files`, with their block walks
    rules: ParseRules
    members: dict[str, list[tuple[str, str]]]
    fl_path: str
    q_path: str
    key: HashKey
    pinned: int | None = None  # the feature_logs version dedup read: a later commit by another run means redo

    @property
    def label(self) -> str:
        return f"{self.hour:%Y-%m-%dT%H}"


class _Raced(Exception):
    """Another run added rows to feature_logs after this one read it for dedup: decide again."""


RACE_ATTEMPTS = 4


def compact_hour(spark: SparkSession, cfg: Config, hour: datetime, progress: Progress,
                 key: HashKey, previous: tuple[HashKey, ...] = ()) -> dict[str, Any]:
    """Compact one landing hour. Dedup reads feature_logs at a pinned version; when another run added
    rows after it (two hours compacted at once), the hour is done again (its replaceWhere makes
    that safe) so that an id two runs both saw is loaded once. Bounded: RACE_ATTEMPTS times."""
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return _compact_once(spark, cfg, hour, progress, key, previous)
        except _Raced as raced:
            progress.step(f"hour {hour:%Y-%m-%dT%H}: {raced}; deduplicating again ({attempt}/{RACE_ATTEMPTS})")
    raise ConcurrentCommitError(f"compact {hour:%Y-%m-%dT%H}", RACE_ATTEMPTS, "feature_logs kept changing")


def _compact_once(spark: SparkSession, cfg: Config, hour: datetime, progress: Progress,
                  key: HashKey, previous: tuple[HashKey, ...]) -> dict[str, Any]:
    started = datetime.now(UTC).replace(tzinfo=None)
    fl_path = table_path(cfg.paths.warehouse, N.FEATURE_LOGS)
    pinned = current_version(spark, fl_path)
    members = table_members(spark, fl_path, pinned)
    files = list_files(spark, predictions_hour(cfg.paths.landing, hour), (*LANDING_SUFFIXES, AVRO_SUFFIX))
    run = HourRun(
        hour=hour.replace(tzinfo=None), run_id=f"compact-{hour:%Y%m%dT%H}-{uuid.uuid4().hex[:10]}", started=started,
        files=files, avro=walk_avro(spark, [f for f in files if f.path.endswith(AVRO_SUFFIX)]),
        rules=parse_rules(cfg, hour, feature_types_of(members.get(N.FEATURES, []))), members=members,
        fl_path=fl_path, q_path=table_path(cfg.paths.warehouse, N.FEATURE_LOGS_QUARANTINE), key=key, pinned=pinned)
    progress.step(f"hour {run.label}: {len(run.files)} files ({len(run.avro)} Avro), "
                  f"{sum(f.size for f in run.files) / 1e6:.1f} MB")
    # Parsed once, read by every step below. On disk: memory stays flat whatever the hour's size.
    # Only the steps that report reasons (the counts, the quarantine) explain unparsed lines.
    text_files = [f for f in run.files if not f.path.endswith(AVRO_SUFFIX)]
    parsed = classified_hour(spark, text_files, run.avro, run.hour, run.rules)
    # A forgotten subject's records never load again, whatever file or rerun brings them.
    persisted = forgotten_filter(spark, cfg, (key, *previous))(parsed).persist(StorageLevel.DISK_ONLY)
    held = [persisted]
    try:
        new_features, rejected = _new_features(cfg, run, persisted)
        classified = reject_extras(persisted, new_features, rejected)
        stats = run_stats(explain_unparsed(classified)).collect()
        progress.step(f"hour {run.label}: parsed {sum(r['n'] for r in stats)} lines")
        firsts = first_records(classified).persist(StorageLevel.MEMORY_AND_DISK)
        held.append(firsts)
        unreadable = _unread(spark, run, firsts)
        for f in unreadable:
            progress.step(f"hour {run.label}: WARNING {f.name}: {f.detail}")
        valid_hours = [r["hour"] for r in stats if r[N.REASON] is None]
        # Each step's input is read once: the run's id counts, then the table's ids they hit.
        broadcast_ids = sum(r["n"] for r in stats if r[N.REASON] is None) <= cfg.compaction.dedup_broadcast_max_ids
        counts = id_counts(classified).persist(StorageLevel.MEMORY_AND_DISK)
        known = ids_in_table(_existing_ids(spark, cfg, run, valid_hours), counts,
                             broadcast_ids=broadcast_ids).persist(StorageLevel.MEMORY_AND_DISK)
        dups = duplicate_rows(classified, counts, known, broadcast_ids=broadcast_ids).persist(
            StorageLevel.MEMORY_AND_DISK)
        held.extend((counts, known, dups))
        # The privacy step: members without a policy stop the run here, before the first write.
        plan = plan_for(cfg.privacy_policy, key, members_seen(stats),
                        {k: [n for n, _ in v] for k, v in members.items()}, [*run.rules.features, *new_features],
                        run.label)
        located = with_source_lines(classified, firsts)
        rows = apply_policy(to_feature_logs(drop_rows(located, dups), new_features, run.run_id, started), plan)
        dedup, versions = _write(spark, cfg, run, rows, located, dups, unreadable, progress)
        optimized = _optimize(spark, cfg, fl_path, sorted(set(valid_hours)))
    finally:
        for df in held:
            df.unpersist()
    record = audit.compaction_record(
        run_id=run.run_id, hour=run.hour, started=started, files=run.files, stats=stats, dedup=dedup,
        new_features=new_features, known_models={m.name for m in cfg.models}, versions=versions,
        optimized=optimized, config=cfg.source,
    )
    record["quarantined_written"] = dedup["quarantined_written"]
    return _finish(spark, cfg, run, record, unreadable, progress)


def _new_features(cfg: Config, run: HourRun, classified: DataFrame) -> tuple[dict[str, FeatureType], dict[str, str]]:
    """The undeclared features this run adds as columns, and the names it rejects (with why)."""
    c = cfg.compaction
    sightings = [(r["name"], r["values"], r["numeric"], r["boolean"], r["string"])
                 for r in feature_sightings(classified).collect()]
    return decide_features(sightings, list(run.rules.features),
                           FeatureLimits(c.max_new_features_per_run, c.max_features))


def _write(spark: SparkSession, cfg: Config, run: HourRun, rows: DataFrame, located: DataFrame, dups: DataFrame,
           unreadable: list[UnreadFile], progress: Progress) -> tuple[dict[str, int], tuple[int, int]]:
    """The hour's two commits: feature_logs, then its quarantine, each replacing the landing hour's rows."""
    policy = cfg.privacy_policy
    dup_counts = {r[0]: r[1] for r in dups.groupBy(N.DUP_KIND).count().collect()}
    lo = (run.hour - run.rules.late_tolerance).date()
    hi = (run.hour + timedelta(hours=1) + run.rules.future_tolerance).date()
    fl_commit = replace_rows(
        rows, run.fl_path, N.FEATURE_LOG_PARTITIONS,
        f"{N.EVENT_DATE} >= DATE'{lo}' AND {N.EVENT_DATE} <= DATE'{hi}' AND {N.LANDING_HOUR} = {_ts(run.hour)}",
        FEATURE_LOG_PROPERTIES, policy, run.run_id)
    raced = others_added_rows(spark, run.fl_path, run.pinned, run.run_id)
    if raced:
        raise _Raced(f"feature_logs v{raced} committed by another run since v{run.pinned}, which dedup read")
    # Rows counted where written: Delta's own metrics of this run's commit (an Observation can wait
    # forever when its first execution failed and a retry ran it again).
    dedup = {"loaded": rows_added(fl_commit["metrics"]), N.DUP_IN_RUN: dup_counts.get(N.DUP_IN_RUN, 0),
             N.DUP_EXISTING: dup_counts.get(N.DUP_EXISTING, 0)}
    progress.step(f"hour {run.label}: feature_logs v{fl_commit['version']} written")
    lines = to_quarantine(explain_unparsed(located), run.run_id, run.started)
    files = files_to_quarantine(file_rows(spark, unreadable), run.hour, run.run_id, run.started)
    q_commit = replace_rows(
        lines.unionByName(files).coalesce(1), run.q_path,
        N.QUARANTINE_PARTITIONS,
        f"{N.LANDING_DATE} = DATE'{run.hour.date()}' AND {N.LANDING_HOUR} = {_ts(run.hour)}",
        QUARANTINE_PROPERTIES, policy, run.run_id)
    dedup["quarantined_written"] = rows_added(q_commit["metrics"]) - len(unreadable)
    progress.step(f"hour {run.label}: quarantine v{q_commit['version']} written")
    return dedup, (fl_commit["version"], q_commit["version"])


def _finish(spark: SparkSession, cfg: Config, run: HourRun, record: dict[str, Any], unreadable: list[UnreadFile],
            progress: Progress) -> dict[str, Any]:
    """The audit row, last: a run without one did not finish. Lines read must equal rows written to
    feature_logs plus duplicates plus rows written to the quarantine, each counted where it happened."""
    record["truncated_files"] = [f.name for f in unreadable]
    record["unreadable_files"] = [f"{f.name}: {f.detail}" for f in unreadable]
    record.update(privacy_policy=cfg.privacy_policy.tag, key_version=run.key.version)
    written = record.pop("quarantined_written")
    reconciled = (record["records_read"] == record["loaded"] + record["duplicates"] + written
                  and written == record["quarantined"])
    record["status"] = ("failed_reconciliation" if not reconciled else "incomplete" if unreadable else "succeeded")
    audit.append(spark, table_path(cfg.paths.warehouse, N.INGESTION_AUDIT), record)
    progress.step(
        f"hour {run.label}: read={record['records_read']} loaded={record['loaded']} "
        f"duplicates={record['duplicates']} quarantined={record['quarantined']} late={record['late_records']} "
        f"unreadable_files={len(unreadable)} new_features={sorted(record['new_features'])} "
        f"({record['duration_s']:.1f}s)")
    if not reconciled:
        raise InvariantError(f"run {run.run_id}: lines read != loaded + duplicates + quarantined rows written: "
                             f"{record['records_read']} != {record['loaded']} + {record['duplicates']} + {written}")
    return record


def _unread(spark: SparkSession, run: HourRun, firsts: DataFrame) -> list[UnreadFile]:
    """The run's files not read whole (cut, not gzip or Avro, a corrupt block, an I/O error): loud,
    never silent. Units read per file: bytes of lines for v1, records for v2."""
    read = {file_key(r[N.SOURCE_FILE]): int(r["bytes"]) for r in bytes_read_per_file(firsts).collect()}
    text = [f for f in run.files if not f.path.endswith(AVRO_SUFFIX)]
    return sorted(unread_files(spark, text, read) + unread_avro(run.avro, read), key=lambda f: f.path)


def _existing_ids(spark: SparkSession, cfg: Config, run: HourRun, event_hours: list[datetime]) -> DataFrame:
    """Request ids already loaded by other landing hours near this run's event hours."""
    path, hour = run.fl_path, run.hour
    if not event_hours or run.pinned is None:
        # Not `local_frame`: an empty local relation lets the optimizer fold the dedup join into
        # projections of nulls whose constraint inference grew the heap until it ran out (measured).
        return spark.createDataFrame([], T.StructType([T.StructField(N.REQUEST_ID, T.StringType())]))
    pad = timedelta(hours=cfg.compaction.dedup_lookback_hours)
    lo, hi = (min(event_hours) - pad).date(), (max(event_hours) + pad).date()
    table = read_delta(spark, path, version=run.pinned)
    return table.where((F.col(N.EVENT_DATE) >= F.lit(lo)) & (F.col(N.EVENT_DATE) <= F.lit(hi))
                       & (F.col(N.LANDING_HOUR) != F.lit(hour).cast("timestamp"))).select(N.REQUEST_ID)


def _optimize(spark: SparkSession, cfg: Config, path: str, event_hours: list[datetime]) -> list[str]:
    """Compact the small files of each touched event hour once it holds `min_files` or more."""
    policy = cfg.compaction.optimize
    done: list[str] = []
    if not policy.enabled or not is_table(spark, path):
        return done
    # The table's file count comes from its log's checksum, far cheaper than listing each hour's files.
    # A table with fewer files than the threshold has no hour that reaches it.
    if file_count(spark, path) < policy.min_files:
        return done
    for h in event_hours:
        pred = f"{N.EVENT_DATE} = DATE'{h.date()}' AND {N.EVENT_HOUR} = {h.hour}"
        n_files = len(read_delta(spark, path).where(pred).inputFiles())
        if n_files >= policy.min_files:
            DeltaTable.forPath(spark, path).optimize().where(pred).executeCompaction()
            done.append(f"{h:%Y-%m-%dT%H}")
    return done
