"""`skewless drift --model NAME [--reference NAME@REF | --reference-hours FROM..TO | --package PKG]
--current HOUR|DATE|FROM..TO [--by model.version]`

Reads the reference's cuts and histograms from `drift_references` (computing them once: two passes),
the current slice in one pass, and writes the verdicts to `drift_metrics` before anything else can
fail: the HTML page and the webhook come after. Exit 0 when every feature is ok or warns, 1 when any
alerts, 2 on usage or config errors.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import read_table
from skewless.core.errors import UsageError
from skewless.core.paths import join, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import write_text
from skewless.datasets.catalog_job import load as load_dataset
from skewless.datasets.versions import resolve, versions_table
from skewless.drift import alerts, report, store
from skewless.drift.evaluate import (
    FeatureResult,
    assess_categorical,
    assess_numeric,
    merged,
    per_feature,
    sides,
    sort_by_severity,
)
from skewless.drift.features import SEP, STATUS_FEATURE, STATUS_KEY
from skewless.drift.profile import (
    ALL,
    FeatureSet,
    cell_counts,
    distinct_cuts,
    features_frame,
    quantile_cuts,
    with_statuses,
)
from skewless.drift.settings import SEVERITY, Monitoring, load_monitoring
from skewless.serving.logformat import parse_date, parse_hour
from skewless.serving.package import read_manifest

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Slice:
    start: datetime
    end: datetime  # exclusive
    label: str


@dataclass(frozen=True)
class Reference:
    label: str                 # fraud_daily@3 (every split), fraud_daily@3:train, or feature_logs FROM..TO
    dataset: str | None = None
    split: str | None = None
    content_hash: str = ""
    hours: Slice | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name (conf/models, conf/monitoring.yaml)")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference", help="dataset version NAME@REF (default: the package's, else monitoring.yaml's)")
    ref.add_argument("--reference-hours", type=_slice_arg("--reference-hours"),
                     help="served hours as the reference: FROM..TO (inclusive)")
    ref.add_argument("--package", help="deployed model package: the dataset it was trained on is the reference")
    p.add_argument("--current", required=True, type=_slice_arg("--current"),
                   help="2026-11-25T13 (an hour), 2026-11-25 (a day) or FROM..TO hours")
    p.add_argument("--by", help="segment the current slice by a column path, e.g. model.version")
    p.add_argument("--monitoring", help="monitoring YAML (default: monitoring.yaml next to the warehouse config)")
    p.add_argument("--report", help="HTML path (default: WAREHOUSE/_reports/drift/CHECK_ID.html)")
    p.add_argument("--refresh-reference", action="store_true", help="recompute the reference's cached histograms")


def _slice_arg(option: str) -> Callable[[str], Slice]:
    """argparse type: a bad slice is a usage error (exit 2) before the JVM starts."""
    def parse(text: str) -> Slice:
        try:
            return parse_slice(text, option)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return parse


def parse_slice(text: str, option: str = "--current") -> Slice:
    """An hour, a day, or FROM..TO hours (inclusive) as a half-open [start, end) interval."""
    try:
        if ".." in text:
            first, last = text.split("..", 1)
            start, end = parse_hour(first), parse_hour(last) + timedelta(hours=1)
        elif "T" in text:
            start = parse_hour(text)
            end = start + timedelta(hours=1)
        else:
            start = parse_date(text)
            end = start + timedelta(days=1)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from exc
    if end <= start:
        raise UsageError(f"{option} {text!r}: the last hour is before the first")
    return Slice(start, end, text)


def monitored(cfg: Config, mon: Monitoring, model: str) -> tuple[FeatureSet, dict[str, str]]:
    declared = cfg.model(model)
    if declared is None:
        raise UsageError(f"--model {model!r}: not declared in {cfg.models_dir}/ "
                         f"(models: {[m.name for m in cfg.models]})")
    skip = set(mon.model(model).exclude)
    types: dict[str, str] = {f.name: f.type for f in declared.features if f.name not in skip}
    return (FeatureSet(tuple(n for n, t in types.items() if t == "numeric"),
                       tuple(n for n, t in types.items() if t != "numeric")), types)


def choose_reference(spark: SparkSession, cfg: Config, mon: Monitoring, args: argparse.Namespace) -> Reference:
    split = mon.defaults.reference_split
    if args.reference_hours:
        hours: Slice = args.reference_hours
        return Reference(f"feature_logs {hours.label}", hours=hours)
    package = args.package or mon.model(args.model).package
    text = args.reference
    if not text and package:
        manifest = read_manifest(package)
        # The version it was trained on; its split only if configured (a split keyed by entity is a
        # biased sample of traffic when a few entities dominate: docs/drift.md).
        text = manifest["dataset"]["ref"]
    text = text or mon.model(args.model).reference
    if not text:
        raise UsageError(f"no reference for {args.model!r}: pass --reference, --reference-hours or --package, "
                         f"or set models.{args.model}.reference in {mon.source}")
    version = resolve(versions_table(spark, cfg), text)
    name = f"{version['name']}@{version['version']}"
    return Reference(name + (f":{split}" if split else ""), dataset=name, split=split,
                     content_hash=str(version["content_hash"]))


def _logs(spark: SparkSession, cfg: Config, model: str, s: Slice) -> DataFrame:
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS)
    return logs.where((F.col(N.EVENT_DATE) >= F.lit(s.start.date())) & (F.col(N.EVENT_DATE) <= F.lit(s.end.date()))
                      & (F.col(N.LOGGED_AT) >= F.lit(s.start)) & (F.col(N.LOGGED_AT) < F.lit(s.end))
                      & (F.col(N.MODEL)["name"] == model))


def reference_rows(spark: SparkSession, cfg: Config, model: str, ref: Reference) -> DataFrame:
    if ref.hours is not None:
        return _logs(spark, cfg, model, ref.hours)
    assert ref.dataset is not None
    rows = load_dataset(spark, cfg.paths.warehouse, ref.dataset, split=ref.split)
    days = rows.agg(F.min(F.to_date(N.LOGGED_AT)), F.max(F.to_date(N.LOGGED_AT))).first()
    if days is None or days[0] is None:
        raise UsageError(f"reference {ref.label} (split {ref.split}) has no rows")
    return with_statuses(rows, read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS), days[0], days[1])


def ref_key(model: str, ref: Reference, fs: FeatureSet, mon: Monitoring) -> str:
    d = mon.defaults
    text = "|".join(map(str, (model, ref.label, ref.split, ref.content_hash, fs.numeric, fs.categorical,
                              d.ks_grid, d.bins, d.quantile_accuracy)))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def profile_reference(spark: SparkSession, cfg: Config, mon: Monitoring, model: str, ref: Reference,
                      fs: FeatureSet, types: dict[str, str], refresh: bool, progress: Progress) -> list[dict[str, Any]]:
    """The reference's rows of `drift_references`: read when cached, else two passes and one append."""
    path = table_path(cfg.paths.warehouse, N.DRIFT_REFERENCES)
    key = ref_key(model, ref, fs, mon)
    if not refresh and (hit := store.cached_reference(spark, path, key)):
        progress.step(f"reference {ref.label}: cached histograms ({len(hit)} features)")
        return hit
    d = mon.defaults
    frame = features_frame(reference_rows(spark, cfg, model, ref), fs)
    q = quantile_cuts(frame, fs, d.ks_grid, d.quantile_accuracy).first()
    assert q is not None
    cuts = [distinct_cuts(q[f"_n{i}"]) for i in range(len(fs.numeric))]
    step = d.ks_grid // d.bins
    psi_cuts = [distinct_cuts((q[f"_n{i}"] or [])[step - 1::step]) for i in range(len(fs.numeric))]
    progress.step(f"reference {ref.label}: {q['_rows']} rows, quantile cuts of {len(fs.numeric)} numeric features")
    cells = [(r["f"], r["k"], r["s"], r["n"]) for r in cell_counts(frame, fs, cuts).collect()]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [{"ref_key": key, "model": model, "reference": ref.label, "created_at": now, "feature": name,
             "feature_index": i, "feature_type": types[name],
             "cuts": cuts[i] if i < len(cuts) else [], "psi_cuts": psi_cuts[i] if i < len(cuts) else [],
             "cells": [{"k": k, "s": s, "n": n} for f, k, s, n in per_feature(cells, fs) if f == i]}
            for i, name in enumerate(fs.names)]
    store.save_reference(spark, path, rows, cfg.privacy_policy)
    progress.step(f"reference {ref.label}: histograms of {len(rows)} features cached in {N.DRIFT_REFERENCES}")
    return rows


