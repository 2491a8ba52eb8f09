"""`skewless snapshot create`: materialize a version, validate it, record it in `dataset_versions`.

Each version is its own Delta table, `<warehouse>/snapshots/<name>/v0003`, partitioned by split and
written once. The sources are read at pinned Delta versions (the lineage recorded), so the rows are
fixed at creation; later logs, labels, OPTIMIZE or VACUUM of the sources never touch them.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.access import tag_schema
from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta, session_conf
from skewless.core.errors import UsageError
from skewless.core.paths import join, snapshot_path, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import delete_path, write_text
from skewless.datasets.quality import load_suite, render_html
from skewless.datasets.quality_site import validate_with_site
from skewless.datasets.spec import DatasetConfig, load_dataset
from skewless.datasets.transforms import SPLIT, SPLITS, content_hash, content_sums, select_examples
from skewless.datasets.versions import record_version, reserve_version, versions_table
from skewless.labels import view as examples_view
from skewless.serving.logformat import parse_date

SOURCES = (N.FEATURE_LOGS, N.LABELS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="snapshot_action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="materialize, validate and record a new version of a dataset")
    create.add_argument("name", help="dataset name: conf/datasets/NAME.yaml")
    create.add_argument("--as-of", type=checked(parse_date),
                        help="run date (default today, UTC): relative windows end here, and labels "
                             "are as known at this date's start")


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    conf_dir = Path(cfg.source).parent
    ds = load_dataset(conf_dir / cfg.datasets_dir, args.name)
    suite = load_suite((conf_dir / cfg.expectations_dir).resolve(), ds.suite)  # both before any read
    try:
        as_of = parse_date(args.as_of).date() if args.as_of else datetime.now(UTC).date()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    record = create(spark, cfg, ds, suite, as_of, Progress("snapshot"))
    summary({"job": "snapshot", **{k: record[k] for k in ("name", "version", "status", "rows", "content_hash")},
             "rows_per_split": record["rows_per_split"], "report": record["report_path"],
             "materialize_s": record["materialize_s"], "validate_s": record["validate_s"],
             "unchanged": record.get("unchanged", False),
             "failed": [json.loads(f) for f in record.get("failed_expectations") or []]})
    return 0 if record["status"] == "published" else 1


def source_examples(spark: SparkSession, cfg: Config, cutoff_wanted: datetime,
                    served_from: date | None = None) -> tuple[DataFrame, dict[str, int], datetime]:
    """Labeled examples with features (rows served from `served_from` on, if given), from sources pinned
    at their current Delta versions. Labels are as known at the cut-off, or at the label watermark if
    that is earlier, each picked from the label history as the rows are read."""
    for name in SOURCES:
        path = table_path(cfg.paths.warehouse, name)
        if not is_table(spark, path):
            raise UsageError(f"snapshot needs {name}: run compact and labels first ({path})")
    pinned = examples_view.pin(spark, cfg)
    lineage = {N.FEATURE_LOGS: pinned.feature_logs, N.LABELS: pinned.labels}
    # An older as-of: labels as they were known then (the label history keeps every event).
    cutoff = min(pinned.state.as_of, cutoff_wanted)
    examples = examples_view.labeled_examples(spark, cfg, pinned, features=True, as_of=cutoff, served_from=served_from)
    return examples, lineage, cutoff


def create(spark: SparkSession, cfg: Config, ds: DatasetConfig, suite: dict[str, Any], as_of: date,
           progress: Progress) -> dict[str, Any]:
    started = datetime.now(UTC).replace(tzinfo=None)
    start, end = ds.window_bounds(as_of)
    examples, lineage, cutoff = source_examples(spark, cfg, datetime.combine(as_of, datetime.min.time()),
                                                start.date())
    rows = select_examples(examples, ds, start, end, cutoff)
    versions = versions_table(spark, cfg)
    version = reserve_version(spark, cfg, ds.name)  # this run's alone: a concurrent create takes another
    path = snapshot_path(cfg.paths.warehouse, ds.name, version)
    progress.step(f"{ds.name}@{version}: window {start:%Y-%m-%d}..{end:%Y-%m-%d}, labels as of {cutoff:%Y-%m-%d}, "
                  f"sources {lineage}")
    t0 = time.perf_counter()
    classes = {c: "internal" for c in rows.columns} | {SPLIT: "public", "weight": "public"}
    tagged = rows.to(tag_schema(rows.schema, classes))  # type: ignore[arg-type]
    # `error` if the folder exists: a reserved number's folder is this run's; nothing is ever overwritten.
    # No column statistics: the Delta log outlives VACUUM and would keep min/max request ids and
    # split keys (pseudonyms) of subjects a later `forget` removes from the rows.
    with session_conf(spark, "spark.databricks.delta.properties.defaults.dataSkippingNumIndexedCols", "0"):
        (tagged.write.format("delta").mode("error").partitionBy(SPLIT)
         .option("userMetadata", json.dumps({"dataset": ds.name, "version": version})).save(path))
    materialize_s = time.perf_counter() - t0
    stored = read_delta(spark, path).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # One pass gives the hash and the rows per split (3 small rows to the driver).
        groups = content_sums(stored, by=SPLIT).collect()
        per_split = {s: 0 for s in SPLITS} | {r[SPLIT]: int(r["rows"]) for r in groups}
        total = sum(per_split.values())
        digest = content_hash(total, sum(r["h1"] for r in groups), sum(r["h2"] for r in groups), stored.schema)
        progress.step(f"{ds.name}@{version}: {total} rows {per_split} written in {materialize_s:.1f}s; "
                      f"validating with suite {suite['name']}")
        t1 = time.perf_counter()
        report = validate_with_site(spark, stored, suite, join(cfg.paths.warehouse, "_quality", "gx"),
                                    f"{ds.name}@{version}")
        validate_s = time.perf_counter() - t1
    finally:
        stored.unpersist()
    # GX's Data Docs page of this validation; else (GX gave no page) one of ours under `_`: VACUUM
    # never deletes it, readers never see it as data.
    report_path = report.docs_page or f"{path}/_quality/report.html"
    status = "published" if report.success else "failed"
    record = {
        "name": ds.name, "version": version, "created_at": started, "as_of": as_of, "window_start": start,
        "window_end": end, "label_cutoff": cutoff, "rows": total, "rows_per_split": per_split,
        "schema_json": stored.schema.json(), "content_hash": digest, "lineage": lineage, "location": path,
        "definition": json.dumps(ds.__dict__, default=lambda o: o.__dict__, sort_keys=True),
        "suite": suite["name"], "suite_success": report.success,
        "failed_expectations": [json.dumps({"expectation": o.expectation, "kwargs": o.kwargs,
                                            "unexpected_count": o.unexpected_count,
                                            "sample_request_ids": o.sample_request_ids}, default=str)
                                for o in report.failed],
        "report_path": report_path, "status": status,
        "materialize_s": round(materialize_s, 3), "validate_s": round(validate_s, 3),
    }
    same = _same_as_latest(versions, record)
    if same is not None:  # a rerun on unchanged inputs: keep the existing version, drop this copy
        delete_path(spark, path)
        progress.step(f"{ds.name}: unchanged, same content as {ds.name}@{same['version']} ({digest[:12]})")
        return {**same.asDict(recursive=True), "unchanged": True}
    if report.docs_page is None:
        write_text(spark, report_path, render_html(report, f"{ds.name}@{version}"))
    for o in report.failed:
        progress.step(f"{ds.name}@{version}: FAILED {o.expectation}{json.dumps(o.kwargs, default=str)} "
                      f"unexpected={o.unexpected_count} e.g. request_id {', '.join(o.sample_request_ids[:5]) or '-'}")
    record_version(spark, cfg, record)
    progress.step(f"{ds.name}@{version}: {status}; report {report_path}")
    return record


def _same_as_latest(versions: DataFrame, record: dict[str, Any]) -> Any:
    """The latest version made by this definition and suite, when it holds exactly this content."""
    latest = versions.where((F.col("name") == record["name"]) & (F.col("definition") == record["definition"])
                            & (F.col("suite") == record["suite"])).orderBy(F.col("version").desc()).first()
    keys = ("content_hash", "status", "window_start", "window_end", "label_cutoff")
    if latest is not None and all(latest[k] == record[k] for k in keys):
        return latest
    return None
