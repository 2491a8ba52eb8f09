"""Compaction benchmark, both log formats: `make bench` (or `python bench/compact.py [--records N]`).

For two sizes (N/4 and N) a fresh worker process generates one landing hour of the same traffic
(~1 KB a record as JSON, quirks on) twice, as format v1 (JSON lines, gzip) and as v2 (Avro, deflate),
builds a `feature_logs` history of the 24 hours before it (the hour's own rows shifted back hour by
hour, new request ids), then in one Spark session times, best of two after an unmeasured round:
  - the baselines: bare Spark reading the same files with the format's own reader (JSON with an
    explicit schema; Avro) and writing plain Parquet partitioned by event hour;
  - `compact` end to end in the steady state: a shallow clone of the history (so dedup against the
    table's previous 24 hours is timed) plus parse, rules, dedup, privacy step, writes, audit;
  - the floors, the cheapest correct loader this project could be: read (v1: text + `from_json`, so
    unparsable lines keep their text, parsed once and persisted on disk; v2: Avro), dedup by
    request id with a narrow aggregation (ids seen twice, then ranks among those rows only) and
    against the history's ids, one Delta write.
    No typing rules, privacy step, quarantine, line numbers or audit: lower bounds, not targets.
Then the serving side (bench/logger_cost.py): bytes per record and the logger's cost per record.
Results, as ratios, go to bench/results/compact.json. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import logger_cost  # noqa: E402 - needs the project root on sys.path first
from bench.common import publish  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "compact.json"
HOUR = datetime(2026, 11, 25, 10, tzinfo=UTC)
FORMATS = ("json", "avro")


def _history(spark: Any, source: str, out: str, hours: int) -> int:
    """The 24 hours before the benchmark's hour: its compacted rows shifted back k hours, new ids."""
    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.ingest.job import FEATURE_LOG_PROPERTIES

    rows = spark.read.format("delta").load(source)
    shifted = rows.crossJoin(spark.range(1, hours + 1).withColumnRenamed("id", "_k")).select(
        *[F.concat(F.lit("h"), F.col("_k"), F.lit("-"), F.col(c)).alias(c) if c == N.REQUEST_ID else
          (F.col(c) - F.make_interval(hours=F.col("_k").cast("int"))).alias(c) if c in (N.LOGGED_AT, N.LANDING_HOUR)
          else F.col(c) for c in rows.columns if c not in (N.EVENT_DATE, N.EVENT_HOUR)])
    shifted = shifted.withColumn(N.EVENT_DATE, F.to_date(N.LOGGED_AT)).withColumn(N.EVENT_HOUR, F.hour(N.LOGGED_AT))
    writer = shifted.write.format("delta").partitionBy(*N.FEATURE_LOG_PARTITIONS)
    for key, value in FEATURE_LOG_PROPERTIES.items():
        writer = writer.option(key.removeprefix("delta."), value)
    writer.save(out)
    return int(spark.read.format("delta").load(out).count())


