"""The nightly job (its compact step) on a real Spark standalone cluster (a master and two
one-core workers on 127.0.0.1), submitted with spark-submit from another folder with the package as a
--py-files zip: the tables equal a local run's on the same input (the CLI, in its own process), row for
row. Both are read back with delta-rs: the test uses no in-process session and runs beside the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.jars import require_jars
from skewless.core.paths import table_path
from skewless.devtools.cluster import LocalCluster
from skewless.devtools.generator import GenSpec, generate
from skewless.devtools.pyzip import build as build_zip
from skewless.serving.arrow import read_arrow

from . import jvm_archive
from .conftest import HOUR, KEY, ROOT

pytestmark = pytest.mark.beside
RUN_COLUMNS = (N.RUN_ID, N.INGESTED_AT)  # differ between any two runs by design


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workers=2, work_dir=tmp_path_factory.mktemp("cluster")) as c:
        yield c


def _rows(warehouse: str, table: str) -> pa.Table:
    """A table's rows in a fixed order, without the run's own columns."""
    rows = read_arrow(table_path(warehouse, table))
    rows = rows.drop_columns([c for c in RUN_COLUMNS if c in rows.column_names])
    keys = [(f.name, "ascending") for f in rows.schema if not pa.types.is_nested(f.type)]
    return rows.take(pc.sort_indices(rows, sort_keys=keys))


def _counts(step: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in step.items() if k not in ("seconds", "run_id", "runs")}


def test_the_nightly_on_a_standalone_cluster_equals_a_local_run(
        cluster: LocalCluster, warehouse: Config, tmp_path: Path) -> None:
    assert cluster.alive_workers() == 2
    # Format v2 (Avro, with v1 lines for what it cannot hold): spark-avro and the block walker ship with --jars.
    generate(GenSpec(landing=warehouse.paths.landing, start=HOUR, hours=1, rps=1.5, seed=11, hosts=2,
                     log_format="avro"), progress=False)
    zip_path = tmp_path / "dist" / "skewless.zip"
    build_zip(zip_path)
    elsewhere = tmp_path / "elsewhere"  # not the project: nothing found through the working directory
    elsewhere.mkdir()
    remote_wh, local_wh = str(tmp_path / "cluster-warehouse"), warehouse.paths.warehouse
    roots = ["--config", str(ROOT / "conf" / "warehouse.yaml"), "--landing", warehouse.paths.landing]
    env = {"SKEWLESS_PII_KEY": KEY.secret.decode(), "PYTHONPATH": ""}
    jars = ",".join(str(p) for p in require_jars())
    # The nightly's compact step (the other steps run in the nightly tests and labels in `make
    # cluster-demo`: the suite's time budget).
    args = ["nightly", "--date", f"{HOUR:%Y-%m-%d}", "--steps", "compact"]

    def on_cluster() -> subprocess.CompletedProcess[str]:
        # The executors live for this one short job: C1 only, like the suite's other short-lived JVMs
        # (see conftest; measured here: the submit took 70-75 s instead of 90 s).
        return cluster.submit(ROOT / "jobs" / "nightly.py", [*roots, "--warehouse", remote_wh, *args[1:]],
                              py_files=zip_path, jars=jars, cwd=elsewhere, env=env,
                              conf={"spark.executor.extraJavaOptions": jvm_archive.C1_ONLY})

    def locally() -> subprocess.CompletedProcess[str]:  # the same input, with the CLI's local master
        return subprocess.run([str(Path(sys.executable).parent / "skewless"), *roots, "--warehouse", local_wh, *args],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(2) as pool:
        remote_run, local_run = pool.submit(on_cluster), pool.submit(locally)
        out, local = remote_run.result(), local_run.result()
    assert out.returncode in (0, 1), out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    # Exit 1 exactly when a landing file could not be read whole (the generator cuts one upload).
    assert out.returncode == (1 if summary["steps"]["compact"]["unreadable_files"] else 0), summary
    assert summary["job"] == "nightly" and list(summary["steps"]) == ["compact"]
    # spark-submit's Python runner merges the driver's stderr into its stdout: progress, then the summary.
    assert "] step 1/1 compact: " in out.stdout and "compact: hour 1/1 2026-11-25T13 (new)" in out.stdout, \
        out.stdout[-3000:]
    assert any(Path(cluster.work_dir).glob("worker-*/app-*/*/stderr")), "no executor ran on a worker"
    assert local.returncode == out.returncode, local.stderr[-4000:]
    local_counts = json.loads(local.stdout.strip().splitlines()[-1])["steps"]["compact"]
    assert _counts(local_counts) == _counts(summary["steps"]["compact"]), (local_counts, summary)

    for table in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE):
        remote_rows, local_rows = _rows(remote_wh, table), _rows(local_wh, table)
        assert remote_rows.schema == local_rows.schema
        assert remote_rows.num_rows > 0 or table == N.FEATURE_LOGS_QUARANTINE
        assert remote_rows.to_pylist() == local_rows.to_pylist()
    assert set(pc.unique(_rows(remote_wh, N.FEATURE_LOGS)[N.SCHEMA_VERSION]).to_pylist()) == {2}
