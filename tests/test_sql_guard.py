"""`skewless sql` as a hostile analyst would use it: every query below is refused for every role that
may not read its target, by the guard on Spark's plans, before anything runs; plain queries still run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import last_commit, table_properties
from skewless.core.errors import AccessDeniedError, QueryRefusedError, UsageError
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run
from skewless.sql.job import guarded_query, register_role_views

from .conftest import HOUR, KEY, ROOT, record, write_hour

ROLES = ("analyst", "ml_engineer", "privacy_officer")
REFUSED = (QueryRefusedError, AccessDeniedError, UsageError)

# {wh}: the warehouse root, {landing}: the landing root. Refused for every role.
HOSTILE = [
    "SELECT * FROM delta.`{wh}/feature_logs_quarantine`",
    "SELECT * FROM delta.`{wh}/feature_logs`",
    "SELECT * FROM `delta`.`{wh}/feature_logs_quarantine`",
    "select * from DELTA.`{wh}/feature_logs_quarantine`",
    "SELECT * FROM parquet.`{wh}/feature_logs`",
    "SELECT * FROM text.`{landing}/predictions`",
    "SELECT * FROM json.`{landing}/predictions`",
    "SELECT * FROM csv.`/etc/passwd`",
    "SELECT * FROM binaryFile.`{landing}`",
    "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
    "SELECT java_method('java.lang.System', 'getenv', 'SKEWLESS_PII_KEY')",
    "SELECT try_reflect('java.lang.System', 'getenv', 'HOME')",
    "SELECT ReFlEcT('java.lang.System', 'getenv', 'HOME') FROM feature_logs",
    "VALUES (reflect('java.lang.System', 'getenv', 'HOME'))",
    "SELECT (SELECT max(java_method('java.lang.System', 'getenv', 'HOME')) FROM feature_logs)",
    "WITH q AS (SELECT * FROM delta.`{wh}/feature_logs_quarantine`) SELECT * FROM q",
    "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM parquet.`{wh}/labels`) SELECT * FROM a, b",
    "SELECT * FROM feature_logs WHERE request_id IN (SELECT request_id FROM delta.`{wh}/labels_quarantine`)",
    "SELECT * FROM feature_logs f WHERE EXISTS (SELECT 1 FROM delta.`{wh}/privacy_requests` p)",
    "SELECT request_id FROM feature_logs UNION ALL SELECT raw_text FROM delta.`{wh}/feature_logs_quarantine`",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM delta.`{wh}/feature_logs_quarantine`))",
    "SELECT * FROM range(1) r JOIN delta.`{wh}/ingestion_audit` a ON true",
    "SELECT * FROM feature_logs VERSION AS OF 0",
    "SELECT * FROM feature_logs TIMESTAMP AS OF '2020-01-01'",
    "SELECT * FROM delta.`{wh}/feature_logs` VERSION AS OF 0",
    "DELETE FROM delta.`{wh}/feature_logs` WHERE true",
    "DELETE FROM feature_logs WHERE true",
    "UPDATE delta.`{wh}/feature_logs` SET sample_rate = 1",
    "INSERT INTO delta.`{wh}/feature_logs` SELECT * FROM feature_logs",
    "MERGE INTO delta.`{wh}/feature_logs` t USING feature_logs s ON false WHEN NOT MATCHED THEN INSERT *",
    "RESTORE TABLE delta.`{wh}/feature_logs` TO VERSION AS OF 0",
    "VACUUM delta.`{wh}/feature_logs` RETAIN 0 HOURS",
    "OPTIMIZE delta.`{wh}/feature_logs`",
    "ALTER TABLE delta.`{wh}/feature_logs` SET TBLPROPERTIES ('delta.appendOnly' = 'true')",
    "DROP TABLE delta.`{wh}/feature_logs`",
    "DROP VIEW feature_logs",
    "CREATE OR REPLACE TEMPORARY VIEW feature_logs AS SELECT * FROM delta.`{wh}/feature_logs`",
    "CREATE TEMP VIEW v AS SELECT * FROM feature_logs",
    "CREATE TABLE stolen USING parquet AS SELECT * FROM feature_logs",
    "CACHE TABLE c AS SELECT * FROM delta.`{wh}/feature_logs_quarantine`",
    "CREATE FUNCTION f AS 'java.lang.String'",
    "ADD JAR /tmp/evil.jar",
    "ADD FILE /etc/passwd",
    "LIST FILES",
    "SET spark.sql.runSQLOnFiles = true",
    "SET",
    "RESET",
    "USE other_db",
    "SELECT 1; SELECT * FROM delta.`{wh}/feature_logs_quarantine`",
    "EXPLAIN SELECT * FROM delta.`{wh}/feature_logs_quarantine`",
    "DESCRIBE delta.`{wh}/feature_logs_quarantine`",
    "DESCRIBE DETAIL delta.`{wh}/feature_logs`",
    "DESCRIBE HISTORY delta.`{wh}/feature_logs`",
    "SHOW TABLES IN default",
    "SHOW CREATE TABLE feature_logs",
    "SHOW TBLPROPERTIES feature_logs",
    "REFRESH TABLE feature_logs",
    "SELECT * FROM spark_catalog.default.feature_logs",
    "SELECT * FROM global_temp.feature_logs",
    "SELECT * FROM read_files('{landing}')",
]
# Allowed only to roles cleared for their targets: (query, roles that may run it).
BY_CLEARANCE = [
    ("SELECT raw_text FROM feature_logs_quarantine", {"privacy_officer"}),
    ("SELECT * FROM FEATURE_LOGS_QUARANTINE", {"privacy_officer"}),
    ("SELECT `raw_text` FROM `feature_logs_quarantine`", {"privacy_officer"}),
    ("DESCRIBE feature_logs_quarantine", {"privacy_officer"}),
    ("SELECT entity.email FROM feature_logs", {"privacy_officer"}),
    ("SELECT e.email FROM (SELECT entity AS e FROM feature_logs)", {"privacy_officer"}),
    ("SELECT entity.user_id FROM feature_logs", {"ml_engineer", "privacy_officer"}),
    ("WITH x AS (SELECT * FROM ingestion_audit) SELECT run_id FROM x", {"ml_engineer", "privacy_officer"}),
]
PLAIN = [
    "SELECT event_date, count(*) AS n FROM feature_logs GROUP BY 1",
    "WITH h AS (SELECT event_hour FROM feature_logs) SELECT count(*) FROM h",
    "SELECT count(*) FROM feature_logs WHERE event_hour IN (SELECT event_hour FROM feature_logs)",
    "VALUES (1, 'a')",
    "SELECT * FROM range(3)",
    "SHOW TABLES",
    "DESCRIBE feature_logs",
]


@pytest.fixture(scope="module")
def wh(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    from skewless.core.config import load

    root = tmp_path_factory.mktemp("guard")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    write_hour(cfg.paths.landing, HOUR, "part-0", [record("r1"), record("r2"), "{not json"])
    compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    return cfg


@pytest.fixture()
def as_role(spark: SparkSession, wh: Config) -> Iterator[object]:
    registered: dict[str, dict[str, str]] = {}

    def run(role: str, query: str) -> None:
        if role not in registered:  # views of one role at a time: (re)register on a change of role
            registered.clear()
            registered[role] = register_role_views(spark, wh, role)
        guarded_query(spark, query, role, registered[role], role).collect()

    yield run
    for t in N.TABLES:
        spark.catalog.dropTempView(t)


def _fill(query: str, wh: Config) -> str:
    return query.format(wh=Path(wh.paths.warehouse).resolve(), landing=Path(wh.paths.landing).resolve())


def test_hostile_queries_are_refused_for_every_role_and_run_nothing(spark: SparkSession, wh: Config,
                                                                    as_role: object,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fl = table_path(wh.paths.warehouse, N.FEATURE_LOGS)
    before = (last_commit(spark, fl)["version"], table_properties(spark, fl))
    refused = 0
    for role in ROLES:
        for query in HOSTILE:
            with pytest.raises(REFUSED):
                as_role(role, _fill(query, wh))  # type: ignore[operator]
            refused += 1
    for query, allowed in BY_CLEARANCE:
        for role in ROLES:
            if role in allowed:
                as_role(role, query)  # type: ignore[operator]
            else:
                with pytest.raises(REFUSED):
                    as_role(role, query)  # type: ignore[operator]
                refused += 1
    assert len(HOSTILE) >= 30 and refused >= 3 * len(HOSTILE)
    assert capsys.readouterr().out == ""  # no refusal showed data
    # Nothing ran: no commit, no property change, no temp view replaced, the JVM conf untouched.
    assert (last_commit(spark, fl)["version"], table_properties(spark, fl)) == before
    assert spark.conf.get("spark.sql.runSQLOnFiles") == "true"
    assert not spark.catalog.tableExists("v") and not spark.catalog.tableExists("stolen")


def test_refusals_name_what_and_why(as_role: object, wh: Config) -> None:
    cases = {
        "SELECT reflect('java.lang.System', 'getenv', 'HOME')": r"query refused: function reflect\(\): it calls JVM",
        "DELETE FROM feature_logs WHERE true": r"query refused: command DeleteFromTable",
        "SELECT * FROM feature_logs VERSION AS OF 0": r"query refused: time travel",
        "SELECT * FROM range(1), delta.`{wh}/feature_logs`": r"query refused: relation .*: a role reads its views only",
        "SELECT raw_text FROM feature_logs_quarantine": r"may not read feature_logs_quarantine",
        "SELECT entity.email FROM feature_logs":
            r"role 'analyst' may not read feature_logs.entity.email \(access class restricted\)",
    }
    for query, message in cases.items():
        with pytest.raises(REFUSED, match=message):
            as_role("analyst", _fill(query, wh))  # type: ignore[operator]


def test_a_query_spark_cannot_analyse_is_a_usage_error_naming_the_column(as_role: object) -> None:
    with pytest.raises(UsageError, match="nope"):
        as_role("ml_engineer", "SELECT nope FROM feature_logs")  # type: ignore[operator]


def test_plain_queries_still_run(as_role: object) -> None:
    for role in ROLES:
        for query in PLAIN:
            as_role(role, query)  # type: ignore[operator]


def test_cli_refusal_exits_2_and_shows_no_data(wh: Config) -> None:
    query = _fill("SELECT * FROM delta.`{wh}/feature_logs_quarantine`", wh)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "skewless"), "--landing", wh.paths.landing, "--warehouse",
         wh.paths.warehouse, "sql", "--role", "analyst", query], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == "" and "query refused: relation delta./" in out.stderr
