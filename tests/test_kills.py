"""Kill tests: SIGKILL `compact`, `labels`, `snapshot create` and `nightly` at seeded random points,
rerun, and compare the tables row for row with an uninterrupted run's. No partial snapshot may be
resolvable, and every audit row must reconcile.

`make test` kills `compact` once (the job whose commits every other table depends on); `make chaos`
(SKEWLESS_CHAOS_KILLS=20) kills compact, labels, snapshot create and the nightly each at least 20
times, and writes the figures to bench/results/chaos-<job>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import is_table, read_table
from skewless.core.errors import UsageError
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.datasets.catalog_job import load as load_version
from skewless.datasets.catalog_job import verify_hash
from skewless.datasets.quality import load_suite
from skewless.datasets.snapshot_job import create
from skewless.datasets.spec import load_dataset
from skewless.datasets.versions import resolve, versions_table
from skewless.devtools.generator import GenSpec, generate
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run
from skewless.nightly import job as nightly_run

from . import chaos
from .conftest import HOUR, KEY, ROOT, frozen

KILLS = int(os.environ.get("SKEWLESS_CHAOS_KILLS", "1"))
CAMPAIGN = "SKEWLESS_CHAOS_KILLS" in os.environ
SINGLE_JOBS = ("compact", "labels", "snapshot")
KILLED = SINGLE_JOBS if CAMPAIGN else ("compact",)  # each job needs the ones before it in SINGLE_JOBS
RESULTS = ROOT / "bench" / "results"  # chaos-<job>.json: one file per job, so campaigns can run in parallel
RUN_COLUMNS = (N.RUN_ID, N.INGESTED_AT)
TABLES = {"compact": (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE),
          "labels": (N.LABELS, N.LABELS_QUARANTINE), "snapshot": (),
          "nightly": (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.LABELS, N.LABELS_QUARANTINE)}
BEFORE = {"compact": None, "labels": "after_compact", "snapshot": "after_labels", "nightly": None}
AS_OF = date(2027, 4, 1)


def _run(job: str, spark: SparkSession, cfg: Config) -> None:
    """The job, uninterrupted, in this process."""
    if job == "compact":
        compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    elif job == "nightly":  # in this process, with the key the killed run used
        os.environ["SKEWLESS_PII_KEY"] = KEY.secret.decode()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                nightly_run.run(spark, cfg, argparse.Namespace(date="2026-11-25", steps=None, force=None,
                                                              wait_minutes=None, exit_zero_on_checks=False))
        finally:
            del os.environ["SKEWLESS_PII_KEY"]
    elif job == "labels":
        labels_run.run(spark, cfg, argparse.Namespace(date=None, through="2027-03-31"))
    else:
        create(spark, cfg, load_dataset(ROOT / "conf" / "datasets", "fraud_daily"),
               load_suite(ROOT / "expectations", "fraud_daily"), AS_OF, Progress("test"))


def _stable(df: DataFrame) -> DataFrame:
    return df.drop(*[c for c in RUN_COLUMNS if c in df.columns])


def _latest_snapshot(spark: SparkSession, wh: str) -> DataFrame:
    return load_version(spark, wh, "fraud_daily@latest", verify=True)


@pytest.fixture(scope="module")
def reference(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kills")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "reference"))
    generate(GenSpec(landing=cfg.paths.landing, start=HOUR, hours=1, rps=1, seed=5, hosts=2), progress=False)
    frozen_tables: dict[str, DataFrame] = {}
    for job in SINGLE_JOBS[:max(SINGLE_JOBS.index(j) for j in KILLED) + 1]:
        _run(job, spark, cfg)
        for table in TABLES[job]:
            frozen_tables[table] = frozen(spark, _stable(read_table(spark, cfg.paths.warehouse, table)))
        if job != "snapshot":
            shutil.copytree(cfg.paths.warehouse, root / f"after_{job}")
    if "snapshot" in KILLED:
        frozen_tables["snapshot"] = frozen(spark, _latest_snapshot(spark, cfg.paths.warehouse))
    if CAMPAIGN:  # the nightly's uninterrupted tables, from its own warehouse
        night = cfg.with_paths(warehouse=str(root / "nightly-reference"))
        _run("nightly", spark, night)
        for table in TABLES["nightly"]:
            frozen_tables[f"nightly:{table}"] = frozen(spark, _stable(read_table(spark, night.paths.warehouse, table)))
    return {"root": root, "cfg": cfg, "tables": frozen_tables}


def _check_visible_state(spark: SparkSession, cfg: Config) -> None:
    """What a killed run left: every audit row reconciles, every recorded snapshot version is whole."""
    wh = cfg.paths.warehouse
    if is_table(spark, table_path(wh, N.INGESTION_AUDIT)):
        for r in read_table(spark, wh, N.INGESTION_AUDIT).collect():
            assert r["records_read"] == r["loaded"] + r["duplicates"] + r["quarantined"], r.asDict()
    versions = versions_table(spark, cfg)
    recorded = {int(r["version"]) for r in versions.collect()}
    for row in versions.collect():
        verify_hash(spark.read.format("delta").load(row["location"]), row.asDict(recursive=True))
    snapshots = Path(wh, "snapshots", "fraud_daily")
    for folder in snapshots.glob("v*") if snapshots.exists() else []:
        number = int(folder.name[1:])
        if number not in recorded:  # a killed run's folder: never resolvable
            with pytest.raises(UsageError, match="no such version"):
                resolve(versions, f"fraud_daily@{number}")


def _trial(spark: SparkSession, reference: dict[str, Any], job: str, seed: int) -> chaos.Kill:
    root: Path = reference["root"]
    cfg: Config = reference["cfg"].with_paths(warehouse=str(root / f"{job}-{seed}"))
    if BEFORE[job]:
        shutil.copytree(root / str(BEFORE[job]), cfg.paths.warehouse)
    roots = ["--config", str(ROOT / "conf" / "warehouse.yaml"), "--landing", cfg.paths.landing,
             "--warehouse", cfg.paths.warehouse]
    env = {**os.environ, "SKEWLESS_PII_KEY": KEY.secret.decode()}
    kill = chaos.run_and_kill(job, seed, roots, env, ROOT)
    _check_visible_state(spark, cfg)
    _run(job, spark, cfg)  # the rerun converges...
    _check_visible_state(spark, cfg)
    for table in TABLES[job]:  # ...to the uninterrupted run's tables, row for row
        want = reference["tables"][f"nightly:{table}" if job == "nightly" else table]
        assertDataFrameEqual(_stable(read_table(spark, cfg.paths.warehouse, table)), want)
    if job == "snapshot":  # the latest published version holds the same rows (its number may differ)
        assertDataFrameEqual(_latest_snapshot(spark, cfg.paths.warehouse), reference["tables"]["snapshot"])
    shutil.rmtree(cfg.paths.warehouse)
    return kill


@pytest.mark.parametrize("job", [*KILLED, *(["nightly"] if CAMPAIGN else [])])
def test_a_killed_job_reruns_to_the_uninterrupted_tables(spark: SparkSession, reference: dict[str, Any],
                                                          job: str) -> None:
    kills: list[chaos.Kill] = []
    seed = 0
    while sum(k.killed for k in kills) < KILLS and seed < 3 * KILLS + 2:
        kills.append(_trial(spark, reference, job, seed))
        seed += 1
        if CAMPAIGN:  # after every trial: a long campaign shows progress
            _record(job, kills)
    assert sum(k.killed for k in kills) >= KILLS, [asdict(k) for k in kills]


def _record(job: str, kills: list[chaos.Kill]) -> None:
    data = {"job": job, "kills": sum(k.killed for k in kills), "finished_before_kill": sum(not k.killed for k in kills),
            "reruns_equal_to_uninterrupted": len(kills), "records_lost": 0,
            "killed_after": sorted({k.last_line.split("] ", 1)[-1][:70] for k in kills if k.killed})}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"chaos-{job}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

