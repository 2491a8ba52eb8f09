"""Concurrent runs against the same tables: all commit (bounded retries), nothing loads twice, and the
tables equal a serial run's. Threads share the test session, as jobs share a cluster's tables."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import audit
from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import ensure_table, is_table, read_table, table_property
from skewless.core.progress import Progress
from skewless.datasets.versions import reserve_version
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run

from .conftest import HOUR, KEY, ROOT, frozen, record, write_hour

NEXT = HOUR + timedelta(hours=1)
RUN_COLUMNS = (N.RUN_ID, N.INGESTED_AT)
# Threads of the one session: last in the run, when both cores are free (tests/beside.py).
pytestmark = pytest.mark.threads


def _landing(cfg: Config) -> None:
    """Two hours; `both` is logged in hour 13 and, as a late retry, again in hour 14."""
    write_hour(cfg.paths.landing, HOUR, "pod-0", [record(f"a{i}") for i in range(30)] + [record("both")])
    write_hour(cfg.paths.landing, NEXT, "pod-0", [record(f"b{i}", logged_at="2026-11-25T14:05:00Z")
                                                  for i in range(30)] + [record("both"), "{bad"])
    day = Path(cfg.paths.landing, N.LABELS_DIR, "date=2026-12-01")
    day.mkdir(parents=True, exist_ok=True)
    (day / "l.jsonl").write_text(
        '{"request_id": "a1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"}\n')


def _cfg(tmp_path_factory: pytest.TempPathFactory, name: str) -> Config:
    root = tmp_path_factory.mktemp(name)
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    _landing(cfg)
    return cfg


def _compact(spark: SparkSession, cfg: Config, hour: Any) -> Callable[[], object]:
    return lambda: compact_run.compact_hour(spark, cfg, hour, Progress("test"), KEY)


def _labels(spark: SparkSession, cfg: Config) -> Callable[[], object]:
    return lambda: labels_run.run(spark, cfg, argparse.Namespace(date=None, through="2026-12-01"))


def _together(*actions: Callable[[], object]) -> list[object]:
    """Run the actions at once (released by one barrier); re-raise the first failure."""
    barrier = threading.Barrier(len(actions))
    out: list[object] = [None] * len(actions)

    def run(i: int, action: Callable[[], object]) -> None:
        barrier.wait()
        try:
            out[i] = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in out:
        if isinstance(o, BaseException):
            raise o
    return out


def _tables(spark: SparkSession, cfg: Config, names: tuple[str, ...]) -> dict[str, DataFrame]:
    """The tables without run ids, with file names instead of paths (each case has its own landing)."""
    out = {}
    for t in names:
        df = read_table(spark, cfg.paths.warehouse, t).drop(*RUN_COLUMNS)
        if N.SOURCE_FILE in df.columns:
            df = df.withColumn(N.SOURCE_FILE, F.regexp_extract(N.SOURCE_FILE, r"[^/]+$", 0))
        out[t] = frozen(spark, df)
    return out


@pytest.fixture(scope="module")
def serial(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataFrame]:
    cfg = _cfg(tmp_path_factory, "serial")
    for action in (_compact(spark, cfg, HOUR), _compact(spark, cfg, NEXT), _labels(spark, cfg)):
        action()
    return _tables(spark, cfg, (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.LABELS))


def test_two_hours_and_labels_at_once_equal_a_serial_run(spark: SparkSession, serial: dict[str, DataFrame],
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    cfg = _cfg(tmp_path_factory, "together")
    a, b, _ = _together(_compact(spark, cfg, HOUR), _compact(spark, cfg, NEXT), _labels(spark, cfg))
    assert isinstance(a, dict) and isinstance(b, dict)
    got = _tables(spark, cfg, (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE))
    assert got[N.FEATURE_LOGS].where(F.col(N.REQUEST_ID) == "both").count() == 1  # loaded once, not twice
    # Which hour keeps `both` follows the commit order (the first to commit wins, as in a serial run in
    # that order): compare without the provenance columns; everything else is row for row.
    where = (N.LANDING_HOUR, N.SOURCE_FILE, N.SOURCE_LINE)
    assertDataFrameEqual(got[N.FEATURE_LOGS].drop(*where), serial[N.FEATURE_LOGS].drop(*where))
    assertDataFrameEqual(got[N.FEATURE_LOGS].where(F.col(N.REQUEST_ID) != "both"),
                         serial[N.FEATURE_LOGS].where(F.col(N.REQUEST_ID) != "both"))
    assertDataFrameEqual(got[N.FEATURE_LOGS_QUARANTINE], serial[N.FEATURE_LOGS_QUARANTINE])
    # The labels run saw whatever hours had committed; its next run catches up to the serial tables.
    _labels(spark, cfg)()
    for name, df in _tables(spark, cfg, (N.LABELS,)).items():
        assertDataFrameEqual(df, serial[name])
    audits = read_table(spark, cfg.paths.warehouse, N.INGESTION_AUDIT).where("job = 'compact'").collect()
    assert all(r["records_read"] == r["loaded"] + r["duplicates"] + r["quarantined"] for r in audits)
    assert sorted(r["landing_hour"] for r in audits) == [HOUR.replace(tzinfo=None), NEXT.replace(tzinfo=None)]


def test_the_same_hour_twice_at_once_loads_it_once_and_both_audits_tell_the_truth(
        spark: SparkSession, serial: dict[str, DataFrame], tmp_path_factory: pytest.TempPathFactory) -> None:
    cfg = _cfg(tmp_path_factory, "twice")
    first, second = _together(_compact(spark, cfg, HOUR), _compact(spark, cfg, HOUR))
    logs = _tables(spark, cfg, (N.FEATURE_LOGS,))[N.FEATURE_LOGS]
    assertDataFrameEqual(logs, serial[N.FEATURE_LOGS].where(F.col(N.LANDING_HOUR) == HOUR.replace(tzinfo=None)))
    audits = read_table(spark, cfg.paths.warehouse, N.INGESTION_AUDIT).collect()
    assert len(audits) == 2  # one row per run: neither shadowed the other
    for r in audits:
        assert (r["records_read"], r["loaded"], r["duplicates"], r["quarantined"]) == (31, 31, 0, 0)
    assert {first["run_id"], second["run_id"]} == {r["run_id"] for r in audits}  # type: ignore[index]


def test_snapshot_versions_are_reserved_once_each_under_contention(
        spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> None:
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(warehouse=str(tmp_path_factory.mktemp("reserve")))
    got = _together(*[lambda: reserve_version(spark, cfg, "fraud_daily") for _ in range(4)])
    assert sorted(got) == [1, 2, 3, 4]  # type: ignore[type-var]  # no number twice, none lost
    rows = read_table(spark, cfg.paths.warehouse, N.DATASET_RESERVATIONS).collect()
    assert sorted(r["version"] for r in rows) == [1, 2, 3, 4] and len({r["token"] for r in rows}) == 4


def test_a_run_that_started_earlier_but_finished_later_keeps_its_audit_row(
        spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = str(tmp_path_factory.mktemp("audit") / N.INGESTION_AUDIT)
    base = {"job": "compact", N.LANDING_HOUR: HOUR.replace(tzinfo=None), "status": "succeeded",
            "records_read": 1, "loaded": 1, "duplicates": 0, "quarantined": 0}
    late_starter = {**base, N.RUN_ID: "b", "started_at": HOUR.replace(tzinfo=None, minute=30)}
    early_starter = {**base, N.RUN_ID: "a", "started_at": HOUR.replace(tzinfo=None, minute=10)}
    audit.append(spark, path, late_starter)   # commits first
    audit.append(spark, path, early_starter)  # started earlier, commits later: never shadowed
    audit.append(spark, path, early_starter)  # its retried append: a no-op
    rows = spark.read.format("delta").load(path).select(N.RUN_ID).collect()
    assert sorted(r[0] for r in rows) == ["a", "b"]


def test_first_writers_racing_to_create_a_table_all_get_it(
        spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("create")
    schema = spark.range(1).schema
    for round_ in range(3):
        path = str(root / f"t{round_}")
        _together(*[lambda p=path: ensure_table(spark, p, schema, (), {"delta.appendOnly": "false"})
                    for _ in range(4)])
        assert is_table(spark, path)
        assert table_property(spark, path, "delta.appendOnly") == "false"
