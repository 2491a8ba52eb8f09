"""Nightly benchmark: `make bench` (or `python bench/nightly.py [--rps R] [--hours H]`).

One generated day (default 24 hours at 30 requests/s, 10% sampled) after reference traffic months
earlier that is compacted, labeled and snapshotted first (not timed: drift needs a published reference). Then, from two
copies of that warehouse, the same duty twice, as a user runs it:
  A. `skewless nightly --date D` (one JVM);
  B. the same steps as separate commands: compact --date D, labels --date D, purge, snapshot create,
     drift --by event_hour (a JVM each; `compact --date` also purges, as documented).
Reports seconds per step, records/s, and A's total against B's sum, in bench/results/nightly.json.
The input is checked first: every hour of D has files and the generator's record count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import publish  # noqa: E402 - needs the project root on sys.path first

RESULTS = ROOT / "bench" / "results" / "nightly.json"
BIN = Path(sys.executable).parent
# The reference traffic is old enough for its label windows to have closed by the bench day: its
# snapshot passes the suite, and the nightly's own snapshot of the day holds it again.
REFERENCE, DAY = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)


def _sk(conf: Path, landing: Path, wh: Path, *argv: str, ok: tuple[int, ...] = (0, 1)) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "skewless"), "--config", str(conf), "--landing", str(landing),
                           "--warehouse", str(wh), *argv], capture_output=True, text=True,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    seconds = time.monotonic() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"skewless {' '.join(argv)}: exit {proc.returncode}\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return seconds, (json.loads(lines[-1]) if lines else {})


def _conf(work: Path) -> Path:
    """conf/ with fraud_daily made daily (the bench's Wednesday is not its Monday)."""
    dest = work / "conf"
    shutil.copytree(ROOT / "conf", dest)
    shutil.copytree(ROOT / "expectations", work / "expectations")
    ds = dest / "datasets" / "fraud_daily.yaml"
    ds.write_text(ds.read_text().replace("schedule: weekly:monday", "schedule: daily"))
    return dest / "warehouse.yaml"


def _check_input(landing: Path, hours: int, generated: dict[str, Any]) -> None:
    for h in range(hours):
        hour = DAY + timedelta(hours=h)
        folder = landing / "predictions" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        if not any(folder.glob("*.avro")) and not any(folder.glob("*.jsonl*")):
            raise SystemExit(f"bench input: no landing files in {folder}")
    if generated["records"] <= 0:
        raise SystemExit(f"bench input: the generator wrote no records: {generated}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rps", type=float, default=30.0)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "nightly")
    ap.add_argument("--nightly-only", action="store_true",
                    help="time the nightly alone (B skipped): for the highest-rate search, into nightly-<rps>rps.json")
    args = ap.parse_args()
    from skewless.devtools.generator import GenSpec, generate

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    conf, landing, base = _conf(args.work), args.work / "landing", args.work / "base"
    generate(GenSpec(landing=str(landing), start=REFERENCE, hours=3, rps=args.rps, seed=3), progress=False)
    generated = generate(GenSpec(landing=str(landing), start=DAY, hours=args.hours, rps=args.rps, seed=4,
                                 log_format="avro"), progress=False)
    _check_input(landing, args.hours, generated)
    setup = time.monotonic()
    _sk(conf, landing, base, "compact", "--date", f"{REFERENCE:%Y-%m-%d}")
    _sk(conf, landing, base, "labels", "--through", f"{DAY - timedelta(days=1):%Y-%m-%d}")
    _sk(conf, landing, base, "snapshot", "create", "fraud_daily", "--as-of", f"{DAY:%Y-%m-%d}", ok=(0,))
    print(f"reference day ready in {time.monotonic() - setup:.0f}s", file=sys.stderr)
    a, b = args.work / "a", args.work / "b"
    shutil.copytree(base, a)
    shutil.copytree(base, b)
    day = f"{DAY:%Y-%m-%d}"
    total_a, night = _sk(conf, landing, a, "nightly", "--date", day)
    after = (DAY + timedelta(days=1)).date()
    separate: dict[str, float] = {}
    steps = (("compact", ["compact", "--date", day]), ("labels", ["labels", "--date", day]),
             ("purge", ["purge", "--before", f"{after - timedelta(days=30)}"]),
             ("snapshots", ["snapshot", "create", "fraud_daily", "--as-of", f"{after}"]),
             ("drift", ["drift", "--model", "fraud", "--current", day, "--by", "event_hour"]))
    for step, argv in () if args.nightly_only else steps:
        separate[step], _ = _sk(conf, landing, b, *argv)
    read = int(night["steps"]["compact"]["records_read"])
    result = {
        "benchmark": "nightly", "rps": args.rps, "hours": args.hours, "records_generated": generated["records"],
        "records_read": read, "nightly_exit_code": night["exit_code"],
        "nightly_s": round(total_a, 1),
        "nightly_steps_s": {s: round(r["seconds"], 1) for s, r in night["steps"].items()},
        "nightly_records_per_s": round(read / total_a, 1),
        "cores": os.cpu_count(),
    }
    if separate:
        result.update(separate_commands_s={s: round(v, 1) for s, v in separate.items()},
                      separate_total_s=round(sum(separate.values()), 1),
                      nightly_over_separate=round(total_a / sum(separate.values()), 3))
    publish(RESULTS.with_name(f"nightly-{args.rps:g}rps.json") if args.nightly_only else RESULTS, result, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
