"""Shared fixtures: one local Spark session for the whole run, and helpers that write landing files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from skewless.core.config import Config, SparkSettings, load
from skewless.core.policy import HashKey
from skewless.core.session import build_session

from . import beside, jvm_archive

ROOT = Path(__file__).resolve().parent.parent
# The dev profile's per-warehouse keys (made by CLI runs in subprocesses too) stay out of $HOME.
# Temporary folders this process made (not a caller's): removed when the run ends.
_MADE: list[str] = []


def _made(prefix: str) -> str:
    _MADE.append(tempfile.mkdtemp(prefix=prefix))
    return _MADE[-1]


if "SKEWLESS_KEY_DIR" not in os.environ:
    os.environ["SKEWLESS_KEY_DIR"] = _made("skewless-test-keys-")
# Short-lived JVMs (every CLI or job subprocess a test starts) boot about 20% faster with the C1 compiler
# only (measured: compact 31 -> 26 s, sql 9.3 -> 7.4 s). The one long-lived test session keeps the
# default tiered compiler: C1 alone made test_labels 24% slower there.
_C1_ONLY = jvm_archive.C1_ONLY
os.environ.setdefault("SPARK_SUBMIT_OPTS", _C1_ONLY)
# ...and faster again with the classes they all load mapped from one archive (measured: sql 13.4 ->
# 9.3 s, compact 32 -> 29 s), made by a JVM in the background while the first tests run, and used from
# the first test that starts after it.
# The second pytest process of a run (tests/beside.py) inherits the path and uses the same archive.
if "SKEWLESS_TEST_CDS" not in os.environ:
    os.environ["SKEWLESS_TEST_CDS"] = str(Path(_made("skewless-cds-")) / "cli.jsa")
_ARCHIVE = Path(os.environ["SKEWLESS_TEST_CDS"])
_DUMP: subprocess.Popen[bytes] | None = None
_BESIDE: beside.BesideRun | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{beside.MARK}: starts its own JVMs, uses no in-process session; "
                                       "runs in a second pytest process beside the rest (tests/beside.py)")
    config.addinivalue_line("markers", f"{beside.LAST}: runs Spark work in several threads of the session; runs last "
                                       "when a second process runs beside (tests/beside.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only a run with Spark tests starts the dumping JVM (`make test-fast` starts none); the `beside`
    tests start in their own process at once."""
    global _DUMP, _BESIDE
    uses_spark = any("spark" in getattr(item, "fixturenames", ()) for item in items)
    if uses_spark and os.environ["SPARK_SUBMIT_OPTS"] == _C1_ONLY and beside.CHILD not in os.environ:
        _DUMP = jvm_archive.start_dump(_ARCHIVE)
    _BESIDE = beside.split(config, items)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _BESIDE is not None and _BESIDE.wait(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED) != 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    jvm_archive.stop_dump(_DUMP, _ARCHIVE)
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _BESIDE is not None:
        verdict = "passed" if _BESIDE.returncode == 0 else f"FAILED (exit {_BESIDE.returncode}): the run fails"
        terminalreporter.section(f"{_BESIDE.count} tests beside, in a second process: {verdict}")
        terminalreporter.write(_BESIDE.report())


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Subprocess JVMs use the archive once the dumping JVM has written it whole (checked between
    tests: no JVM of this process is starting then)."""
    if os.environ["SPARK_SUBMIT_OPTS"] == _C1_ONLY and jvm_archive.ready(_ARCHIVE):
        os.environ["SPARK_SUBMIT_OPTS"] = jvm_archive.options(_ARCHIVE)


def _cli_config() -> str:
    """conf/ as the CLI subprocesses of the tests read it ($SKEWLESS_CONFIG): the same files, with the
    shuffle sized for the tests' tiny tables on two cores (8 partitions of a few hundred rows made
    every CLI job schedule four times the tasks and write four times the files)."""
    dest = Path(_made("skewless-test-conf-")) / "conf"
    shutil.copytree(ROOT / "conf", dest)
    shutil.copytree(ROOT / "expectations", dest.parent / "expectations")  # `../expectations` from conf/
    main = dest / "warehouse.yaml"
    text = main.read_text()
    assert "shuffle_partitions: 8" in text
    main.write_text(text.replace("shuffle_partitions: 8", "shuffle_partitions: 2"))
    return str(main)


if "SKEWLESS_CONFIG" not in os.environ:
    os.environ["SKEWLESS_CONFIG"] = _cli_config()
HOUR = datetime(2026, 11, 25, 13, tzinfo=UTC)
# A fixed test key (not the demo key): hashes in tests are reproducible and checkable with Python's hmac.
KEY = HashKey("k1", b"test-key-0123456789abcdef0123456789abcdef", demo=False)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    # The event log is on so that tests can search it (no secret may reach it): uncompressed, since
    # Spark 4 compresses it with zstd by default and a search of compressed bytes finds nothing.
    events = tmp_path_factory.mktemp("spark-events")
    settings = SparkSettings(master="local[2]", app_name="skewless-tests", shuffle_partitions=2,
                             driver_memory="2g", conf={"spark.ui.enabled": "false", "spark.eventLog.enabled": "true",
                                                      "spark.eventLog.dir": f"file:{events}",
                                                      "spark.eventLog.compress": "false"})
    mine = os.environ.get("SPARK_SUBMIT_OPTS", "")
    if mine.startswith(_C1_ONLY):
        del os.environ["SPARK_SUBMIT_OPTS"]
    try:
        session = build_session(settings)
    finally:
        if mine.startswith(_C1_ONLY):
            os.environ["SPARK_SUBMIT_OPTS"] = mine
    yield session
    session.stop()


@pytest.fixture()
def warehouse(tmp_path: Path) -> Config:
    """The repo's config (models included) with landing and tables under tmp_path."""
    wh = load(ROOT / "conf" / "warehouse.yaml")
    return wh.with_paths(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))


