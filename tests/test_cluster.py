"""The nightly job (its compact step) on a real Spark standalone cluster (a master and two
one-core workers on 127.0.0.1), submitted with spark-submit from another folder with the package as a
--py-files zip: the tables equal a local run's on the same input, row for row."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import read_table
from skewless.core.jars import require_jars
from skewless.devtools.cluster import LocalCluster
from skewless.devtools.generator import GenSpec, generate
from skewless.devtools.pyzip import build as build_zip
from skewless.nightly import job as nightly_run

from . import jvm_archive
from .conftest import HOUR, KEY, ROOT

RUN_COLUMNS = (N.RUN_ID, N.INGESTED_AT)  # differ between any two runs by design


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workers=2, work_dir=tmp_path_factory.mktemp("cluster")) as c:
        yield c


def _stable(df: DataFrame) -> DataFrame:
    return df.drop(*[c for c in RUN_COLUMNS if c in df.columns])


def test_the_nightly_on_a_standalone_cluster_equals_a_local_run(
        spark: SparkSession, cluster: LocalCluster, warehouse: Config, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.alive_workers() == 2
    # Format v2 (Avro, with v1 lines for what it cannot hold): spark-avro and the block walker ship with --jars.
    generate(GenSpec(landing=warehouse.paths.landing, start=HOUR, hours=1, rps=1.5, seed=11, hosts=2,
                     log_format="avro"), progress=False)
    zip_path = tmp_path / "dist" / "skewless.zip"
    build_zip(zip_path)
    elsewhere = tmp_path / "elsewhere"  # not the project: nothing found through the working directory
    elsewhere.mkdir()
    remote_wh = str(tmp_path / "cluster-warehouse")
    roots = ["--config", str(ROOT / "conf" / "warehouse.yaml"), "--landing", warehouse.paths.landing,
             "--warehouse", remote_wh]
    env = {"SKEWLESS_PII_KEY": KEY.secret.decode(), "PYTHONPATH": ""}
    jars = ",".join(str(p) for p in require_jars())
    # The nightly's compact step (the other steps run in the nightly tests and labels in `make
    # cluster-demo`: the suite's time budget).
    args = ["--date", f"{HOUR:%Y-%m-%d}", "--steps", "compact"]
    # The executors live for this one short job: C1 only, like the suite's other short-lived JVMs (see
    # conftest; measured here: the submit took 70-75 s instead of 90 s).
    out = cluster.submit(ROOT / "jobs" / "nightly.py", [*roots, *args], py_files=zip_path, jars=jars, cwd=elsewhere,
                         env=env, conf={"spark.executor.extraJavaOptions": jvm_archive.C1_ONLY})
    assert out.returncode in (0, 1), out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    # Exit 1 exactly when a landing file could not be read whole (the generator cuts one upload).
    assert out.returncode == (1 if summary["steps"]["compact"]["unreadable_files"] else 0), summary
    assert summary["job"] == "nightly" and list(summary["steps"]) == ["compact"]
    # spark-submit's Python runner merges the driver's stderr into its stdout: progress, then the summary.
    assert "] step 1/1 compact: " in out.stdout and "compact: hour 1/1 2026-11-25T13 (new)" in out.stdout, \
        out.stdout[-3000:]
    assert any(Path(cluster.work_dir).glob("worker-*/app-*/*/stderr")), "no executor ran on a worker"

    # The same input, locally in this process.
    monkeypatch.setenv("SKEWLESS_PII_KEY", KEY.secret.decode())
    with contextlib.redirect_stdout(io.StringIO()):
        nightly_run.run(spark, warehouse, argparse.Namespace(date=args[1], steps=("compact",), force=None,
                                                             wait_minutes=None, exit_zero_on_checks=False))
    for table in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE):
        local = _stable(read_table(spark, warehouse.paths.warehouse, table)).localCheckpoint()
        remote = _stable(read_table(spark, remote_wh, table)).localCheckpoint()
        assert local.count() > 0 or table == N.FEATURE_LOGS_QUARANTINE
        assertDataFrameEqual(remote, local)
    loaded = read_table(spark, remote_wh, N.FEATURE_LOGS)
    assert {r[0] for r in loaded.select(N.SCHEMA_VERSION).distinct().collect()} == {2}

