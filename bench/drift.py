"""Drift benchmark: `make bench` (or `python bench/drift.py [--rows N]`).

Builds `feature_logs` directly: N reference rows on one day and N current rows on the next, 100
features (80 numeric with 2% missing and timeouts in `feature_status`, 20 categorical), ten of them
shifted on the current day. Then runs the real job (`skewless.drift.job.run`, one session) and writes
bench/results/drift.json:
- rows per second of a whole check without a cached reference (2 passes over the reference, 1 over
  the current slice), 100 features;
- the whole check over its floor (target <= 5): one aggregation that only reads the same columns of
  both sides (no profile can read less), and the time for 100 features over the time for 1;
- an hourly check (one hour of the current day) with the reference cached over its floor (target <= 2):
  the same aggregation over that hour's rows, selected as the job selects them; and over the same
  check recomputing the reference.
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
SHIFT, SKEW = 0.8, 2.0       # numeric: mean + SHIFT (sd 1 + i % 5); categorical: rank drawn as rand ** SKEW
MISSING = 0.02               # the share of null numeric values on both days


def shift_in_sd(feature: str) -> float | None:
    """A shifted numeric feature's mean shift in its own standard deviations (None: categorical)."""
    return round(SHIFT / (1 + NUMERIC.index(feature) % 5), 3) if feature in NUMERIC else None


def check_input(df: Any, rows: int) -> dict[str, Any]:
    """The bench's own input, read back: rows per day and each feature's null share per day must be
    what `build` meant (a missing `.otherwise` once made a whole reference day null)."""
    from pyspark.sql import functions as F

    shares = df.groupBy("event_date").agg(
        F.count("*").alias("rows"),
        *[F.avg(F.col("features")[f].isNull().cast("double")).alias(f) for f in NUMERIC + CATEGORICAL]).collect()
    if len(shares) != 2 or any(r["rows"] != rows for r in shares):
        raise SystemExit(f"bench input: rows per day {[(str(r['event_date']), r['rows']) for r in shares]}, "
                         f"expected {rows} on each of 2 days")
    for r in shares:
        bad = {f: round(r[f], 4) for f in NUMERIC if abs(r[f] - MISSING) > 0.005} | \
              {f: round(r[f], 4) for f in CATEGORICAL if r[f] != 0}
        if bad:
            raise SystemExit(f"bench input: null shares on {r['event_date']} not as built: {bad}")
    return {str(r["event_date"]): {"rows": r["rows"], "n00_null_share": round(r["n00"], 4)} for r in shares}


def build(spark: Any, path: str, rows: int) -> None:
    """2 * rows of feature_logs: day 1 the reference, day 2 the current slice (SHIFTED moved)."""
    from pyspark.sql import functions as F

    ids = spark.range(2 * rows)
    day = (F.col("id") >= rows).cast("int")
    at = F.timestamp_seconds(F.lit(int(datetime(2026, 11, 24).timestamp())) + day * 86400
                             + F.floor((F.col("id") % rows) * 86400 / rows).cast("long"))
    num = []
    for i, n in enumerate(NUMERIC):
        # .otherwise: without it the reference day of a shifted feature would be all null.
        value = F.randn(i) * (1 + i % 5) + i + (F.when(day == 1, SHIFT).otherwise(0.0) if n in SHIFTED else 0)
        num.append(F.when(F.rand(1000 + i) < 0.02, None).otherwise(F.round(value, 4)).alias(n))
    cat = []
    for j, c in enumerate(CATEGORICAL):
        skew = F.when(day == 1, SKEW).otherwise(1.0) if c in SHIFTED else F.lit(1.0)
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

    from skewless.core import names as N
    from skewless.core.config import Feature, ModelConfig, load
    from skewless.core.frames import served_between
    from skewless.core.session import build_session
    from skewless.drift import job as drift_run

    work = ROOT / "bench" / "work-drift"
    base = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(work / "landing"), str(work / "warehouse"))
    spark = build_session(base.spark)
    logs = str(work / "warehouse" / "feature_logs")
    t_build, _ = timed(lambda: build(spark, logs, args.rows))
    checked_input = check_input(spark.read.format("delta").load(logs), args.rows)
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
    # Read now: the next check of the same slice has the same check id and replaces these rows.
    metrics = {(r["feature"], r["metric"]): (r["value"], r["status"]) for r in
               spark.read.format("delta").load(str(work / "warehouse" / N.DRIFT_METRICS))
               .where(F.col("run_id") == full["run_id"]).select("feature", "metric", "value", "status").collect()}
    t_one, _ = check(every[:1], "2026-11-25", refresh=True)
    hour = "2026-11-25T12"
    t_hour_cold, _ = check(every, hour, refresh=True)
    t_hour_warm = min(check(every, hour, refresh=False)[0] for _ in range(2))
    df = spark.read.format("delta").load(logs)
    s_hour = drift_run.parse_slice(hour)

    def floor(cols: list[str], rows: Any = df) -> float:
        return timed(lambda: rows.agg(*[F.count(F.col("features")[c]) for c in cols],
                                      F.count("feature_status")).collect())[0]

    floor(every)
    f_all, f_one = floor(every), floor(every[:1])
    f_hour = min(floor(every, served_between(df, "bench", s_hour.start, s_hour.end)) for _ in range(2))
    spark.stop()
    caught = sorted(full["alert"] + full["warn"])
    per_shifted = {f: {"shift_sd": shift_in_sd(f), "skew_exponent": None if f in NUMERIC else SKEW,
                       "flag": "alert" if f in full["alert"] else "warn" if f in full["warn"] else "ok",
                       **{m: round(v, 4) for (g, m), (v, _) in metrics.items() if g == f}} for f in SHIFTED}
    result = {
        "rows_per_side": args.rows, "features": len(every), "numeric": len(NUMERIC), "categorical": len(CATEGORICAL),
        "build_seconds": round(t_build, 1),
        "check_seconds_100_features": round(t_all, 2), "rows_per_second": round(2 * args.rows / t_all),
        "whole_check_over_floor": round(t_all / f_all, 2),
        "check_seconds_1_feature": round(t_one, 2), "ratio_100_over_1": round(t_all / t_one, 2),
        "floor_scan_seconds_100": round(f_all, 2), "floor_scan_seconds_1": round(f_one, 2),
        "floor_ratio_100_over_1": round(f_all / f_one, 2),
        "hourly_cached_seconds": round(t_hour_warm, 2), "hourly_uncached_seconds": round(t_hour_cold, 2),
        "hourly_cached_over_uncached": round(t_hour_warm / t_hour_cold, 3),
        "hourly_floor_scan_seconds": round(f_hour, 2), "hourly_cached_over_floor": round(t_hour_warm / f_hour, 2),
        "input": checked_input, "shifted": per_shifted, "flagged": caught,
        "shifted_flagged": sum(f in caught for f in SHIFTED), "shifted_total": len(SHIFTED),
        "false_alarms": sorted(set(caught) - set(SHIFTED)),
    }
    publish(RESULTS, result, work)


if __name__ == "__main__":
    main()
