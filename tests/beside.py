"""Tests marked `beside` run in a second pytest process, beside the rest of the run.

They start their own JVMs (the CLI, spark-submit) and use no in-process session, so the suite keeps its
one session. The point is the two cores: a JVM's start-up and a small Spark job keep about one core busy,
so the session's tests and a test waiting on a subprocess's JVM share the machine better than they take
turns. The second process is niced: it takes the cycles the first leaves. The run's result is both
processes' result: a failure beside fails the run, and the second process's report is printed after the
first's. The second process ends well before the first, so the first runs its tests that use several threads
of the session (marked `threads`) last, when both cores are free.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

MARK = "beside"
# Tests that run Spark work in several threads of the session: last in the first process. The second
# process ends well before the first, and from then on they have both cores to themselves.
LAST = "threads"
# Set in the second process: it runs the tests it was given and splits nothing again.
CHILD = "SKEWLESS_TESTS_BESIDE"


class BesideRun:
    """The second pytest process over `nodeids`, its output kept until the end of the run."""

    def __init__(self, config: pytest.Config, nodeids: list[str]) -> None:
        self.count = len(nodeids)
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (open until the run ends; removed on close)
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
        if config.option.durations is not None:
            args.append(f"--durations={config.option.durations}")
        # Niced, with every JVM it starts: this process's tests take longer in all (the run's critical
        # path), so the second one takes the cycles they leave.
        # Same process group: Ctrl-C in a terminal reaches both processes.
        self._proc = subprocess.Popen([*args, *nodeids], cwd=config.rootpath, env={**os.environ, CHILD: "1"},
                                      stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                      preexec_fn=lambda: os.nice(10))
        self.returncode: int | None = None

    def wait(self, interrupted: bool) -> int:
        if interrupted and self._proc.poll() is None:
            self._proc.terminate()
        self.returncode = self._proc.wait()
        return self.returncode

    def report(self) -> str:
        self._out.seek(0)
        return self._out.read().decode(errors="replace")


def split(config: pytest.Config, items: list[pytest.Item]) -> BesideRun | None:
    """Starts the `beside` tests in a second process and removes them from this one's items, when this
    run selected both kinds (a run of `beside` tests alone, or of none, stays one process)."""
    beside = [item for item in items if item.get_closest_marker(MARK) is not None]
    for item in beside:
        if "spark" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: a `{MARK}` test must not use the in-process session "
                                    "(the `spark` fixture): it would start a second one")
    if not beside or len(beside) == len(items) or CHILD in os.environ or config.option.collectonly:
        return None
    items[:] = [item for item in items if item.get_closest_marker(MARK) is None]
    # Stable: each module keeps its order, so its module-scoped fixtures are still built once.
    items.sort(key=lambda item: item.get_closest_marker(LAST) is not None)
    return BesideRun(config, [item.nodeid for item in beside])
