"""Skew-test benchmark: `make bench` (or `python bench/skew.py [--examples N] [--rows R]`).

Builds `feature_logs` directly (R rows over two served hours, 40 features: 30 numeric with 5% missing,
8 categorical, a boolean and the request time) and fits an 8-stage pipeline (hour, imputer, log1p,
bucketizer, scaler, one-hot, hasher, assembler) + logistic regression on it. Then measures, in
bench/results/skew.json:
- the whole `skewless skew-test --examples N` as a user runs it (a fresh process: Spark start
  included; target under 60 s), over a baseline measured in the same run: a fresh process that
  starts the same Spark session and counts the same rows (the floor of any Spark-side test);
- localization's extra time (a serving bug injected into the imputer: missing as 0) over the plain comparison;
- the serving engine's single-example latency (p50, p99) over the scorer alone on a ready vector,
  and its batch throughput.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import publish  # noqa: E402 - needs the project root on sys.path first

RESULTS = ROOT / "bench" / "results" / "skew.json"
START = datetime(2026, 11, 25, 9)
NUMERIC, CATEGORICAL = [f"n{i:02d}" for i in range(30)], [f"c{i}" for i in range(8)]


def spec_text() -> str:
    features: dict[str, str] = {**{n: "numeric" for n in NUMERIC}, **{c: "categorical" for c in CATEGORICAL},
                                "flag": "boolean", "logged_at": "timestamp"}
    stages = [
        {"name": "hour", "kind": "hour_of_day", "inputs": ["logged_at"], "outputs": ["utc_hour"]},
        {"name": "impute", "kind": "imputer", "strategy": "median", "inputs": ["utc_hour", "flag", *NUMERIC]},
        {"name": "log", "kind": "log1p", "inputs": NUMERIC[:4]},
        {"name": "bucket", "kind": "bucketize", "inputs": NUMERIC[4:6], "splits": [float("-inf"), 0.25, 0.5, 0.75,
                                                                                   float("inf")]},
        {"name": "scale", "kind": "standard_scaler", "with_mean": True, "output": "scaled",
         "inputs": ["utc_hour", *NUMERIC[:4], *NUMERIC[6:]]},
        {"name": "onehot", "kind": "one_hot", "inputs": CATEGORICAL[:6]},
        {"name": "hashed", "kind": "feature_hasher", "inputs": CATEGORICAL[6:], "output": "hashed", "num_features": 64},
        {"name": "assemble", "kind": "assemble", "output": "features",
         "inputs": ["scaled", "flag", *NUMERIC[4:6], *CATEGORICAL[:6], "hashed"]},
    ]
    return yaml.safe_dump({"name": "bench", "version": "v2", "features": features, "stages": stages,
                           "scorer": {"input": "features", "reg_param": 0.01, "max_iter": 50}}, sort_keys=False)


def build(work: Path, rows: int) -> tuple[Path, Path]:
    """feature_logs (Delta) and a fitted package; the Spark session is stopped before any timing."""
    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.core.config import load
    from skewless.core.paths import qualify, table_path
    from skewless.core.session import build_session
    from skewless.model.fitting import fit_pipeline
    from skewless.model.job import manifest_of
    from skewless.model.spec import load_spec
    from skewless.serving.package import SPARK_DIR, write_manifest

    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(work / "landing"), str(work / "warehouse"))
    spark = build_session(cfg.spark)
    ids = spark.range(rows)
    at = (F.lit(START).cast("timestamp") + F.make_interval(secs=(F.col("id") % 7200).cast("int")))
    feats = [F.when(F.rand(i) < 0.05, None).otherwise(F.rand(100 + i)).alias(n) for i, n in enumerate(NUMERIC)]
    feats += [F.concat(F.lit(f"{c}_"), (F.pow(F.rand(200 + i), 2) * (5 + 6 * i)).cast("int").cast("string")).alias(c)
              for i, c in enumerate(CATEGORICAL)]
    feats.append((F.rand(300) < 0.3).alias("flag"))
    logs = ids.select(F.format_string("r%09d", "id").alias(N.REQUEST_ID), at.alias(N.LOGGED_AT),
                      F.struct(F.lit("bench").alias("name"), F.lit("v1").alias("version")).alias(N.MODEL),
                      F.struct(F.rand(400).alias(N.SCORE)).alias(N.PREDICTION), F.struct(*feats).alias(N.FEATURES),
                      F.to_date(at).alias(N.EVENT_DATE), F.hour(at).alias(N.EVENT_HOUR))
    logs.write.format("delta").mode("overwrite").partitionBy(N.EVENT_DATE, N.EVENT_HOUR).save(
        table_path(cfg.paths.warehouse, N.FEATURE_LOGS))
    (work / "bench-pipeline.yaml").write_text(spec_text())
    spec = load_spec(work / "bench-pipeline.yaml")
    flat = spark.read.format("delta").load(table_path(cfg.paths.warehouse, N.FEATURE_LOGS)).select(
        N.LOGGED_AT, *[F.col(N.FEATURES)[f].alias(f) for f in [*NUMERIC, *CATEGORICAL, "flag"]])
    train = flat.select("*", (F.rand(500) < F.coalesce(F.col("n00"), F.lit(0.5)) * 0.2).cast("double").alias("label"),
                        F.lit(1.0).alias("weight"))
    model, stages, n = fit_pipeline(train, spec)
    pkg = work / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    model.write().overwrite().save(qualify(str(pkg / SPARK_DIR)))
    write_manifest(pkg, manifest_of(spec, stages, {"name": "bench", "version": 1, "content_hash": "-"}, n))
    spark.stop()
    return pkg, work / "warehouse"


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - t, out.stdout


def serving_latency(pkg: Path, offline: dict[str, Any], n: int) -> dict[str, float]:
    import numpy as np

    from skewless.serving.engine import ServingModel

    engine = ServingModel.load(pkg)
    rows = len(offline["request_id"])
    examples = [{f: (None if isinstance(v := offline[f][i], float) and v != v else v) for f in engine.features}
                for i in range(rows)]
    for f in engine.features:  # timestamps as a serving host gets them
        if engine.features[f] == "timestamp":
            for e, v in zip(examples, offline[f], strict=True):
                e[f] = datetime.fromtimestamp(v / 1e6, UTC)
    single = np.empty(n)
    for i in range(n + 200):
        t = time.perf_counter_ns()
        engine.score_one(examples[i % rows])
        if i >= 200:
            single[i - 200] = time.perf_counter_ns() - t
    scorer = engine.stages[-1]
    x = offline[scorer.inputs[0]]
    coef, b = np.array(scorer.params["coefficients"]), float(scorer.params["intercept"])
    alone = np.empty(n)
    for i in range(n):
        t = time.perf_counter_ns()
        1.0 / (1.0 + np.exp(-(x[i % rows] @ coef + b)))
        alone[i] = time.perf_counter_ns() - t
    raw = {f: offline[f] for f in engine.features}
    best = min(_seconds(lambda: engine.score(raw)) for _ in range(3))
    return {"single_p50_us": round(float(np.percentile(single, 50)) / 1e3, 1),
            "single_p99_us": round(float(np.percentile(single, 99)) / 1e3, 1),
            "scorer_alone_p50_us": round(float(np.percentile(alone, 50)) / 1e3, 2),
            "single_p50_over_scorer_alone": round(float(np.percentile(single, 50) / np.percentile(alone, 50)), 1),
            "batch_rows_per_s": round(rows / best),
            "batch_over_single_throughput": round((rows / best) / (1e9 / float(np.mean(single))), 1)}


def _seconds(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "skew")
    args = ap.parse_args()
    pkg, warehouse = build(args.work, args.rows)
    sk = [str(ROOT / ".venv" / "bin" / "skewless"), "--warehouse", str(warehouse)]
    hours = f"{START:%Y-%m-%dT%H}..{START.replace(hour=START.hour + 1):%Y-%m-%dT%H}"
    cmd = [*sk, "skew-test", "--model", str(pkg), "--examples", str(args.examples), "--hours", hours,
           "--report", str(args.work / "report.html")]
    floor_code = ("from skewless.core.config import load; from skewless.core.session import build_session; "
                  f"s = build_session(load('conf/warehouse.yaml').spark); "
                  f"print(s.read.format('delta').load('{warehouse}/feature_logs').count())")
    timed(cmd)  # warm the OS caches (jars, Python files); each measured run is a fresh process
    whole = [timed(cmd) for _ in range(2)]
    floor = min(timed([sys.executable, "-c", floor_code])[0] for _ in range(2))
    report = json.loads(whole[0][1].strip().splitlines()[-1])
    whole_s = min(t for t, _ in whole)
    in_process = localization(pkg, warehouse, args.examples, hours)
    result = {
        "benchmark": "skew", "when": datetime.now(UTC).isoformat(timespec="seconds"), "examples": report["examples"],
        "features": 40, "stages": 8, "passed": report["passed"], "max_abs_diff": report["max_abs_diff"],
        "whole_test_seconds": round(whole_s, 2), "target_whole_test_seconds": 60,
        "floor_spark_start_and_scan_seconds": round(floor, 2), "whole_over_floor": round(whole_s / floor, 2),
        "job_timing_s": report["timing_s"], **in_process,
    }
    publish(RESULTS, result, args.work)
    return 0


def localization(pkg: Path, warehouse: Path, examples: int, hours: str) -> dict[str, Any]:
    from skewless.core.config import load
    from skewless.core.session import build_session
    from skewless.serving.package import read_manifest
    from skewless.skew.evaluate import columns_of, evaluate
    from skewless.skew.job import SkewOptions, collect_examples, parse_hours
    from tests.skewbugs import missing_as_zero

    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(warehouse=str(warehouse))
    spark = build_session(cfg.spark)
    manifest = read_manifest(pkg)
    table, _ = collect_examples(spark, cfg, SkewOptions(str(pkg), examples, hours=parse_hours(hours)), manifest)
    spark.stop()
    offline = columns_of(table)
    bug = {"impute": missing_as_zero}

    def run(overrides: Any) -> tuple[float, dict[str, Any]]:
        t = time.perf_counter()
        r = evaluate(manifest, offline, tolerance=1e-6, source="bench", package=str(pkg),
                     examples_requested=examples, overrides=overrides)
        return time.perf_counter() - t, r

    plain = min(run(None)[0] for _ in range(3))
    located = [run(bug) for _ in range(3)]
    with_loc = min(t for t, _ in located)
    loc = located[0][1]["localization"]
    return {"compare_seconds": round(plain, 3), "compare_and_localize_seconds": round(with_loc, 3),
            "localization_extra_over_compare": round((with_loc - plain) / plain, 2),
            "localized_stage": loc["stage"], "localization_comparisons": loc["comparisons"],
            **serving_latency(pkg, offline, 10_000)}


if __name__ == "__main__":
    raise SystemExit(main())
