"""The I/O half of compaction: read a landing hour, call the transforms in jobs.compact, write, audit."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import audit
from jobs import names as N
from jobs.access import POLICY_PROPERTY, tagged
from jobs.compact import (
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
from jobs.config import FeatureType, Warehouse
from jobs.errors import ConfigError, InvariantError, UsageError
from jobs.logformat import hour_folder, parse_date, parse_hour
from jobs.parse import LINE_COLUMNS, ParseRules, classify_lines, explain_unparsed, parse_lines
from jobs.policy import HashKey, PrivacyPolicy, resolve_key
from jobs.privacy import MAP_SECTIONS, apply_policy, plan_for
from jobs.progress import Progress, summary
from jobs.tables import (
    LandingFile,
    ensure_table,
    gzip_isize,
    is_table,
    last_commit,
    list_files,
    list_subfolders,
    qualify,
    read_landing_text,
    table_path,
)

SUFFIXES = (".jsonl", ".jsonl.gz")
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


def hours_to_run(spark: SparkSession, wh: Warehouse, args: argparse.Namespace) -> list[datetime]:
    try:
        if args.hour:
            return [parse_hour(args.hour)]
        day = parse_date(args.date)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    folder = f"{qualify(wh.paths.landing)}/{N.PREDICTIONS_DIR}/date={day:%Y-%m-%d}"
    return [day.replace(hour=int(name.split("=")[1])) for name in list_subfolders(spark, folder, "hour=")]


def run(spark: SparkSession, wh: Warehouse, args: argparse.Namespace) -> int:
    progress = Progress("compact")
    policy = wh.privacy_policy
    key = resolve_key(policy.key, wh.profile, policy.source)  # prod refuses a missing or demo key: before any read
    hours = hours_to_run(spark, wh, args)
    if not hours:
        progress.step(f"no landing hours found for {args.date}")
    results = []
    for hour in hours:
        results.append(compact_hour(spark, wh, hour, progress, key))
    keys = ("files", "records_read", "loaded", "duplicates", "quarantined", "late_records")
    total: dict[str, Any] = {k: sum(r[k] for r in results) for k in keys}
    if args.date:  # the nightly run also enforces the quarantine's retention
        from jobs.forget_run import purge_quarantine

        purged = purge_quarantine(spark, wh, None, policy.retention.vacuum_retain_hours, progress)
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
    schema = spark.read.format("delta").load(path).schema
    out: dict[str, list[tuple[str, str]]] = {}
    for name in (N.FEATURES, *MAP_SECTIONS):
        struct = schema[name].dataType if name in schema.fieldNames() else None
        if isinstance(struct, T.StructType):
            out[name] = [(f.name, f.dataType.simpleString()) for f in struct.fields]
    return out


def parse_rules(wh: Warehouse, hour: datetime, existing: dict[str, FeatureType]) -> ParseRules:
    features = dict(existing)
    for name, ftype in wh.declared_features().items():
        if name in existing and existing[name] != ftype:
            raise ConfigError(wh.source, f"models: feature {name}.type",
                              f"declared {ftype} but {N.FEATURE_LOGS} stores it as {existing[name]}")
        features.setdefault(name, ftype)
    c = wh.compaction
    return ParseRules(hour, timedelta(hours=c.late_tolerance_hours),
                      timedelta(minutes=c.future_tolerance_minutes), features)


def _ts(value: datetime) -> str:
    return f"TIMESTAMP'{value:%Y-%m-%d %H:%M:%S}'"


def compact_hour(spark: SparkSession, wh: Warehouse, hour: datetime, progress: Progress,
                 key: HashKey) -> dict[str, Any]:
    started = datetime.now(UTC).replace(tzinfo=None)
    run_id = f"compact-{hour:%Y%m%dT%H}-{uuid.uuid4().hex[:10]}"
    label = f"{hour:%Y-%m-%dT%H}"
    files = list_files(spark, f"{qualify(wh.paths.landing)}/{hour_folder(N.PREDICTIONS_DIR, hour)}", SUFFIXES)
    fl_path = table_path(wh.paths.warehouse, N.FEATURE_LOGS)
    q_path = table_path(wh.paths.warehouse, N.FEATURE_LOGS_QUARANTINE)
    policy = wh.privacy_policy
    members = table_members(spark, fl_path)
    rules = parse_rules(wh, hour, feature_types_of(members.get(N.FEATURES, [])))
    progress.step(f"hour {label}: {len(files)} files, {sum(f.size for f in files) / 1e6:.1f} MB")
    naive_hour = hour.replace(tzinfo=None)
    lines = read_lines(spark, files, naive_hour)
    # Parsed once, read by every step below. On disk: memory stays flat whatever the hour's size.
    # Only the steps that report reasons (the counts, the quarantine) explain unparsed lines.
    classified = classify_lines(parse_lines(lines), rules).persist(StorageLevel.DISK_ONLY)
    firsts = dups = None
    try:
        stats = run_stats(explain_unparsed(classified)).collect()
        progress.step(f"hour {label}: parsed {sum(r['n'] for r in stats)} lines")
        firsts = first_records(classified).persist(StorageLevel.MEMORY_AND_DISK)
        truncated = _truncated(spark, files, firsts)
        for name in truncated:
            progress.step(f"hour {label}: WARNING {name} ended early (a cut upload) or is not UTF-8: "
                          "its readable lines load, the rest cannot be read")
        new_features = {k: v for k, v in infer_feature_types(
            [(r["name"], r["values"], r["numeric"], r["boolean"]) for r in feature_sightings(classified).collect()]
        ).items() if k not in rules.features}
        valid_hours = [r["hour"] for r in stats if r[N.REASON] is None]
        existing = _existing_ids(spark, wh, fl_path, naive_hour, valid_hours)
        dups = duplicate_rows(classified, existing).persist(StorageLevel.MEMORY_AND_DISK)
        dup_counts = {r[0]: r[1] for r in dups.groupBy(N.DUP_KIND).count().collect()}
        # The privacy step: members without a policy stop the run here, before the first write.
        plan = plan_for(policy, key, members_seen(stats), {k: [n for n, _ in v] for k, v in members.items()},
                        [*rules.features, *new_features], label)
        located = with_source_lines(classified, firsts)
        rows = apply_policy(to_feature_logs(drop_rows(located, dups), new_features, run_id, started), plan)
        obs = Observation(f"loaded-{run_id}")
        lo = (naive_hour - rules.late_tolerance).date()
        hi = (naive_hour + timedelta(hours=1) + rules.future_tolerance).date()
        fl_commit = replace_rows(
            rows.observe(obs, F.count(F.lit(1)).alias("loaded")), fl_path, N.FEATURE_LOG_PARTITIONS,
            f"{N.EVENT_DATE} >= DATE'{lo}' AND {N.EVENT_DATE} <= DATE'{hi}' AND {N.LANDING_HOUR} = {_ts(naive_hour)}",
            FEATURE_LOG_PROPERTIES, policy)
        dedup = {"loaded": obs.get["loaded"], N.DUP_IN_RUN: dup_counts.get(N.DUP_IN_RUN, 0),
                 N.DUP_EXISTING: dup_counts.get(N.DUP_EXISTING, 0)}
        progress.step(f"hour {label}: feature_logs v{fl_commit['version']} written")
        q_commit = replace_rows(
            to_quarantine(explain_unparsed(located), run_id, started).coalesce(1), q_path, N.QUARANTINE_PARTITIONS,
            f"{N.LANDING_DATE} = DATE'{naive_hour.date()}' AND {N.LANDING_HOUR} = {_ts(naive_hour)}",
            QUARANTINE_PROPERTIES, policy)
        progress.step(f"hour {label}: quarantine v{q_commit['version']} written")
        optimized = _optimize(spark, wh, fl_path, sorted(set(valid_hours)))
    finally:
        for df in (classified, firsts, dups):
            if df is not None:
                df.unpersist()
    record = audit.compaction_record(
        run_id=run_id, hour=naive_hour, started=started, files=files, stats=stats, dedup=dedup,
        new_features=new_features, known_models={m.name for m in wh.models},
        versions=(fl_commit["version"], q_commit["version"]), optimized=optimized, config=wh.source,
    )
    record["truncated_files"] = truncated
    record.update(privacy_policy=policy.tag, key_version=key.version)
    reconciled = record["records_read"] == record["loaded"] + record["duplicates"] + record["quarantined"]
    record["status"] = "succeeded" if reconciled else "failed_reconciliation"
    audit.append(spark, table_path(wh.paths.warehouse, N.INGESTION_AUDIT), record)
    progress.step(
        f"hour {label}: read={record['records_read']} loaded={record['loaded']} "
        f"duplicates={record['duplicates']} quarantined={record['quarantined']} late={record['late_records']} "
        f"new_features={sorted(new_features)} ({record['duration_s']:.1f}s)")
    if not reconciled:
        raise InvariantError(f"run {run_id}: read != loaded + duplicates + quarantined: {record}")
    return record


def replace_rows(df: DataFrame, path: str, partitions: tuple[str, ...], where: str,
                 properties: dict[str, str], policy: PrivacyPolicy) -> dict[str, Any]:
    """One Delta commit that swaps the rows matching `where` (a landing hour, a label date) for `df`:
    a rerun converges, a crash before the commit leaves the previous version. New columns merge.
    Columns carry their access tags; the commit records the privacy policy's version."""
    df = tagged(df, path.rstrip("/").rsplit("/", 1)[-1], policy)
    ensure_table(spark=df.sparkSession, path=path, schema=df.schema, partitions=partitions,
                 properties={**properties, POLICY_PROPERTY: policy.tag})
    (df.write.format("delta").mode("overwrite").option("mergeSchema", "true").option("replaceWhere", where)
     .option("userMetadata", f'{{"{POLICY_PROPERTY}": "{policy.tag}"}}').partitionBy(*partitions).save(path))
    return last_commit(df.sparkSession, path)


