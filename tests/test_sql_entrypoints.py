"""Every way into `skewless sql` as a user runs it, each refusing the hostile corpus with nothing run:
the CLI shell over a pipe, the CLI with the issue's repro, a notebook process
(`skewless.sql.session`), beeline against `skewless sql --serve`, and the shell in a real terminal
(Ctrl-C, history). The subprocesses that need no terminal run at once (they each start a JVM). No test
here uses the in-process session: the warehouse is compacted by the CLI and read back with delta-rs, and
the module runs beside the rest (tests/beside.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from skewless.core.config import Config
from skewless.sql.passwords import add_user

from . import sql_corpus as C
from .conftest import HOUR, ROOT, guard_landing
from .sqlhelp import fill, stored_state
from .terminal import Terminal

pytestmark = pytest.mark.beside

SKEWLESS = str(Path(sys.executable).parent / "skewless")
BEELINE = str(resources.files("pyspark").joinpath("bin", "beeline"))  # beeline ships with pyspark


def _cli(wh: Config, *args: str) -> list[str]:
    return [SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql", *args]


@pytest.fixture(scope="module")
def guard_wh(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """conftest's `guard_wh`, compacted by the CLI in its own process."""
    cfg = guard_landing(tmp_path_factory.mktemp("guard"))
    out = subprocess.run([SKEWLESS, "--landing", cfg.paths.landing, "--warehouse", cfg.paths.warehouse, "compact",
                          "--hour", f"{HOUR:%Y-%m-%dT%H}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["loaded"] == 2
    return cfg


def _notebook_code(wh: Config) -> str:
    return f"""
import json, skewless.sql
from skewless.core.config import load
cfg = load({str(ROOT / 'conf' / 'warehouse.yaml')!r}).with_paths({wh.paths.landing!r}, {wh.paths.warehouse!r})
spark = skewless.sql.session("ml_engineer", cfg)
out = {{"n": spark.sql("SELECT count(*) FROM feature_logs").first()[0]}}
other = spark.newSession()
fl = {wh.paths.warehouse!r} + "/feature_logs"
for name, fn in [("newSession", lambda: other.read.format("delta").load(fl).collect()),
                 ("path", lambda: spark.read.format("delta").load(fl).collect()),
                 ("drop", lambda: spark.sql("DROP VIEW feature_logs"))]:
    try:
        fn(); out[name] = "ran"
    except Exception as exc:
        out[name] = "refused" if "query refused" in str(exc) else str(exc)[:300]
print(json.dumps(out))
"""


def test_the_cli_shell_the_cli_repro_and_a_notebook_process(guard_wh: Config) -> None:
    wh = guard_wh
    before = stored_state(wh)
    # The whole corpus through one shell over a pipe; a comment with a `;` and a last statement without
    # one (it runs at EOF).
    script = "".join(fill(s, wh) + ";\n" for s in C.DESTRUCTIVE) + \
        "-- a comment; with a semicolon\nSELECT count(*) AS n FROM feature_logs"
    procs = {
        "pipe": subprocess.Popen(_cli(wh, "--role", "analyst", "--format", "json"), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "repro": subprocess.Popen(_cli(wh, "--role", "analyst", fill(C.DESTRUCTIVE[0], wh)),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "notebook": subprocess.Popen([sys.executable, "-c", _notebook_code(wh)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    done = {name: (p.communicate(script if name == "pipe" else None, timeout=400), p.returncode)
            for name, p in procs.items()}

    (out, err), rc = done["pipe"]
    assert rc == 2, err[-3000:]
    # The shell splits "SELECT 1; SELECT * FROM delta.`...`" into two statements: the first is a plain
    # read and runs; then the one plain query at the end. Nothing of the corpus showed table data.
    assert out == '{"1": 1}\n{"n": 2}\n'
    errors = [ln for ln in err.splitlines() if ln.startswith("skewless: ")]
    # Scripts' inner `;` split them in the shell: more errors than statements, never fewer.
    assert len(errors) >= len(C.DESTRUCTIVE), err[-3000:]
    assert all(("query refused" in e or "may not read" in e or "query rejected" in e) for e in errors), errors
    assert "Traceback" not in err and "Py4J" not in err and "skewless(" not in err
    assert "Using incubator modules" not in err

    (out, err), rc = done["repro"]
    assert rc == 2 and out == "" and "query refused: EXECUTE IMMEDIATE" in err

    (out, err), rc = done["notebook"]
    assert rc == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"n": 2, "newSession": "refused", "path": "refused", "drop": "refused"}
    assert stored_state(wh) == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(guard_wh: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`skewless sql --serve --role analyst` on a free loopback port, with a password file."""
    port = _free_port()
    pw = tmp_path_factory.mktemp("jdbc") / "users"
    add_user(pw, "alice", "correct-horse-battery")
    log = pw.parent / "server.log"  # a file, not a pipe: a server's log never blocks on a full pipe
    proc = subprocess.Popen(_cli(guard_wh, "--role", "analyst", "--serve", "--port", str(port), "--password-file",
                                 str(pw)), stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(1)
    assert proc.poll() is None, log.read_text()[-3000:]
    yield port
    proc.terminate()  # SIGTERM: a clean stop
    proc.wait(timeout=120)
    err = log.read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "stopping the server" in err
    assert "QueryRefusedException" not in err  # refusals went to the clients, not the server's console


def _beeline(port: int, *args: str, password: str = "correct-horse-battery",
             timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEELINE, "-u", f"jdbc:hive2://127.0.0.1:{port}/", "-n", "alice", "-p", password,
                           "--silent=true", "--outputformat=csv2", "--showHeader=true", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


def test_beeline_reads_as_the_role_and_is_refused_the_rest(server: int,
                                                           guard_wh: Config, tmp_path: Path) -> None:
    before = stored_state(guard_wh)
    # One beeline for three statements: a read the role may make, a restricted column, the repro.
    script = tmp_path / "three.sql"
    script.write_text("SELECT count(*) AS n FROM feature_logs;\nSELECT entity.email FROM feature_logs;\n"
                      + fill(C.DESTRUCTIVE[0], guard_wh) + ";\n")
    done = _beeline(server, "--force=true", "-f", str(script))
    # With --force beeline runs every statement and exits 0: the output says what each did.
    # The read's header and value; beeline prints "null" for each failed statement. No email came back.
    assert done.stdout.replace("null", "").split() == ["n", "2"], done.stdout[-2000:]
    assert "entity" in done.stderr and "query refused: EXECUTE IMMEDIATE" in done.stderr, done.stderr[-3000:]
    # A wrong password: the server refuses the login (beeline then loops asking for a password on its
    # closed stdin, printing "null": stopped by the timeout). No row came back either way.
    try:
        wrong = _beeline(server, "-e", "SELECT 'leaked' AS x;", password="wrong-password-1", timeout=40)
        wrong_out, wrong_err = wrong.stdout, wrong.stderr
    except subprocess.TimeoutExpired as exc:
        wrong_out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        wrong_err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    assert "leaked" not in wrong_out and "Peer indicated failure" in wrong_err, wrong_err[-2000:]
    assert stored_state(guard_wh) == before


def test_the_corpus_through_beeline_shows_nothing_and_changes_nothing(server: int,
                                                                    guard_wh: Config, tmp_path: Path) -> None:
    before = stored_state(guard_wh)
    corpus = tmp_path / "corpus.sql"
    # Beeline splits on `;` itself: scripting blocks go in as one line each with their inner `;`
    # and fail as fragments; each fragment is refused or rejected.
    corpus.write_text("".join(fill(s, guard_wh) + ";\n" for s in C.DESTRUCTIVE))
    done = _beeline(server, "--force=true", "-f", str(corpus), timeout=300)
    # Beeline sends "SELECT 1; SELECT * FROM delta.`...`" as two statements: the first is a plain read
    # (header 1, value 1); it prints "null" for each failed statement in silent mode. Nothing else.
    assert done.stdout.replace("null", "").split() == ["1", "1"], done.stdout[:2000]
    refusals = done.stderr.count("query refused") + done.stderr.count("UNRESOLVED_") + \
        done.stderr.count("PARSE_SYNTAX_ERROR")
    assert refusals >= len(C.DESTRUCTIVE) - 5, done.stderr[-3000:]
    assert stored_state(guard_wh) == before


def test_the_interactive_shell(guard_wh: Config, tmp_path: Path) -> None:
    wh = guard_wh
    history = tmp_path / "history"
    env = {**os.environ, "SKEWLESS_SQL_HISTORY": str(history), "TERM": "dumb"}
    term = Terminal([SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql", "--role",
                     "analyst"], env)
    at = term.wait_for("skewless(analyst)> ")
    term.type("SELECT count(*) AS n\n")
    at = term.wait_for("...> ", after=at)
    term.type("FROM feature_logs;\n")
    at = term.wait_for("(1 row, ", after=at)
    assert "|2  |" in term.seen
    # A query long enough to be cancelled: Ctrl-C stops its jobs, the shell stays.
    term.type("SELECT max(id) FROM range(0, 500000000000);\n")
    time.sleep(4)
    term.type("\x03")
    at = term.wait_for("cancelled after", after=at)
    term.type("DROP VIEW feature_logs;\n")
    at = term.wait_for("query refused: command DropView", after=at)
    term.type("SELECT CAST(concat('x', event_hour) AS INT) FROM feature_logs;\n")  # fails as it runs (ANSI)
    at = term.wait_for("statement failed: [CAST_INVALID_INPUT]", after=at)
    term.type("SELECT count(*) AS n FROM feature_logs;\n")
    at = term.wait_for("(1 row, ", after=at)
    term.wait_for("skewless(analyst)> ", after=at)
    time.sleep(0.5)  # readline owns the terminal again before Ctrl-D arrives
    term.type("\x04")
    assert term.close() == 0
    assert "Traceback" not in term.seen and "ERROR" not in term.seen, term.seen[-3000:]
    assert history.read_text().splitlines() == [
        "SELECT count(*) AS n FROM feature_logs;", "SELECT max(id) FROM range(0, 500000000000);",
        "DROP VIEW feature_logs;", "SELECT CAST(concat('x', event_hour) AS INT) FROM feature_logs;",
        "SELECT count(*) AS n FROM feature_logs;"]
    assert oct(history.stat().st_mode & 0o777) == "0o600"