def worker(records: int, work: Path, history_hours: int) -> dict[str, Any]:
    from pyspark import StorageLevel
    from pyspark.sql import DataFrame, DataFrameWriter, Window
    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.core.access import POLICY_PROPERTY
    from skewless.core.config import load
    from skewless.core.paths import hour_folder
    from skewless.core.policy import HashKey
    from skewless.core.progress import Progress
    from skewless.core.session import build_session
    from skewless.core.storage import list_files, read_landing_text
    from skewless.devtools.generator import GenSpec, generate
    from skewless.ingest.job import FEATURE_LOG_PROPERTIES, compact_hour
    from skewless.ingest.parse import RAW_SCHEMA

    shutil.rmtree(work, ignore_errors=True)
    gens = {fmt: generate(GenSpec(landing=str(work / f"landing-{fmt}"), start=HOUR, hours=1, rps=records / 360.0,
                                  seed=11, log_format=fmt), progress=False) for fmt in FORMATS}  # type: ignore[arg-type]
    if gens["json"]["records"] != gens["avro"]["records"] or gens["avro"]["records"] < records * 0.9:
        raise SystemExit(f"bench input: generated {gens} for {records} records")
    base_cfg = load(ROOT / "conf" / "warehouse.yaml")
    spark = build_session(base_cfg.spark)
    key = HashKey("k1", b"bench-key-" * 4, demo=False)
    folder = {fmt: str(work / f"landing-{fmt}" / hour_folder(N.PREDICTIONS_DIR, HOUR)) for fmt in FORMATS}
    files = {"json": [f.path for f in list_files(spark, folder["json"], (".jsonl.gz",))],
             "avro": [f.path for f in list_files(spark, folder["avro"], (".avro",))]}
    sizes = {fmt: sum(f.size for f in list_files(spark, folder[fmt], (".jsonl.gz", ".avro"))) for fmt in FORMATS}

    def read(fmt: str) -> DataFrame:
        if fmt == "avro":
            return spark.read.format("avro").option("ignoreCorruptFiles", "true").load(files["avro"])
        return (spark.read.schema(RAW_SCHEMA).option("columnNameOfCorruptRecord", N.CORRUPT)
                .option("ignoreCorruptFiles", "true").json(files["json"]))

    def by_event_hour(df: DataFrame) -> DataFrameWriter:
        ts = F.col(N.LOGGED_AT).cast("timestamp") if dict(df.dtypes)[N.LOGGED_AT] == "timestamp" else \
            F.try_to_timestamp(F.col(N.LOGGED_AT), F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"))
        return (df.withColumn(N.EVENT_DATE, F.to_date(ts)).withColumn(N.EVENT_HOUR, F.hour(ts))
                .write.mode("overwrite").partitionBy(N.EVENT_DATE, N.EVENT_HOUR))

    def timed(fn: Any) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    def baseline(fmt: str, out: Path) -> float:
        return timed(lambda: by_event_hour(read(fmt)).parquet(str(out)))

    def floor(fmt: str, out: Path) -> float:
        def run() -> None:
            if fmt == "avro":
                rows = read("avro").withColumn(N.ROW_ID, F.monotonically_increasing_id())
            else:
                lines = read_landing_text(spark, [f for f in list_files(spark, folder["json"], (".jsonl.gz",))])
                rows = lines.select(N.RAW_VALUE, N.ROW_ID, F.from_json(
                    N.RAW_VALUE, RAW_SCHEMA, {"columnNameOfCorruptRecord": N.CORRUPT}).alias("p")).select(
                    F.when(F.col(f"p.{N.CORRUPT}").isNotNull(), F.col(N.RAW_VALUE)).alias(N.RAW_VALUE), N.ROW_ID, "p.*")
            # v1: parsed once, as compaction does (the three uses below would each parse it again).
            # v2: read three times, measured cheaper than writing the decoded rows to disk and back.
            if fmt != "avro":
                rows = rows.persist(StorageLevel.DISK_ONLY)
            counts = rows.groupBy(N.REQUEST_ID).count()  # narrow
            twice = counts.where("count > 1").select(N.REQUEST_ID)  # small
            rank = Window.partitionBy(N.REQUEST_ID).orderBy(N.LOGGED_AT, N.ROW_ID)
            losers = (rows.join(F.broadcast(twice), N.REQUEST_ID, how="left_semi").select(N.REQUEST_ID, N.LOGGED_AT,
                      N.ROW_ID).withColumn("_r", F.row_number().over(rank)).where("_r > 1").select(N.ROW_ID))
            # The history's ids are scanned and probed with a hash of the run's ids, never shuffled.
            existing = spark.read.format("delta").load(str(work / "history")).select(N.REQUEST_ID)
            hits = existing.join(F.broadcast(counts.select(N.REQUEST_ID)), N.REQUEST_ID, how="left_semi")
            kept = (rows.join(F.broadcast(losers), N.ROW_ID, how="left_anti")
                    .join(F.broadcast(hits), N.REQUEST_ID, how="left_anti"))
            by_event_hour(kept).format("delta").save(str(out))
            rows.unpersist()
        return timed(run)

    def compact(fmt: str, name: str) -> tuple[float, dict[str, Any]]:
        cfg = base_cfg.with_paths(str(work / f"landing-{fmt}"), str(work / f"warehouse-{name}"))
        table = work / f"warehouse-{name}" / N.FEATURE_LOGS
        spark.sql(f"CREATE TABLE delta.`{table}` SHALLOW CLONE delta.`{work / 'history'}`")
        # As the previous hour's run would have left it: its properties and the policy's tag (else the
        # timed run commits property changes first).
        props = {**FEATURE_LOG_PROPERTIES, POLICY_PROPERTY: cfg.privacy_policy.tag}
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(props.items()))
        spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES ({pairs})")
        out: dict[str, Any] = {}
        seconds = timed(lambda: out.update(compact_hour(spark, cfg, HOUR, Progress(f"bench-{name}"), key)))
        return seconds, out

    # The history: the JSON hour compacted once, shifted back hour by hour (not timed).
    warm = base_cfg.with_paths(str(work / "landing-json"), str(work / "warm"))
    compact_hour(spark, warm, HOUR, Progress("bench-history"), key)
    history_rows = _history(spark, str(work / "warm" / N.FEATURE_LOGS), str(work / "history"), history_hours)
    ip_nulls = spark.read.format("delta").load(str(work / "warm" / N.FEATURE_LOGS)).select(
        F.avg(F.col(f"{N.FEATURES}.ip_risk").isNull().cast("double"))).first()[0]  # type: ignore[index]
    if not 0.01 < ip_nulls < 0.05:
        raise SystemExit(f"bench input: ip_risk null share {ip_nulls:.3f}, expected about 0.02")
    out: dict[str, Any] = {"history_rows": history_rows, "ip_risk_null_share": round(ip_nulls, 4)}
    for fmt in FORMATS:  # round 1 warms the JVM for every path; round 2 and 3 are measured
        baseline(fmt, work / f"b-{fmt}-0")
        floor(fmt, work / f"f-{fmt}-0")
        compact(fmt, f"{fmt}-0")
    for fmt in FORMATS:
        base = min(baseline(fmt, work / f"b-{fmt}-{i}") for i in (1, 2))
        flo = min(floor(fmt, work / f"f-{fmt}-{i}") for i in (1, 2))
        (c1, rec), (c2, _) = compact(fmt, f"{fmt}-1"), compact(fmt, f"{fmt}-2")
        comp = min(c1, c2)
        n = int(rec["records_read"])
        out[fmt] = {
            "input_bytes": sizes[fmt], "records_read": n, "loaded": rec["loaded"],
            "duplicates": rec["duplicates"], "duplicates_existing": rec["duplicates_existing"],
            "quarantined": rec["quarantined"], "status": rec["status"],
            "baseline_seconds": round(base, 3), "compact_seconds": round(comp, 3), "floor_seconds": round(flo, 3),
            "baseline_records_per_s": round(n / base), "compact_records_per_s": round(n / comp),
            "throughput_ratio": round(base / comp, 3), "floor_throughput_ratio": round(base / flo, 3),
        }
    spark.stop()
    return out


