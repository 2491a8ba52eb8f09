"""`skewless sql` as a hostile analyst would use it: the corpus in sql_corpus.py is refused for every
role by the JVM guard before anything runs, through a notebook session (`skewless.sql.session`), the
CLI shell over a pipe, and beeline against `skewless sql --serve`; each target is read back to prove
nothing ran. Plain queries still run, and refusals name what and why."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual

import skewless.sql
from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import last_commit, read_delta, table_properties
from skewless.core.errors import AccessDeniedError, QueryRefusedError, UsageError
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run
from skewless.sql.guard import run_statement
from skewless.sql.passwords import add_user
from skewless.sql.roles import Binding, bind

from . import sql_corpus as C
from .conftest import HOUR, KEY, ROOT, frozen, record, write_hour

ROLES = ("analyst", "ml_engineer", "privacy_officer")
REFUSED = (QueryRefusedError, AccessDeniedError, UsageError)
SKEWLESS = str(Path(sys.executable).parent / "skewless")
BEELINE = str(resources.files("pyspark").joinpath("bin", "beeline"))  # beeline ships with pyspark


@pytest.fixture(scope="module")
def wh(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    from skewless.core.config import load

    root = tmp_path_factory.mktemp("guard")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    write_hour(cfg.paths.landing, HOUR, "part-0", [record("r1"), record("r2"), "{not json"])
    compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    (root / "scratch").mkdir()
    return cfg


@pytest.fixture(scope="module")
def state(spark: SparkSession, wh: Config) -> Callable[[], object]:
    """Every table's rows (collected), Delta version and properties, and the scratch folder's contents."""
    def now() -> object:
        out: dict[str, object] = {}
        for name in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.INGESTION_AUDIT):
            path = table_path(wh.paths.warehouse, name)
            out[name] = (sorted(map(str, frozen(spark, read_delta(spark, path)).collect())),
                         last_commit(spark, path)["version"], table_properties(spark, path))
        out["scratch"] = sorted(os.listdir(_scratch(wh)))
        out["warehouse"] = sorted(os.listdir(wh.paths.warehouse))
        return out
    return now


def _scratch(wh: Config) -> Path:
    return Path(wh.paths.warehouse).parent / "scratch"


def _fill(statement: str, wh: Config) -> str:
    return C.fill(statement, str(Path(wh.paths.warehouse).resolve()), str(Path(wh.paths.landing).resolve()),
                  str(_scratch(wh).resolve()))


@pytest.fixture(scope="module")
def bound(spark: SparkSession, wh: Config) -> dict[str, tuple[SparkSession, Binding]]:
    """One notebook-style session per role: a new session of the test JVM bound to the role (the rest of
    the suite stays unbound)."""
    return {role: (s, bind(s, wh, role, whole_application=False)) for role in ROLES
            for s in [spark.newSession()]}


def test_the_public_api_binds_a_session(spark: SparkSession, wh: Config) -> None:
    from skewless.sql.roles import role_of

    s = skewless.sql.session("ml_engineer", wh, spark=spark.newSession(), whole_application=False)
    assert role_of(s) == "ml_engineer" and role_of(spark) is None
    assert s.sql("SELECT count(*) AS n FROM feature_logs").collect() == [Row(n=2)]
    with pytest.raises(Exception, match="query refused: command SetCommand"):
        s.sql("SET spark.sql.runSQLOnFiles = true")


def test_the_execute_immediate_repro_is_refused_and_feature_logs_is_untouched(
        spark: SparkSession, wh: Config, bound: dict[str, tuple[SparkSession, Binding]]) -> None:
    path = table_path(wh.paths.warehouse, N.FEATURE_LOGS)
    rows, version = frozen(spark, read_delta(spark, path)), last_commit(spark, path)["version"]
    s, b = bound["analyst"]
    with pytest.raises(QueryRefusedError, match="query refused: EXECUTE IMMEDIATE"):
        run_statement(s, b, _fill(C.DESTRUCTIVE[0], wh))
    assertDataFrameEqual(frozen(spark, read_delta(spark, path)), rows)
    assert last_commit(spark, path)["version"] == version
    assert [t.name for t in s.catalog.listTables() if t.isTemporary] == list(b.views)


def test_the_corpus_is_refused_for_every_role_in_a_notebook_session_and_nothing_ran(
        spark: SparkSession, wh: Config, bound: dict[str, tuple[SparkSession, Binding]],
        state: Callable[[], object], capsys: pytest.CaptureFixture[str]) -> None:
    before = state()
    assert len(C.DESTRUCTIVE) >= 100
    refused = 0
    for role, (s, b) in bound.items():
        for statement in C.DESTRUCTIVE:
            with pytest.raises(REFUSED):
                run_statement(s, b, _fill(statement, wh)).collect()
            refused += 1
        for statement, allowed in C.BY_CLEARANCE:
            if role in allowed:
                run_statement(s, b, statement).collect()
            else:
                with pytest.raises(REFUSED):
                    run_statement(s, b, statement).collect()
                refused += 1
        assert s.conf.get("spark.sql.runSQLOnFiles") == "false"
        assert sorted(t.name for t in s.catalog.listTables() if t.isTemporary) == list(b.views)
    assert refused >= 3 * len(C.DESTRUCTIVE)
    assert capsys.readouterr().out == ""  # no refusal showed data
    assert state() == before  # no commit, no property change, no file or folder written anywhere


def test_plain_queries_run_for_every_role(bound: dict[str, tuple[SparkSession, Binding]]) -> None:
    for s, b in bound.values():
        for statement in C.PLAIN:
            run_statement(s, b, statement).collect()
    s, b = bound["analyst"]
    assert run_statement(s, b, "SELECT count(*) AS n FROM feature_logs").collect() == [Row(n=2)]


def test_refusals_name_what_and_why(bound: dict[str, tuple[SparkSession, Binding]], wh: Config) -> None:
    cases = {
        "SELECT reflect('java.lang.System', 'getenv', 'HOME')": r"query refused: function reflect\(\): only Spark's",
        "DELETE FROM feature_logs WHERE true": r"query refused: command DeleteFromTable",
        "EXECUTE IMMEDIATE 'DROP VIEW feature_logs'": r"query refused: EXECUTE IMMEDIATE: a role runs read queries",
        "BEGIN SELECT 1; END": r"query refused: a SQL script",
        "SELECT * FROM IDENTIFIER('feature_logs')": r"query refused: IDENTIFIER\(\)",
        "SELECT * FROM table_changes('feature_logs', 0)": r"query refused: table function table_changes\(\)",
        "RESTORE TABLE feature_logs TO VERSION AS OF 0": r"query refused: command RestoreTableStatement",
        "SELECT * FROM feature_logs VERSION AS OF 0": r"query refused: time travel",
        "SELECT input_file_name() FROM feature_logs": r"query refused: function input_file_name\(\)",
        "SELECT * FROM range(1), delta.`{wh}/feature_logs`":
            r"query refused: relation delta\..*: a role reads its views",
        "USE other_db": r"query refused: USE other_db",
        "SELECT raw_text FROM feature_logs_quarantine": r"may not read feature_logs_quarantine",
        "SELECT entity.email FROM feature_logs":
            r"role 'analyst' may not read feature_logs.entity.email \(access class restricted\)",
        "SELECT nope FROM feature_logs": r"query rejected: .*nope",
        "SELECT _metadata FROM feature_logs": r"query rejected: .*_metadata",
    }
    s, b = bound["analyst"]
    for statement, message in cases.items():
        with pytest.raises(REFUSED, match=message):
            run_statement(s, b, _fill(statement, wh))


def test_the_dataframe_api_of_a_bound_session_is_guarded_too(
        spark: SparkSession, wh: Config, bound: dict[str, tuple[SparkSession, Binding]],
        state: Callable[[], object]) -> None:
    before = state()
    s, _ = bound["analyst"]
    fl = table_path(wh.paths.warehouse, N.FEATURE_LOGS)
    out = str(_scratch(wh) / "df_out")
    attempts: list[Callable[[], object]] = [
        lambda: s.read.format("delta").load(fl).collect(),
        lambda: s.read.text(str(Path(wh.paths.landing) / "predictions")).collect(),
        lambda: s.table("feature_logs").write.format("delta").save(out),
        lambda: s.table("feature_logs").write.mode("overwrite").format("delta").save(fl),
        lambda: s.range(1).createOrReplaceTempView("feature_logs"),
        lambda: s.table("feature_logs").selectExpr("reflect('java.lang.System', 'getenv', 'HOME')").collect(),
        lambda: s.table("feature_logs").selectExpr("input_file_name()").collect(),
        lambda: s.sql("SELECT 1").write.saveAsTable("stolen"),
    ]
    for attempt in attempts:
        with pytest.raises(Exception, match="query refused"):
            attempt()
    assert s.table("feature_logs").count() == 2  # still the role's view, and it still reads
    assert state() == before
    assert spark.sql("SELECT 1 AS a").collect() == [Row(a=1)]  # the test's own session is not bound


def test_the_role_is_fixed_when_the_session_is_bound(bound: dict[str, tuple[SparkSession, Binding]],
                                                     wh: Config) -> None:
    from py4j.protocol import Py4JJavaError

    from skewless.sql.roles import role_of

    s, _ = bound["analyst"]
    with pytest.raises(UsageError, match="already bound to role 'analyst'"):
        bind(s, wh, "privacy_officer", whole_application=False)
    guard = s.sparkContext._jvm.io.skewless.sql.RoleGuard  # type: ignore[union-attr]
    with pytest.raises(Py4JJavaError, match="already bound to role 'analyst'"):  # the JVM's own wall
        guard.lock(s._jsparkSession, "privacy_officer", "feature_logs_quarantine", False)
    assert role_of(s) == "analyst"
    assert [t.name for t in s.catalog.listTables() if t.isTemporary] == ["feature_logs"]


def _run_cli(wh: Config, *args: str, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql", *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_corpus_through_the_cli_shell_shows_nothing_and_changes_nothing(
        wh: Config, state: Callable[[], object]) -> None:
    before = state()
    script = "".join(_fill(s, wh) + ";\n" for s in C.DESTRUCTIVE) + "SELECT count(*) AS n FROM feature_logs"
    done = _run_cli(wh, "--role", "analyst", "--format", "json", stdin=script)
    assert done.returncode == 2, done.stderr[-3000:]
    # The shell splits "SELECT 1; SELECT * FROM delta.`...`" into two statements: the first is a plain
    # read and runs; then the one plain query at the end. Nothing of the corpus showed table data.
    assert done.stdout == '{"1": 1}\n{"n": 2}\n'

    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("skewless: ")]
    # Scripts' inner `;` split them in the shell: more errors than statements, never fewer.
    assert len(errors) >= len(C.DESTRUCTIVE), done.stderr[-3000:]
    assert all(("query refused" in e or "may not read" in e or "query rejected" in e) for e in errors), errors
    assert "Traceback" not in done.stderr and "Py4J" not in done.stderr
    assert "Using incubator modules" not in done.stderr
    assert state() == before


def test_the_cli_refuses_the_repro_with_exit_2(wh: Config, state: Callable[[], object]) -> None:
    before = state()
    done = _run_cli(wh, "--role", "analyst", _fill(C.DESTRUCTIVE[0], wh))
    assert done.returncode == 2 and done.stdout == ""
    assert "query refused: EXECUTE IMMEDIATE" in done.stderr
    assert state() == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(wh: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`skewless sql --serve --role analyst` on a free loopback port, with a password file."""
    port = _free_port()
    pw = tmp_path_factory.mktemp("jdbc") / "users"
    add_user(pw, "alice", "correct-horse-battery")
    log = pw.parent / "server.log"  # a file, not a pipe: a server's log never blocks on a full pipe
    proc = subprocess.Popen([SKEWLESS, "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse, "sql",
                             "--role", "analyst", "--serve", "--port", str(port), "--password-file", str(pw)],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(1)
    assert proc.poll() is None, log.read_text()[-3000:]
    yield port, pw
    proc.terminate()  # SIGTERM: a clean stop
    proc.wait(timeout=120)
    err = log.read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "stopping the server" in err
    assert "QueryRefusedException" not in err  # refusals went to the clients, not the server's console


def _beeline(port: int, *args: str, user: str = "alice", password: str = "correct-horse-battery",
             timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEELINE, "-u", f"jdbc:hive2://127.0.0.1:{port}/", "-n", user, "-p", password,
                           "--silent=true", "--outputformat=csv2", "--showHeader=true", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


def test_beeline_reads_as_the_role_and_is_refused_the_rest(server: tuple[int, Path], wh: Config,
                                                           state: Callable[[], object]) -> None:
    port, _ = server
    before = state()
    ok = _beeline(port, "-e", "SELECT count(*) AS n FROM feature_logs;")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.split() == ["n", "2"]
    hidden = _beeline(port, "-e", "SELECT entity.email FROM feature_logs;")
    assert hidden.returncode != 0 and "entity" in hidden.stderr and hidden.stdout.strip() == ""
    repro = _beeline(port, "-e", _fill(C.DESTRUCTIVE[0], wh) + ";")
    assert repro.returncode != 0 and "query refused: EXECUTE IMMEDIATE" in repro.stderr
    # A wrong password: the server refuses the login (beeline then loops asking for a password on its
    # closed stdin, printing "null": stopped by the timeout). No row came back either way.
    try:
        wrong = _beeline(port, "-e", "SELECT 'leaked' AS x;", password="wrong-password-1", timeout=40)
        wrong_out, wrong_err = wrong.stdout, wrong.stderr
    except subprocess.TimeoutExpired as exc:
        wrong_out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        wrong_err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    assert "leaked" not in wrong_out and "Peer indicated failure" in wrong_err, wrong_err[-2000:]
    assert state() == before


def test_the_corpus_through_beeline_shows_nothing_and_changes_nothing(server: tuple[int, Path], wh: Config,
                                                                    state: Callable[[], object],
                                                                    tmp_path: Path) -> None:
    port, _ = server
    before = state()
    corpus = tmp_path / "corpus.sql"
    # Beeline splits on `;` itself: scripting blocks go in as one line each with their inner `;`
    # and fail as fragments; each fragment is refused or rejected.
    corpus.write_text("".join(_fill(s, wh) + ";\n" for s in C.DESTRUCTIVE))
    done = _beeline(port, "--force=true", "-f", str(corpus), timeout=180)
    # Beeline sends "SELECT 1; SELECT * FROM delta.`...`" as two statements: the first is a plain read
    # (header 1, value 1); it prints "null" for each failed statement in silent mode. Nothing else.
    assert done.stdout.replace("null", "").split() == ["1", "1"], done.stdout[:2000]
    refusals = done.stderr.count("query refused") + done.stderr.count("UNRESOLVED_") + \
        done.stderr.count("PARSE_SYNTAX_ERROR")
    assert refusals >= len(C.DESTRUCTIVE) - 5, done.stderr[-3000:]
    assert state() == before


def test_a_notebook_session_binds_the_whole_application(wh: Config, tmp_path: Path) -> None:
    """`skewless.sql.session(role=...)` in a fresh process: SQL and the DataFrame API as the role, and a
    new session of the same application reads nothing."""
    code = f"""
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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == 2
    assert result["path"] == "refused" and result["drop"] == "refused"
    assert result["newSession"] == "refused"  # bound with the application: no view, reads nothing
