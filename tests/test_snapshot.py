"""Snapshots: references, the quality gate, splits and weights, lineage, reproducibility, Arrow reads."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import compact_run, forget_run, labels_run
from jobs import names as N
from jobs.config import Warehouse, load
from jobs.dataset_config import DatasetConfig, load_dataset, parse_ref
from jobs.datasets import arrow_batches, verify_hash
from jobs.datasets import load as load_version
from jobs.errors import ConfigError, InvariantError, UsageError
from jobs.forget import pseudonyms
from jobs.generate import GenSpec, generate
from jobs.progress import Progress
from jobs.quality import load_suite
from jobs.snapshot import split_of
from jobs.snapshot_run import create
from jobs.tables import table_path
from jobs.versions import resolve, versions_table

from .conftest import KEY, ROOT

START = datetime(2026, 11, 25, 9, tzinfo=UTC)
AS_OF = date(2027, 4, 1)


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """One generated hour, compacted, labels ingested; shared by the tests (each adds versions)."""
    root = tmp_path_factory.mktemp("snap")
    wh = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    generate(GenSpec(landing=wh.paths.landing, start=START, hours=1, rps=1.5, seed=8), progress=False)
    compact_run.compact_hour(spark, wh, START, Progress("test"), KEY)
    quiet = Path(wh.paths.landing, N.LABELS_DIR, "date=2027-03-31")  # a day without chargebacks still counts
    quiet.mkdir(parents=True, exist_ok=True)
    (quiet / "empty.jsonl").write_text("")
    labels_run.run(spark, wh, argparse.Namespace(date=None, through="2027-03-31", full=False))
    return wh


def _dataset() -> DatasetConfig:
    return load_dataset(ROOT / "conf" / "datasets", "fraud_daily")


def _suite() -> dict[str, object]:
    return load_suite(ROOT / "expectations", "fraud_daily")


def test_dataset_and_reference_parsing_reject_bad_input(tmp_path: Path) -> None:
    text = (ROOT / "conf" / "datasets" / "fraud_daily.yaml").read_text()
    (tmp_path / "fraud_daily.yaml").write_text(text.replace("test: 0.1", "test: 0.2"))
    with pytest.raises(ConfigError, match="fraud_daily.yaml: split: train \\+ validation \\+ test must be 1"):
        load_dataset(tmp_path, "fraud_daily")
    (tmp_path / "fraud_daily.yaml").write_text(text.replace("maturity: closed", "maturity: closed\nwindw: 3"))
    with pytest.raises(ConfigError, match="windw: unknown key"):
        load_dataset(tmp_path, "fraud_daily")
    with pytest.raises(UsageError, match="no dataset 'nope'"):
        load_dataset(tmp_path, "nope")
    assert parse_ref("fraud_daily@3").version == 3 and parse_ref("fraud_daily").kind == "latest"
    assert parse_ref("fraud_daily@2026-11-20").day == date(2026, 11, 20)
    with pytest.raises(UsageError, match="after @ give a version number"):
        parse_ref("fraud_daily@yesterday")


def test_gate_publishes_or_not_and_every_reference_resolves(spark: SparkSession, built: Warehouse) -> None:
    ok = create(spark, built, _dataset(), _suite(), AS_OF, Progress("test"))
    assert ok["status"] == "published" and ok["rows"] == sum(ok["rows_per_split"].values()) > 100
    assert set(ok["lineage"]) == {N.LABELED_EXAMPLES, N.FEATURE_LOGS, N.LABELS}
    strict = {"name": "strict", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "max_value": 20}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}
    ds = dataclasses.replace(_dataset(), filters=("features.amount IS NOT NULL",))  # a new definition
    bad = create(spark, built, ds, strict, AS_OF, Progress("test"))
    assert bad["status"] == "failed" and bad["version"] == ok["version"] + 1
    failed = [json.loads(f) for f in bad["failed_expectations"]]
    assert [f["expectation"] for f in failed] == ["expect_column_values_to_be_between"]
    sample = failed[0]["sample_request_ids"]
    rows = spark.read.format("delta").load(bad["location"]).where(F.col(N.REQUEST_ID).isin(*sample))
    assert len(sample) == 10 and rows.where("amount > 20").count() == 10  # the ids name offending rows
    assert "FAIL" in Path(bad["report_path"]).read_text()

    versions = versions_table(spark, built)
    today = datetime.now(UTC).date()
    for ref in ("fraud_daily@latest", "fraud_daily", f"fraud_daily@{ok['version']}", f"fraud_daily@{today}"):
        assert resolve(versions, ref)["version"] == ok["version"], ref
    with pytest.raises(UsageError, match="failed its quality gate; it is not published"):
        resolve(versions, f"fraud_daily@{bad['version']}")
    assert resolve(versions, f"fraud_daily@{bad['version']}", published_only=False)["status"] == "failed"
    with pytest.raises(UsageError, match="no published version by then"):
        resolve(versions, "fraud_daily@2020-01-01")
    again = create(spark, built, _dataset(), _suite(), AS_OF, Progress("test"))  # same inputs: same version
    assert again["unchanged"] and again["version"] == ok["version"]


def test_splits_are_stable_per_key_and_weights_unbias_sampling(spark: SparkSession, built: Warehouse) -> None:
    df = load_version(spark, built.paths.warehouse, "fraud_daily@latest")
    per_key = df.groupBy("split_key").agg(F.countDistinct("split").alias("n"))
    assert per_key.where("n > 1").count() == 0 and per_key.count() > 20
    assert {r[0] for r in df.select("split").distinct().collect()} == {"train", "validation", "test"}
    assert df.where(F.abs(F.col("weight") - 10.0) > 1e-12).count() == 0  # generator samples at 10%
    keys = spark.createDataFrame([(f"k{i}",) for i in range(2000)], "k string")
    split = _dataset().split
    a = keys.select(split_of(F.col("k"), split).alias("s"))
    assertDataFrameEqual(a, keys.select(split_of(F.col("k"), split).alias("s")))
    shares = {r["s"]: r["count"] / 2000 for r in a.groupBy("s").count().collect()}
    assert abs(shares["train"] - 0.8) < 0.05 and abs(shares["test"] - 0.1) < 0.04
    other = keys.select(split_of(F.col("k"), dataclasses.replace(split, seed="other")).alias("s"))
    assert a.exceptAll(other).count() > 0  # the seed is what reshuffles


def test_versions_reproduce_after_source_changes_and_stream_as_arrow(
        spark: SparkSession, built: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    v = resolve(versions_table(spark, built), "fraud_daily@latest")
    before = load_version(spark, built.paths.warehouse, f"fraud_daily@{v['version']}").localCheckpoint()
    # Sources move on: a new hour of logs, a label correction, then OPTIMIZE and VACUUM of every source.
    later = START + timedelta(hours=1)
    generate(GenSpec(landing=built.paths.landing, start=later, hours=1, rps=0.5, seed=9, hosts=1), progress=False)
    compact_run.compact_hour(spark, built, later, Progress("test"), KEY)
    target = before.select(N.REQUEST_ID, N.LABEL).orderBy(F.col(N.LABEL).desc(), N.REQUEST_ID).first()
    assert target is not None
    folder = Path(built.paths.landing, N.LABELS_DIR, "date=2027-03-30")  # a late file, observed in the window
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fix.jsonl").write_text(json.dumps({"request_id": target[0], "label": 1.0 - target[1],
                                                 "observed_at": "2027-01-20T00:00:00Z"}) + "\n")
    labels_run.run(spark, built, argparse.Namespace(date="2027-03-30", through=None, full=False))
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    for name in (N.FEATURE_LOGS, N.LABELS, N.LABELED_EXAMPLES):
        table = DeltaTable.forPath(spark, table_path(built.paths.warehouse, name))
        table.optimize().executeCompaction()
        table.vacuum(0.0)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    after = load_version(spark, built.paths.warehouse, f"fraud_daily@{v['version']}", verify=True)
    assertDataFrameEqual(after, before)

    arrow_rows = {s: sum(b.num_rows for b in arrow_batches(built.paths.warehouse, f"fraud_daily@{v['version']}",
                                                          split=s)) for s in ("train", "validation", "test")}
    assert arrow_rows == v["rows_per_split"]
    batch = next(arrow_batches(built.paths.warehouse, "fraud_daily@latest", columns=["request_id", "label", "split"]))
    assert batch.schema.names == ["request_id", "label", "split"]

    newer = create(spark, built, _dataset(), _suite(), AS_OF, Progress("test"))
    assert newer["content_hash"] != v["content_hash"] and newer["lineage"][N.LABELS] > v["lineage"][N.LABELS]
    earlier = create(spark, built, _dataset(), _suite(), date(2027, 2, 1), Progress("test"))
    assert earlier["label_cutoff"] == datetime(2027, 2, 1)  # labels as known then, from the history

    # Forgetting a subject reaches snapshots too; the version then no longer matches its hash.
    user = spark.read.format("delta").load(v["location"]).select("split_key").first()
    assert user is not None
    logs = spark.read.format("delta").load(table_path(built.paths.warehouse, N.FEATURE_LOGS))
    assert logs.where(F.col("entity.user_id") == user[0]).count() > 0
    monkeypatch.setenv("SKEWLESS_PII_KEY", KEY.secret.decode())
    raw = _raw_user(built.paths.landing, user[0])
    forget_run.run_forget(spark, built, argparse.Namespace(entity=f"user_id={raw}", reason="", vacuum_retain_hours=0))
    with pytest.raises(InvariantError, match="content hash .* != recorded"):
        verify_hash(spark.read.format("delta").load(v["location"]), v)


def _raw_user(landing: str, pseudonym: str) -> str:
    """`forget` takes raw values; the test knows a pseudonym: find the raw user id behind it."""
    users: set[str] = set()
    for path in Path(landing, N.PREDICTIONS_DIR).rglob("*.jsonl*"):
        raw = path.read_bytes()
        if path.suffix == ".gz":  # may be cut short (the generator's crashed upload)
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        users.update(re.findall(r'"user_id":"(u\d+)"', raw.decode(errors="replace")))
    return next(u for u in sorted(users) if pseudonyms(u, [KEY])[0] == pseudonym)