def measure(records: int, work: Path, history_hours: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--records", str(records), "--work", str(work),
           "--history-hours", str(history_hours)]
    import psutil

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    me = psutil.Process(proc.pid)
    peak_py = peak_jvm = 0
    while proc.poll() is None:  # the driver's memory must stay flat whatever the hour's size
        try:
            peak_py = max(peak_py, me.memory_info().rss)
            for child in me.children(recursive=True):
                if "java" in child.name():
                    peak_jvm = max(peak_jvm, child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"worker for {records} records failed with exit {proc.returncode}")
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result.update(peak_rss_python_mb=round(peak_py / 2**20, 1), peak_rss_jvm_mb=round(peak_jvm / 2**20, 1))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--history-hours", type=int, default=24)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "compact")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.records, args.work, args.history_hours)), flush=True)
        return 0
    small, large = max(1000, args.records // 4), args.records
    runs = {str(n): measure(n, args.work, args.history_hours) for n in (small, large)}
    big = runs[str(large)]
    result = {
        "benchmark": "compact", "when": datetime.now(UTC).isoformat(timespec="seconds"), "records": large,
        "history_hours": args.history_hours,
        "target_v1_throughput_ratio": 0.5, "v1_throughput_ratio": big["json"]["throughput_ratio"],
        "v1_floor_throughput_ratio": big["json"]["floor_throughput_ratio"],
        "target_v2_throughput_ratio": 0.8, "v2_throughput_ratio": big["avro"]["throughput_ratio"],
        "v2_floor_throughput_ratio": big["avro"]["floor_throughput_ratio"],
        "v2_over_v1_compact_records_per_s": round(big["avro"]["compact_records_per_s"]
                                                  / big["json"]["compact_records_per_s"], 3),
        "driver_python_rss_ratio_large_over_small":
            round(float(big["peak_rss_python_mb"]) / float(runs[str(small)]["peak_rss_python_mb"]), 3),
        "logger": logger_cost.measure(min(large, 100_000), args.work / "logger"),
        "runs": runs,
    }
    publish(RESULTS, result, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