def frozen(spark: SparkSession, df: DataFrame) -> DataFrame:
    """The rows `df` holds now, collected: a later comparison cannot re-read the source (a cached read of
    a Delta path would be served from the same cache after the table changed, proving nothing)."""
    return spark.createDataFrame(df.collect(), df.schema)


def record(request_id: str, logged_at: str = "2026-11-25T13:10:00.000Z", **overrides: Any) -> dict[str, Any]:
    """A valid format-v1 record of the fraud model, with any field overridden."""
    rec: dict[str, Any] = {
        "schema_version": 1, "request_id": request_id, "logged_at": logged_at,
        "model": {"name": "fraud", "version": "v1"},
        "entity": {"user_id": "u1", "email": "a@example.com", "ip": "10.1.2.3"},
        "features": {"amount": 12.5, "country": "DE", "card_present": True, "ip_risk": None},
        "feature_status": {"ip_risk": "timeout"},
        "prediction": {"score": 0.25, "decision": "approve"},
        "sample_rate": 0.1,
        "context": {"region": "eu-west-1"},
    }
    rec.update(overrides)
    return rec


def write_hour(landing: str | Path, hour: datetime, name: str, lines: list[Any], gz: bool = True) -> Path:
    """Write records (dicts become JSON, str/bytes are written as they are) into an hour folder."""
    folder = Path(landing) / "predictions" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    body = b"".join(
        (line if isinstance(line, bytes) else
         (line if isinstance(line, str) else json.dumps(line)).encode()) + b"\n"
        for line in lines)
    path = folder / (name + (".jsonl.gz" if gz else ".jsonl"))
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


@pytest.fixture(scope="session")
def guard_wh(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """One small warehouse for the SQL tests (two loaded rows, one quarantined line), built once."""
    from skewless.core.progress import Progress
    from skewless.ingest import job as compact_run

    cfg = guard_landing(tmp_path_factory.mktemp("guard"))
    compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    return cfg


def guard_landing(root: Path) -> Config:
    """The SQL tests' warehouse under `root` before compaction: an hour of two records and a broken line,
    and a scratch folder the corpus's statements name."""
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    write_hour(cfg.paths.landing, HOUR, "part-0", [record("r1"), record("r2"), "{not json"])
    (root / "scratch").mkdir()
    return cfg