def segment_column(by: str | None) -> Column | None:
    if by is None:
        return None
    if not _PATH.match(by):
        raise UsageError(f"--by {by!r}: give a column path such as model.version or context.region")
    return F.col(by)


def _reference_sides(rows: list[dict[str, Any]], fs: FeatureSet) -> tuple[list[list[float]], list[list[float]], dict]:
    cuts = [list(r["cuts"]) for r in rows[:len(fs.numeric)]]
    psi_cuts = [list(r["psi_cuts"]) for r in rows[:len(fs.numeric)]]
    cells = [(STATUS_FEATURE, c["k"], f"{r['feature']}{SEP}{c['s']}", c["n"]) if c["k"] == STATUS_KEY
             else (r["feature_index"], c["k"], c["s"], c["n"]) for r in rows for c in r["cells"]]
    return cuts, psi_cuts, sides(cells, fs, cuts)


def assess(fs: FeatureSet, types: dict[str, str], mon: Monitoring, model: str, cuts: list[list[float]],
           psi_cuts: list[list[float]], ref: dict, cur: dict) -> list[FeatureResult]:
    out = []
    for i, name in enumerate(fs.names):
        th = mon.thresholds(model, name)
        if i < len(fs.numeric):
            out.append(assess_numeric(name, ref[name], cur[name], cuts[i], psi_cuts[i], th, mon.defaults))
        else:
            out.append(assess_categorical(name, types[name], ref[name], cur[name], th, mon.defaults))
    return sort_by_severity(out)


