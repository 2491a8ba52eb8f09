"""`skewless nightly --date D`: the day's duty in one Spark application, resumable, one run at a time.

Steps in order: compact, labels, purge, snapshots, drift (`nightly.plan`). A step that completed for D
is skipped on a rerun unless forced; a failed step stops the run (exit 3) and the rerun resumes there;
a step that only found a failing check lets the rest run (exit 1). The lease is taken before the
first read and released last; `nightly_steps` gets a row as each step ends, `nightly_runs` one last.
"""

from __future__ import annotations

import argparse
import time
import traceback
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.errors import ConfigError, LeaseLostError, SkewlessError
from skewless.core.progress import Progress, summary
from skewless.datasets.quality import load_suite
from skewless.datasets.spec import load_dataset
from skewless.drift.settings import load_monitoring
from skewless.nightly import report, state
from skewless.nightly.lease import Lease
from skewless.nightly.plan import STEPS, StepResult, exit_code, plan, status_of, step_list
from skewless.nightly.steps import STEP_FUNCTIONS, Night
from skewless.serving.logformat import parse_date

RUN_STATUS = {0: "succeeded", 1: "check_failed", 3: "failed"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", required=True, type=checked(parse_date), help="the day to process, e.g. 2026-11-25")
    p.add_argument("--steps", type=step_list, help=f"run only these steps, comma-separated ({','.join(STEPS)})")
    p.add_argument("--force", nargs="*", choices=STEPS, metavar="STEP",
                   help="run these steps (all selected ones when none is named) even if they completed for "
                        "the date: compaction then redoes every hour of the date")
    p.add_argument("--exit-zero-on-checks", action="store_true",
                   help="exit 0 when steps only found failing checks (a scheduler's task per step: the "
                        "day's final run, with every step skipped, exits 1 for them)")
    p.add_argument("--wait-minutes", type=float, help="wait this long for another run's lease "
                                                      "(default: nightly.wait_minutes)")


def preflight(cfg: Config, args: argparse.Namespace) -> None:
    """Every config file a step reads, loaded and validated before the JVM starts or anything is
    written: dataset definitions (their schedules), their expectation suites, conf/monitoring.yaml
    (its models must be declared). A bad file fails here (exit 2), not after the compaction."""
    conf_dir = Path(cfg.source).parent
    folder = conf_dir / cfg.datasets_dir
    for path in sorted(folder.glob("*.yaml")):
        load_suite((conf_dir / cfg.expectations_dir).resolve(), load_dataset(folder, path.stem).suite)
    mon = load_monitoring(conf_dir / "monitoring.yaml")
    for model in mon.models:
        if cfg.model(model) is None:
            raise ConfigError(mon.source, f"models.{model}",
                              f"not declared in {cfg.models_dir}/ (models: {[m.name for m in cfg.models]})")


def records_of(step: str, counts: dict[str, Any]) -> int:
    """The records a step handled, for the summary's one comparable figure per step."""
    if step in ("compact", "labels"):
        return int(counts.get("records_read", 0))
    if step == "purge":
        return sum(int(v) for k, v in counts.items() if k.startswith("purged_"))
    if step == "snapshots":
        return sum(int(c.get("rows") or 0) for c in counts.get("created", {}).values())
    return sum(int((c.get("rows") or {}).get("current", 0)) for c in counts.get("checks", {}).values())


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_step(night: Night, step: str, label: str) -> tuple[StepResult, datetime, datetime]:
    started, t0 = _now(), time.monotonic()
    night.progress.step(f"{label} {step}: started")
    try:
        code, counts = STEP_FUNCTIONS[step](night)
        result = StepResult(step, status_of(code), code, time.monotonic() - t0,
                            {"records": records_of(step, counts), **counts})
    except LeaseLostError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed step is recorded and stops the run with exit 3
        traceback.print_exc(limit=6)
        head = "\n".join(str(exc).splitlines()[:4])
        code = exc.exit_code if isinstance(exc, SkewlessError) else 3
        result = StepResult(step, "failed", code, time.monotonic() - t0, {}, error=f"{type(exc).__name__}: {head}")
    night.progress.step(f"{label} {step}: {result.status} in {result.seconds:.1f}s"
                        + (f": {result.error}" if result.error else ""))
    return result, started, _now()


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    day: date = parse_date(args.date).date()
    progress = Progress("nightly")
    run_id = f"nightly-{day:%Y%m%d}-{uuid.uuid4().hex[:10]}"
    wait = cfg.nightly.wait_minutes if args.wait_minutes is None else args.wait_minutes
    lease = Lease(spark, cfg.paths.warehouse, run_id, timedelta(minutes=cfg.nightly.lease_minutes))
    lease.acquire(wait * 60)
    started = _now()
    progress.step(f"{day}: lease taken by {lease.holder}")
    try:
        done = state.completed(spark, cfg.paths.warehouse, day)
        planned = plan(args.steps, args.force, done)
        results: list[StepResult] = []
        for k, (step, go) in enumerate(planned, 1):
            label = f"step {k}/{len(planned)}"
            if any(r.status == "failed" for r in results):
                results.append(StepResult(step, "not_run", 0))
                continue
            if not go:
                prev = done[step]
                progress.step(f"{label} {step}: skipped (completed for {day}: {prev}; --force {step} redoes it)")
                results.append(StepResult(step, "skipped", 0, previous=prev))
                continue
            night = Night(spark, cfg, day, progress, lease, forced=args.force is not None
                          and (not args.force or step in args.force))
            result, s, f = run_step(night, step, label)
            state.record_step(spark, cfg.paths.warehouse, run_id, day, result, s, f)
            results.append(result)
            lease.renew()
        code = exit_code(results)
        out: dict[str, Any] = {
            "job": "nightly", "date": day.isoformat(), "run_id": run_id, "status": RUN_STATUS[code],
            "exit_code": code, "seconds": progress.elapsed(), "steps": {r.step: r.as_dict() for r in results}}
        failed = [r for r in results if r.status == "failed"]
        if failed:
            out["failed_step"] = failed[0].step
            out["error"] = failed[0].error
        out["report"] = report.write(spark, cfg, day, out)
        state.record_run(spark, cfg.paths.warehouse, run_id, day, out, lease.holder, started, _now())
    finally:
        lease.release()
    progress.step(f"{day}: {out['status']} ({', '.join(f'{r.step} {r.status}' for r in results)}); "
                  f"report {out['report']}")
    summary(out)
    return 0 if code == 1 and args.exit_zero_on_checks else code
