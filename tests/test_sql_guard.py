"""`skewless sql` as a hostile analyst would use it, in bound notebook-style sessions of the test JVM: the
corpus in sql_corpus.py is refused for every role by the JVM guard before anything runs, and every
table is read back to prove nothing ran; the DataFrame API is guarded too; plain queries still run and
refusals name what and why. The other entry points (CLI, shell, JDBC, a notebook process):
test_sql_entrypoints.py."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual

import skewless.sql
from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import last_commit, read_delta
from skewless.core.errors import AccessDeniedError, QueryRefusedError, UsageError
from skewless.core.paths import table_path
from skewless.sql.guard import run_statement
from skewless.sql.roles import Binding, bind
from skewless.sql.shell import _execute

from . import sql_corpus as C
from .conftest import frozen
from .sqlhelp import fill, scratch
from .sqlhelp import state as table_state

ROLES = ("analyst", "ml_engineer", "privacy_officer")
REFUSED = (QueryRefusedError, AccessDeniedError, UsageError)


@pytest.fixture(scope="module")
def wh(guard_wh: Config) -> Config:
    return guard_wh


@pytest.fixture(scope="module")
def state(spark: SparkSession, wh: Config) -> Callable[[], object]:
    return lambda: table_state(spark, wh)


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
        run_statement(s, b, fill(C.DESTRUCTIVE[0], wh))
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
                run_statement(s, b, fill(statement, wh)).collect()
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


def test_a_reader_that_closed_the_output_ends_the_shell_not_the_statement(
        bound: dict[str, tuple[SparkSession, Binding]]) -> None:
    """`skewless sql ... | head`: the rows' writer meets a closed pipe. The shell must not report a
    failed statement and read the next one; the error reaches cli, which exits 141 (test_layout)."""
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    s, b = bound["analyst"]
    with pytest.raises(BrokenPipeError):
        _execute(s, b, "SELECT count(*) AS n FROM feature_logs", "json", 10, Closed())


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
            run_statement(s, b, fill(statement, wh))


def test_the_dataframe_api_of_a_bound_session_is_guarded_too(
        spark: SparkSession, wh: Config, bound: dict[str, tuple[SparkSession, Binding]],
        state: Callable[[], object]) -> None:
    before = state()
    s, _ = bound["analyst"]
    fl = table_path(wh.paths.warehouse, N.FEATURE_LOGS)
    out = str(scratch(wh) / "df_out")
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


def test_a_view_made_before_binding_is_never_trusted(spark: SparkSession, wh: Config) -> None:
    """A notebook made views named like the warehouse's tables before binding: one whose table does not
    exist yet (labels), one whose table the role may not read (the quarantine). Binding drops both;
    the guard trusts only the views it registered."""
    s = spark.newSession()
    s.range(3).createOrReplaceTempView(N.LABELS)
    s.range(3).createOrReplaceTempView(N.FEATURE_LOGS_QUARANTINE)
    b = bind(s, wh, "analyst", whole_application=False)
    assert N.LABELS not in b.views and N.FEATURE_LOGS_QUARANTINE not in b.views and N.FEATURE_LOGS in b.views
    assert sorted(t.name for t in s.catalog.listTables() if t.isTemporary) == list(b.views)
    for name in (N.LABELS, N.FEATURE_LOGS_QUARANTINE):
        with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND|query refused"):
            s.sql(f"SELECT count(*) FROM {name}").collect()


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