def check_id_of(model: str, ref_label: str, key: str, s: Slice, by: str | None) -> str:
    text = "|".join((model, ref_label, key, s.start.isoformat(), s.end.isoformat(), by or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    progress = Progress("drift")
    mon = load_monitoring(args.monitoring or Path(cfg.source).parent / "monitoring.yaml")
    current: Slice = args.current
    segment = segment_column(args.by)
    fs, types = monitored(cfg, mon, args.model)
    ref = choose_reference(spark, cfg, mon, args)
    ref_rows = profile_reference(spark, cfg, mon, args.model, ref, fs, types, args.refresh_reference, progress)
    cuts, psi_cuts, ref_sides = _reference_sides(ref_rows, fs)
    frame = features_frame(_logs(spark, cfg, args.model, current), fs, segment)
    by_segment: dict[str, list[tuple[int, int, str | None, int]]] = {}
    for r in cell_counts(frame, fs, cuts).collect():
        name = ALL if segment is None else f"{args.by}={r[0]}"
        by_segment.setdefault(name, []).append((r["f"], r["k"], r["s"], r["n"]))
    cur_sides = {seg: sides(cells, fs, cuts) for seg, cells in sorted(by_segment.items())}
    cur_rows = sum(next(iter(s.values())).rows for s in cur_sides.values()) if fs.names else 0
    if segment is not None:
        cur_sides = {ALL: {n: merged(s[n] for s in cur_sides.values()) for n in fs.names}, **cur_sides}
    cur_sides = cur_sides or {ALL: sides([], fs, cuts)}
    progress.step(f"current {current.label}: {cur_rows} rows in {len(cur_sides)} segment(s)")
    results = {seg: assess(fs, types, mon, args.model, cuts, psi_cuts, ref_sides, s) for seg, s in cur_sides.items()}
    ref_n = next(iter(ref_sides.values())).rows if fs.names else 0
    return _finish(spark, cfg, mon, args, ref, current, (ref_n, cur_rows), results, progress)


def _metric_rows(base: dict[str, Any], results: dict[str, list[FeatureResult]]) -> list[dict[str, Any]]:
    return [{**base, **{k: m[k] for k in ("metric", "value", "warn", "alert", "status", "reference_value",
                                          "current_value", "p_value", "error_bound", "detail")},
             "segment": seg, "feature": r.feature, "feature_type": r.feature_type, "feature_status": r.status}
            for seg, rs in results.items() for r in rs for m in r.metrics]


def _finish(spark: SparkSession, cfg: Config, mon: Monitoring, args: argparse.Namespace, ref: Reference,
            current: Slice, rows: tuple[int, int], results: dict[str, list[FeatureResult]],
            progress: Progress) -> int:
    """History first (one commit), then the page, the summary and the webhook."""
    run_id = uuid.uuid4().hex
    check_id = check_id_of(args.model, ref.label, ref.content_hash, current, args.by)
    worst: dict[str, str] = {}
    for rs in results.values():
        for r in rs:
            if SEVERITY[r.status] >= SEVERITY[worst.get(r.feature, "ok")]:
                worst[r.feature] = r.status
    status = "alert" if "alert" in worst.values() else "warn" if "warn" in worst.values() else "ok"
    base = {"check_id": check_id, "run_id": run_id, "run_at": datetime.now(UTC).replace(tzinfo=None),
            "model": args.model, "reference": ref.label, "current_slice": current.label,
            "slice_start": current.start.replace(tzinfo=None), "slice_end": current.end.replace(tzinfo=None),
            "segment_by": args.by, "reference_rows": rows[0], "current_rows": rows[1]}
    metrics_path = table_path(cfg.paths.warehouse, N.DRIFT_METRICS)
    store.save_metrics(spark, metrics_path, _metric_rows(base, results), check_id, cfg.privacy_policy, run_id)
    by_status = {s: sorted(f for f, v in worst.items() if v == s) for s in ("alert", "warn", "insufficient_data")}
    out = {"job": "drift", "model": args.model, "reference": ref.label, "current": current.label, "status": status,
           "run_id": run_id, "check_id": check_id, "features": len(worst), "ok": sum(v == "ok" for v in worst.values()),
           **by_status, "segments": list(results), "rows": {"reference": rows[0], "current": rows[1]},
           "alerting": {seg: {r.feature: {m["metric"]: round(m["value"], 6) for m in r.metrics
                                          if m["status"] == "alert"} for r in rs if r.status == "alert"}
                        for seg, rs in results.items()}}
    drifted = sorted(f for f, v in worst.items() if v in ("warn", "alert"))
    trends = store.psi_trend(spark, metrics_path, args.model, ref.label, drifted, current.start.replace(tzinfo=None))
    out["report_path"] = args.report or join(cfg.paths.warehouse, "_reports", "drift", f"{check_id}.html")
    write_text(spark, out["report_path"], report.render(out, results, trends))
    progress.step(f"{status}: {len(by_status['alert'])} alerting {by_status['alert']}, {len(by_status['warn'])} "
                  f"warning; report {out['report_path']}")
    if mon.webhook.url:
        out["webhook"] = alerts.post(mon.webhook.url, out, timeout_s=mon.webhook.timeout_s, retries=mon.webhook.retries)
        if not out["webhook"]["delivered"]:
            hook = out["webhook"]
            progress.step(f"webhook not delivered after {hook['attempts']} attempts: {hook['error']} "
                          "(the results are in drift_metrics)")
    summary(out)
    return 1 if status == "alert" else 0
