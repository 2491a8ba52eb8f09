"""Drift benchmark: `make bench` (or `python bench/drift.py [--rows N]`).

Builds `feature_logs` directly: N reference rows on one day and N current rows on the next, 100
features (80 numeric with 2% missing and timeouts in `feature_status`, 20 categorical), ten of them
shifted on the current day. Then runs the real job (`skewless.drift.job.run`, one session) and writes
bench/results/drift.json:
- rows per second of a whole check without a cached reference (2 passes over the reference, 1 over
  the current slice), 100 features;
- the time for 100 features over the time for 1 (target <= 3), next to the same ratio for the floor:
  one aggregation that only reads the same columns of both sides (no profile can read less);
- an hourly check (one hour of the current day) with the reference cached over the same check
  recomputing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from contextlib import redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import publish  # noqa: E402 - needs the project root on sys.path first

RESULTS = ROOT / "bench" / "results" / "drift.json"
NUMERIC, CATEGORICAL = [f"n{i:02d}" for i in range(80)], [f"c{i:02d}" for i in range(20)]
SHIFTED = NUMERIC[:8] + CATEGORICAL[:2]


def build(spark: Any, path: str, rows: int) -> None:
    """2 * rows of feature_logs: day 1 the reference, day 2 the current slice (SHIFTED moved)."""
    from pyspark.sql import functions as F

    ids = spark.range(2 * rows)
    day = (F.col("id") >= rows).cast("int")
    at = F.timestamp_seconds(F.lit(int(datetime(2026, 11, 24).timestamp())) + day * 86400
                             + F.floor((F.col("id") % rows) * 86400 / rows).cast("long"))
    num = []
    for i, n in enumerate(NUMERIC):
        value = F.randn(i) * (1 + i % 5) + i + (F.when(day == 1, 0.8) if n in SHIFTED else 0)
        num.append(F.when(F.rand(1000 + i) < 0.02, None).otherwise(F.round(value, 4)).alias(n))
    cat = []
    for j, c in enumerate(CATEGORICAL):
        skew = F.when(day == 1, 2.0) if c in SHIFTED else F.lit(1.0)
        k = F.floor(F.pow(F.rand(2000 + j), skew) * (5 + j)).cast("int")
        cat.append(F.concat(F.lit(f"{c}_"), k.cast("string")).alias(c))
    status = F.when(F.rand(3000) < 0.02, F.create_map(F.lit(NUMERIC[0]), F.lit("timeout"))) \
        .otherwise(F.create_map().cast("map<string,string>"))
    (ids.select(F.concat(F.lit("r"), F.col("id").cast("string")).alias("request_id"), at.alias("logged_at"),
                F.struct(F.lit("bench").alias("name"), F.lit("v1").alias("version")).alias("model"),
                F.struct(*num, *cat).alias("features"), status.alias("feature_status"))
     .withColumn("event_date", F.to_date("logged_at"))
     .write.format("delta").mode("overwrite").partitionBy("event_date").save(path))


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows per side")
    args = ap.parse_args()
    from pyspark.sql import functions as F

    from skewless.core.config import Feature, ModelConfig, load
    from skewless.core.session import build_session
    from skewless.drift import job as drift_run

    work = ROOT / "bench" / "work-drift"
    base = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(work / "landing"), str(work / "warehouse"))
    spark = build_session(base.spark)
    logs = str(work / "warehouse" / "feature_logs")
    t_build, _ = timed(lambda: build(spark, logs, args.rows))
    mon = work / "monitoring.yaml"
    mon.write_text("models: {}\n")

    def cfg_of(features: list[str]) -> Any:
        model = ModelConfig("bench", tuple(Feature(f, "numeric" if f in NUMERIC else "categorical") for f in features))
        return dataclasses.replace(base, models=(model,))

    def check(features: list[str], current: str, refresh: bool) -> tuple[float, dict[str, Any]]:
        ns = argparse.Namespace(model="bench", reference=None, package=None, by=None, monitoring=str(mon),
                                report=str(work / "report.html"), refresh_reference=refresh,
                                reference_hours=drift_run.parse_slice("2026-11-24T00..2026-11-24T23"),
                                current=drift_run.parse_slice(current))
        buf = io.StringIO()
        with redirect_stdout(buf):
            seconds, _ = timed(lambda: drift_run.run(spark, cfg_of(features), ns))
        import json
        return seconds, json.loads(buf.getvalue().strip().splitlines()[-1])

    every = NUMERIC + CATEGORICAL
    check(every[:2], "2026-11-25", refresh=True)  # warm-up: JIT, Delta log, the file system cache
    t_all, full = check(every, "2026-11-25", refresh=True)
    t_one, _ = check(every[:1], "2026-11-25", refresh=True)
    hour = "2026-11-25T12"
    t_hour_cold, _ = check(every, hour, refresh=True)
    t_hour_warm, _ = check(every, hour, refresh=False)
    df = spark.read.format("delta").load(logs)

    def floor(cols: list[str]) -> float:
        return timed(lambda: df.agg(*[F.count(F.col("features")[c]) for c in cols]).collect())[0]

    floor(every)
    f_all, f_one = floor(every), floor(every[:1])
    spark.stop()
    caught = sorted(full["alert"] + full["warn"])
    result = {
        "rows_per_side": args.rows, "features": len(every), "numeric": len(NUMERIC), "categorical": len(CATEGORICAL),
        "build_seconds": round(t_build, 1),
        "check_seconds_100_features": round(t_all, 2), "rows_per_second": round(2 * args.rows / t_all),
        "check_seconds_1_feature": round(t_one, 2), "ratio_100_over_1": round(t_all / t_one, 2),
        "floor_scan_seconds_100": round(f_all, 2), "floor_scan_seconds_1": round(f_one, 2),
        "floor_ratio_100_over_1": round(f_all / f_one, 2),
        "hourly_cached_seconds": round(t_hour_warm, 2), "hourly_uncached_seconds": round(t_hour_cold, 2),
        "hourly_cached_over_uncached": round(t_hour_warm / t_hour_cold, 3),
        "shifted": sorted(SHIFTED), "flagged": caught, "all_shifted_flagged": set(SHIFTED) <= set(caught),
        "false_alarms": sorted(set(caught) - set(SHIFTED)),
    }
    publish(RESULTS, result, work)


if __name__ == "__main__":
    main()
