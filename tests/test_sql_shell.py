"""The shell as a person uses it, in a pseudo-terminal: a multi-line statement, Ctrl-C cancelling a long
query without leaving the shell, a refusal and a failing statement that leave it running too, whole
statements in the history file, Ctrl-D to leave; and the same statements from a pipe."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from skewless.core.config import Config, load
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run

from .conftest import HOUR, KEY, ROOT, record, write_hour

SKEWLESS = str(Path(sys.executable).parent / "skewless")


@pytest.fixture(scope="module")
def wh(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("shell")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    write_hour(cfg.paths.landing, HOUR, "part-0", [record("r1"), record("r2"), record("r3")])
    compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    return cfg


class Terminal:
    """A child process on a pseudo-terminal: type lines, send Ctrl-C / Ctrl-D, wait for text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execve(argv[0], argv, env)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait_for(self, needle: str, timeout: float = 120, after: int = 0) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            at = self.seen.find(needle, after)
            if at >= 0:
                return at + len(needle)
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
        raise AssertionError(f"{needle!r} not seen; the terminal showed:\n{self.seen[-3000:]}")

    def close(self, timeout: float = 60) -> int:
        """The exit code, reading what the child still prints (a full terminal would block its exit)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
        os.kill(self.pid, 9)
        raise AssertionError(f"the shell did not exit; it showed:\n{self.seen[-3000:]}")


def test_the_interactive_shell(wh: Config, tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = {**os.environ, "SKEWLESS_SQL_HISTORY": str(history), "TERM": "dumb"}
    term = Terminal([SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql", "--role",
                     "analyst"], env)
    at = term.wait_for("skewless(analyst)> ")
    term.type("SELECT count(*) AS n\n")
    at = term.wait_for("...> ", after=at)
    term.type("FROM feature_logs;\n")
    at = term.wait_for("(1 row, ", after=at)
    assert "|3  |" in term.seen
    # A query long enough to be cancelled: Ctrl-C stops its jobs, the shell stays.
    term.type("SELECT max(id) FROM range(0, 500000000000);\n")
    time.sleep(6)
    term.type("\x03")
    at = term.wait_for("cancelled after", after=at)
    term.type("DROP VIEW feature_logs;\n")
    at = term.wait_for("query refused: command DropView", after=at)
    term.type("SELECT sum(id) FROM range(0, 5000000000000000000);\n")
    at = term.wait_for("statement failed: [ARITHMETIC_OVERFLOW]", after=at)
    term.type("SELECT count(*) AS n FROM feature_logs;\n")
    at = term.wait_for("(1 row, ", after=at)
    term.type("\x04")
    assert term.close() == 0
    assert "Traceback" not in term.seen and "ERROR" not in term.seen, term.seen[-3000:]
    assert history.read_text().splitlines() == [
        "SELECT count(*) AS n FROM feature_logs;", "SELECT max(id) FROM range(0, 500000000000);",
        "DROP VIEW feature_logs;", "SELECT sum(id) FROM range(0, 5000000000000000000);",
        "SELECT count(*) AS n FROM feature_logs;"]
    assert oct(history.stat().st_mode & 0o777) == "0o600"


def test_the_shell_reads_a_pipe(wh: Config) -> None:
    script = ("SELECT count(*) AS n FROM feature_logs;\n-- a comment; with a semicolon\n"
              "SELECT reflect('java.lang.System', 'getenv', 'HOME');\nSELECT 'a;b' AS s,\n  event_hour FROM "
              "feature_logs LIMIT 1")  # the last statement has no `;`: it runs at EOF
    done = subprocess.run([SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql",
                           "--role", "analyst", "--format", "csv"], input=script, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 2, done.stderr[-2000:]  # one statement was refused
    assert done.stdout.splitlines() == ["n", "3", "s,event_hour", "a;b,13"]
    assert "query refused: function reflect()" in done.stderr
    assert "skewless(" not in done.stdout + done.stderr  # no prompt on a pipe
