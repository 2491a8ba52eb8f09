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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.errors import UsageError
from skewless.core.paths import join, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import write_text
from skewless.drift import alerts, report, store
from skewless.drift.evaluate import (
    Cell,
    FeatureResult,
    assess_categorical,
    assess_numeric,
    merged,
    sides,
    sort_by_severity,
)
from skewless.drift.features import ALL, FeatureSet
from skewless.drift.profile import cell_counts, features_frame
from skewless.drift.reference import (
    Reference,
    Slice,
    choose_reference,
    current_weight,
    parse_slice,
    profile_reference,
    reference_sides,
    served_rows,
)
from skewless.drift.settings import SEVERITY, Monitoring, load_monitoring

__all__ = ["add_arguments", "parse_slice", "run"]

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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


def monitored(cfg: Config, mon: Monitoring, model: str) -> tuple[FeatureSet, dict[str, str]]:
    declared = cfg.model(model)
    if declared is None:
        raise UsageError(f"--model {model!r}: not declared in {cfg.models_dir}/ "
                         f"(models: {[m.name for m in cfg.models]})")
    skip = set(mon.model(model).exclude)
    types: dict[str, str] = {f.name: f.type for f in declared.features if f.name not in skip}
    return (FeatureSet(tuple(n for n, t in types.items() if t == "numeric"),
                       tuple(n for n, t in types.items() if t != "numeric")), types)


def segment_column(by: str | None) -> Column | None:
    if by is None:
        return None
    if not _PATH.match(by):
        raise UsageError(f"--by {by!r}: give a column path such as model.version or context.region")
    return F.col(by)


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
    cuts, psi_cuts, ref_sides = reference_sides(ref_rows, fs)
    frame = features_frame(served_rows(spark, cfg, args.model, current), fs, segment, current_weight(ref))
    by_segment: dict[str, list[Cell]] = {}
    for r in cell_counts(frame, fs, cuts, weighted=ref.weighted).collect():
        name = ALL if segment is None else f"{args.by}={r[0]}"
        by_segment.setdefault(name, []).append((r["f"], r["k"], r["s"], r["n"], r["w"]))
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
