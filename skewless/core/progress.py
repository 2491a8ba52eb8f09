"""Progress lines on stderr and the one-line JSON summary on stdout that every long job ends with."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class Progress:
    def __init__(self, job: str) -> None:
        self.job = job
        self._start = time.monotonic()

    def step(self, message: str) -> None:
        elapsed = time.monotonic() - self._start
        print(f"[{self.job} {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return round(time.monotonic() - self._start, 3)


def summary(payload: dict[str, Any]) -> None:
    """The last stdout line of a job: one JSON object, sorted keys, machine-readable."""
    print(json.dumps(payload, sort_keys=True, default=str), flush=True)
