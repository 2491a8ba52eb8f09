"""What a nightly run does, decided without Spark: the steps, which of them run, and the exit code.

A step that completed for the date (its checks passed or only found a failing check) is skipped on a
rerun unless forced; a failed step, and every step after it, runs again. Pure functions of plain values.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

STEPS: tuple[str, ...] = ("compact", "labels", "purge", "snapshots", "drift")
Status = Literal["succeeded", "check_failed", "failed", "skipped", "not_run"]
COMPLETED: frozenset[str] = frozenset({"succeeded", "check_failed"})
EXIT_OK, EXIT_CHECK_FAILED, EXIT_JOB_FAILED = 0, 1, 3


def step_list(text: str) -> tuple[str, ...]:
    """argparse type for `--steps compact,labels` (commas or spaces): known names, in run order."""
    names = [n for part in text.replace(",", " ").split() if (n := part.strip())]
    unknown = [n for n in names if n not in STEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown step(s) {unknown or [text]}: choose from {', '.join(STEPS)}")
    return tuple(s for s in STEPS if s in names)


@dataclass(frozen=True)
class StepResult:
    """One step's outcome: `status`, its own exit code, its counts, and the error that stopped it."""

    step: str
    status: Status
    exit_code: int
    seconds: float = 0.0
    counts: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    previous: str | None = None   # a skipped step: the status its completed run recorded

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
                               **({"error": self.error} if self.error else {}),
                               **({"previous": self.previous} if self.previous else {})}
        out.update(self.counts)
        return out


def status_of(exit_code: int) -> Status:
    """A step's status from its job's exit code: 0 ok, 1 a check failed, anything else failed."""
    return "succeeded" if exit_code == EXIT_OK else "check_failed" if exit_code == EXIT_CHECK_FAILED else "failed"


def plan(selected: Sequence[str] | None, forced: Sequence[str] | None,
         done: Mapping[str, str]) -> list[tuple[str, bool]]:
    """(step, run?) in order for the selected steps (default all). A step runs unless it completed
    for this date before (`done`: step -> last recorded status) and is not forced. `forced` empty
    (`--force` alone) forces every selected step."""
    chosen = [s for s in STEPS if selected is None or s in selected]
    force_all = forced is not None and len(forced) == 0
    out = []
    for step in chosen:
        forced_here = force_all or (forced is not None and step in forced)
        out.append((step, forced_here or done.get(step) not in COMPLETED))
    return out


def exit_code(results: Iterable[StepResult]) -> int:
    """3 when a step failed, else 1 when a step (or a completed one skipped now) found a failing check."""
    rs = list(results)
    if any(r.status == "failed" for r in rs):
        return EXIT_JOB_FAILED
    if any(r.status == "check_failed" or r.previous == "check_failed" for r in rs):
        return EXIT_CHECK_FAILED
    return EXIT_OK