def _truncated(spark: SparkSession, files: list[LandingFile], firsts: DataFrame) -> list[str]:
    """Names of gzip files that ended early (a cut upload): Spark reads them up to the cut, silently."""
    gz = {f.path.rsplit("/", 1)[-1]: f for f in files if f.path.endswith(".gz")}
    if not gz:
        return []
    read = {r[N.SOURCE_FILE].rsplit("/", 1)[-1]: int(r["bytes"]) for r in bytes_read_per_file(firsts).collect()}
    sizes = {name: size for name, f in gz.items() if (size := gzip_isize(spark, f.path, f.size)) is not None}
    return truncated_files(read, sizes) + sorted(name for name, f in gz.items() if f.size < 18)


def _existing_ids(spark: SparkSession, wh: Warehouse, path: str, hour: datetime,
                  event_hours: list[datetime]) -> DataFrame:
    """Request ids already loaded by other landing hours near this run's event hours."""
    if not event_hours or not is_table(spark, path):
        return spark.createDataFrame([], T.StructType([T.StructField(N.REQUEST_ID, T.StringType())]))
    pad = timedelta(hours=wh.compaction.dedup_lookback_hours)
    lo, hi = (min(event_hours) - pad).date(), (max(event_hours) + pad).date()
    table = spark.read.format("delta").load(path)
    return table.where((F.col(N.EVENT_DATE) >= F.lit(lo)) & (F.col(N.EVENT_DATE) <= F.lit(hi))
                       & (F.col(N.LANDING_HOUR) != F.lit(hour).cast("timestamp"))).select(N.REQUEST_ID)


def _optimize(spark: SparkSession, wh: Warehouse, path: str, event_hours: list[datetime]) -> list[str]:
    """Compact the small files of each touched event hour once it holds `min_files` or more."""
    policy = wh.compaction.optimize
    done: list[str] = []
    if not policy.enabled or not is_table(spark, path):
        return done
    for h in event_hours:
        pred = f"{N.EVENT_DATE} = DATE'{h.date()}' AND {N.EVENT_HOUR} = {h.hour}"
        n_files = len(spark.read.format("delta").load(path).where(pred).inputFiles())
        if n_files >= policy.min_files:
            DeltaTable.forPath(spark, path).optimize().where(pred).executeCompaction()
            done.append(f"{h:%Y-%m-%dT%H}")
    return done
