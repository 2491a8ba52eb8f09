"""The serving side of log format v2 (no Spark): bytes per record on disk and the logger's cost per
record for each encoding, on the same generated traffic. Used by bench/compact.py; also
`python bench/logger_cost.py [--records N]` on its own.

Bytes: the generator's traffic (one hour, quirks on) written as JSON+gzip (level 1, the generator's
default, and 6, the logger's), Avro deflate and Avro zstandard; the landing files' bytes over the
records written. Cost: one thread calls a synchronous logger (`background=False`: the encoding and the
write are in the timed call) per record: p50 and p99 of a call, and records per second.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOUR = datetime(2026, 11, 25, 10, tzinfo=UTC)
ENCODINGS: dict[str, dict[str, Any]] = {
    "json_gzip1": {"log_format": "json", "compress_level": 1},
    "json_gzip6": {"log_format": "json", "compress_level": 6},
    "avro_deflate": {"log_format": "avro", "codec": "deflate"},
    "avro_zstandard": {"log_format": "avro", "codec": "zstandard"},
}


def _records(n: int) -> list[dict[str, Any]]:
    """n generated records as the logger receives them (quirks included), from one simulated host."""
    from skewless.devtools.generator import GenSpec, _HostJob, _predictions
    from skewless.serving.logformat import rfc3339
    from skewless.serving.logger import PredictionLogger

    spec = GenSpec(landing="/nonexistent", start=HOUR, hours=1, rps=n * 1.2 / 360, seed=5, hosts=1)
    sampler = PredictionLogger("/nonexistent", host="x", sample_rate=spec.sample_rate, background=False)
    out = []
    for rec in _predictions(_HostJob(spec, 0), 0, sampler):
        rec.pop("_fraud")
        rec["logged_at"] = rfc3339(rec["logged_at"])
        out.append(rec)
        if len(out) == n:
            break
    return out


def measure(records: int, work: Path) -> dict[str, Any]:
    from skewless.devtools.generator import SERVED_FEATURES
    from skewless.serving.logger import PredictionLogger

    recs = _records(records)
    nulls = sum(r["features"].get("ip_risk") is None for r in recs) / len(recs)
    if len(recs) != records or not 0.01 < nulls < 0.05:  # the input is what it claims: rows, null share
        raise SystemExit(f"logger bench input: {len(recs)} records (wanted {records}), ip_risk null share {nulls:.3f}")
    out: dict[str, Any] = {"records": records, "ip_risk_null_share": round(nulls, 4)}
    for name, kw in ENCODINGS.items():
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        logger = PredictionLogger(folder, host="h", sample_rate=1.0, background=False, clock=lambda: HOUR,
                                  features=SERVED_FEATURES, model="fraud", **kw)
        times = []
        started = time.perf_counter()
        for rec in recs:
            t0 = time.perf_counter_ns()
            logger.submit(rec)
            times.append(time.perf_counter_ns() - t0)
        logger.close()
        total = time.perf_counter() - started
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        times.sort()
        out[name] = {
            "bytes_per_record": round(size / records, 1), "fallback": logger.counters()["fallback"],
            "p50_us": round(times[len(times) // 2] / 1000, 2), "p99_us": round(times[int(len(times) * 0.99)] / 1000, 2),
            "records_per_s_one_thread": round(records / total),
        }
    base = out["json_gzip6"]["bytes_per_record"]
    for name in ENCODINGS:
        out[name]["bytes_over_json_gzip6"] = round(out[name]["bytes_per_record"] / base, 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "logger")
    args = ap.parse_args()
    print(json.dumps(measure(args.records, args.work)))
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
