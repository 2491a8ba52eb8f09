"""Kill a job with SIGKILL at a seeded random point, as a crashed host or an OOM killer would.

The job runs as a user runs it (`skewless ...` in its own process group: the Python driver and its
JVM). It is killed a random delay after its N-th progress line, N and the delay drawn from the seed,
so kills land inside the work (reads, each commit, the audit), not only in start-up.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
JOBS: dict[str, list[str]] = {
    "compact": ["compact", "--hour", "2026-11-25T13"],
    "labels": ["labels", "--through", "2027-03-31"],
    "snapshot": ["snapshot", "create", "fraud_daily", "--as-of", "2027-04-01"],
    "nightly": ["nightly", "--date", "2026-11-25"],
}
# Progress lines each job prints before its last commit: kills are drawn among them.
LINES = {"compact": 4, "labels": 4, "snapshot": 3, "nightly": 14}


@dataclass(frozen=True)
class Kill:
    job: str
    seed: int
    after_line: int     # killed this long after its N-th progress line...
    delay_s: float
    killed: bool        # ...or it finished first (the kill missed)
    last_line: str      # the last progress line it printed


def kill_point(job: str, seed: int) -> tuple[int, float]:
    rng = random.Random(f"{job}:{seed}")
    return rng.randint(1, LINES[job]), round(rng.uniform(0.0, 1.0), 2)


def run_and_kill(job: str, seed: int, roots: list[str], env: dict[str, str], cwd: Path,
                 timeout_s: float = 300) -> Kill:
    after, delay = kill_point(job, seed)
    proc = subprocess.Popen([str(BIN / "skewless"), *roots, *JOBS[job]], cwd=cwd, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stderr is not None
    seen = 0
    last = ""
    timer: threading.Timer | None = None
    deadline = time.monotonic() + timeout_s
    for line in proc.stderr:
        if line.startswith(f"[{job}"):
            seen, last = seen + 1, line.strip()
            if seen == after and timer is None:
                timer = threading.Timer(delay, _kill_group, args=(proc,))
                timer.start()
        if time.monotonic() > deadline:
            _kill_group(proc)
            raise TimeoutError(f"{job} seed {seed} ran past {timeout_s}s")
    code = proc.wait()
    if timer is not None:
        timer.cancel()
    return Kill(job, seed, after, delay, code == -signal.SIGKILL, last)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM: nothing gets to clean up
