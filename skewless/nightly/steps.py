"""The nightly's five steps, each a call into its stage's job in this one Spark application.

Each step returns (exit code, counts) by its job's own contract: 0 done, 1 done with a failing check,
an exception for a failure. The jobs' one-line JSON summaries become the step's counts (captured, so
stdout carries only the nightly's own summary).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from skewless.core.config import Config
from skewless.core.errors import UsageError
from skewless.core.policy import resolve_key
from skewless.core.progress import Progress
from skewless.datasets import snapshot_job
from skewless.datasets.spec import load_dataset, schedule_due
from skewless.drift import job as drift_job
from skewless.drift.reference import parse_slice
from skewless.drift.settings import load_monitoring
from skewless.ingest.job import compact_hour
from skewless.labels import job as labels_job
from skewless.nightly.hours import hours_to_compact
from skewless.nightly.lease import Lease
from skewless.privacy import job as privacy_job
from skewless.privacy.tombstones import previous_keys

Outcome = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Night:
    """What every step needs: the session, the config, the date, progress, the lease to renew."""

    spark: SparkSession
    cfg: Config
    day: date
    progress: Progress
    lease: Lease
    forced: bool = False   # this step was forced (`--force`): compaction redoes the date's hours


def captured(job: Callable[[], int]) -> Outcome:
    """Run a job whose last stdout line is its JSON summary: (exit code, that summary)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = job()
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    return code, (json.loads(lines[-1]) if lines else {})


def compact(n: Night) -> Outcome:
    policy = n.cfg.privacy_policy
    key = resolve_key(policy.key, n.cfg.profile, policy.source, warehouse=n.cfg.paths.warehouse)
    previous = previous_keys(n.cfg)
    hours, done = hours_to_compact(n.spark, n.cfg, n.day, n.forced)
    n.progress.step(f"compact: {len(hours)} hour(s) to compact, {done} already compacted with no file since"
                    + (f"; late: {[f'{h.hour:%Y-%m-%dT%H}' for h in hours if h.hour.date() != n.day]}"
                       if any(h.hour.date() != n.day for h in hours) else ""))
    keys = ("files", "records_read", "loaded", "duplicates", "quarantined", "late_records")
    total: dict[str, Any] = dict.fromkeys(keys, 0)
    incomplete, ran = [], []
    for i, h in enumerate(hours, 1):
        n.progress.step(f"compact: hour {i}/{len(hours)} {h.hour:%Y-%m-%dT%H} ({h.why})")
        r = compact_hour(n.spark, n.cfg, h.hour, Progress("compact"), key, previous)
        for k in keys:
            total[k] += r[k]
        ran.append({"hour": f"{h.hour:%Y-%m-%dT%H}", "why": h.why, "run_id": r["run_id"], "status": r["status"],
                    **{k: r[k] for k in keys}, "quarantined_by_reason": r["quarantined_by_reason"]})
        if r["status"] == "incomplete":
            incomplete.extend(r["unreadable_files"])
        n.lease.renew()
    total.update(hours=len(hours), hours_already_compacted=done, unreadable_files=len(incomplete), runs=ran)
    return (1 if incomplete else 0), total


def labels(n: Night) -> Outcome:
    args = argparse.Namespace(date=n.day.isoformat(), through=None)
    return captured(lambda: labels_job.run(n.spark, n.cfg, args))


def purge(n: Night) -> Outcome:
    """Quarantine raw text landed before (D + 1) - retention: a rerun for D purges the same rows."""
    before = n.day + timedelta(days=1) - timedelta(days=n.cfg.privacy_policy.retention.quarantine_days)
    args = argparse.Namespace(before=before.isoformat(), vacuum_retain_hours=None)
    return captured(lambda: privacy_job.run_purge(n.spark, n.cfg, args))


def scheduled_datasets(cfg: Config, day: date) -> tuple[list[str], list[str]]:
    """(datasets due on `day`, datasets not due), from conf/datasets/*.yaml's `schedule`."""
    folder = Path(cfg.source).parent / cfg.datasets_dir
    due: list[str] = []
    not_due: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        ds = load_dataset(folder, path.stem)
        (due if schedule_due(ds.schedule, day) else not_due).append(ds.name)
    return due, not_due


def snapshots(n: Night) -> Outcome:
    """Each dataset due tonight, as of the day after D (its relative window ends where D ends)."""
    due, not_due = scheduled_datasets(n.cfg, n.day)
    as_of = (n.day + timedelta(days=1)).isoformat()
    made: dict[str, Any] = {}
    code = 0
    for name in due:
        n.progress.step(f"snapshots: {name} as of {as_of}")
        c, out = captured(lambda: snapshot_job.run(n.spark, n.cfg, argparse.Namespace(name=name, as_of=as_of)))  # noqa: B023
        made[name] = {k: out.get(k) for k in ("version", "status", "rows", "unchanged", "report", "failed")}
        code = max(code, c)
        n.lease.renew()
    return code, {"as_of": as_of, "created": made, "not_due": not_due}


def drift(n: Night) -> Outcome:
    """Each monitored model's day against its reference; with `nightly.hourly`, each hour of the day
    as a segment of the same pass (`--by event_hour`). A model with no reference yet is a failing check."""
    mon = load_monitoring(Path(n.cfg.source).parent / "monitoring.yaml")
    checks: dict[str, Any] = {}
    code = 0
    for model, settings in sorted(mon.models.items()):
        if not settings.nightly.daily and not settings.nightly.hourly:
            continue
        args = argparse.Namespace(
            model=model, reference=None, reference_hours=None, package=None, monitoring=None, report=None,
            current=parse_slice(n.day.isoformat(), "--current"), refresh_reference=False,
            by="event_hour" if settings.nightly.hourly else None)
        n.progress.step(f"drift: {model} on {n.day}" + (" and each hour" if settings.nightly.hourly else ""))
        try:
            c, out = captured(lambda: drift_job.run(n.spark, n.cfg, args))  # noqa: B023
        except UsageError as exc:  # no reference yet (no published dataset version): nothing to compare with
            checks[model] = {"status": "no_reference", "error": str(exc)}
            code = max(code, 1)
            continue
        checks[model] = {k: out.get(k) for k in ("status", "reference", "alert", "warn", "check_id", "report_path",
                                                 "rows", "segments")}
        code = max(code, c)
        n.lease.renew()
    return code, {"checks": checks}


STEP_FUNCTIONS: dict[str, Callable[[Night], Outcome]] = {
    "compact": compact, "labels": labels, "purge": purge, "snapshots": snapshots, "drift": drift,
}
