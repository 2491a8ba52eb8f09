"""Snapshots: references, the quality gate, splits and weights, lineage, reproducibility, Arrow reads."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import read_delta
from skewless.core.errors import ConfigError, InvariantError, UsageError
from skewless.core.frames import served_between
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.core.refs import parse_ref
from skewless.datasets.catalog_job import load as load_version
from skewless.datasets.catalog_job import verify_hash
from skewless.datasets.quality import load_suite
from skewless.datasets.quality_site import PAGES, validate_with_site
from skewless.datasets.snapshot_job import create
from skewless.datasets.spec import DatasetConfig, load_dataset
from skewless.datasets.transforms import split_of
from skewless.datasets.versions import resolve, versions_table
from skewless.devtools.generator import GenSpec, generate
from skewless.drift import job as drift_run
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run
from skewless.privacy import job as forget_run
from skewless.privacy.transforms import pseudonyms
from skewless.serving.arrow import arrow_batches, read_arrow, resolve_version

from .conftest import KEY, ROOT

START = datetime(2026, 11, 25, 9, tzinfo=UTC)
AS_OF = date(2027, 4, 1)


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """One generated hour, compacted, labels ingested; shared by the tests (each adds versions)."""
    root = tmp_path_factory.mktemp("snap")
    wh = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    generate(GenSpec(landing=wh.paths.landing, start=START, hours=1, rps=1.5, seed=8), progress=False)
    compact_run.compact_hour(spark, wh, START, Progress("test"), KEY)
    quiet = Path(wh.paths.landing, N.LABELS_DIR, "date=2027-03-31")  # a day without chargebacks still counts
    quiet.mkdir(parents=True, exist_ok=True)
    (quiet / "empty.jsonl").write_text("")
    labels_run.run(spark, wh, argparse.Namespace(date=None, through="2027-03-31"))
    return wh


@pytest.fixture(scope="module")
def stratified(spark: SparkSession, built: Config) -> datetime:
    """The next hour, logged with sampling that varies by key (grocery and fuel at 1%, the rest at
    10%), compacted into `built`: sources moving on for the reproduce test, skewed logs for drift."""
    later = START + timedelta(hours=1)
    generate(GenSpec(landing=built.paths.landing, start=later, hours=1, rps=10, seed=9, hosts=2,
                     low_risk_rate=0.01), progress=False)
    compact_run.compact_hour(spark, built, later, Progress("test"), KEY)
    return later


def _serving_install(root: Path) -> str:
    """`pip install skewless` (the base install: no Spark) into a clean venv under `root`; its python."""
    dist, venv = root / "dist", root / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "--quiet", *map(str, dist.glob("*.whl"))],
                   check=True, capture_output=True, timeout=900)
    return py


@pytest.fixture(scope="module", autouse=True)
def serving_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Future[str] | None]:
    """The serving install, made in a background thread from the module's first test on when the run
    includes the test that uses it: pip's work (subprocesses, no Spark) overlaps the module's Spark
    tests instead of adding to them."""
    wanted = any(item.name == test_serving_install_logs_and_reads_a_version_without_spark.__name__
                 for item in request.session.items)
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(_serving_install, tmp_path_factory.mktemp("serving-install")) if wanted else None


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


def test_gate_publishes_or_not_and_every_reference_resolves(spark: SparkSession, built: Config) -> None:
    ok = create(spark, built, _dataset(), _suite(), AS_OF, Progress("test"))
    assert ok["status"] == "published" and ok["rows"] == sum(ok["rows_per_split"].values()) > 100
    assert set(ok["lineage"]) == {N.FEATURE_LOGS, N.LABELS}
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
    # The quality report is GX's own Data Docs page of this validation, in the warehouse's GX context.
    page = Path(bad["report_path"])
    assert page.is_relative_to(Path(built.paths.warehouse, "_quality", "gx")) and page.suffix == ".html"
    text = page.read_text()
    assert "Expectation Validation Result" in text and "strict" in text and "Failed" in text
    assert Path(ok["report_path"]).parent.parent.parent.name == "fraud_daily"  # one page per validated suite

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


def test_on_an_object_store_the_quality_site_is_gxs_own_and_lists_every_validation(
        spark: SparkSession, built: Config, tmp_path: Path) -> None:
    """A warehouse on a non-local Hadoop filesystem (viewfs mounts: URIs with a scheme, as s3a:// is)
    keeps GX's own site: each validation's page, and an index that lists the earlier ones too; and a
    whole `snapshot create` runs there by configuration alone."""
    store = tmp_path / "store"
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    conf.set("fs.viewfs.mounttable.gxtest.link./wh", store.as_uri())
    site = "viewfs://gxtest/wh/_quality/gx"
    df = spark.createDataFrame([("r1", 0.5), ("r2", 1.5)], "request_id string, score double")
    suite = {"name": "tiny", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 1}}]}
    first = validate_with_site(spark, df, suite, site, "tiny@1")
    assert first.docs_page is not None
    first_page = store / first.docs_page.removeprefix("viewfs://gxtest/wh/")
    kept = first_page.read_text()
    second = validate_with_site(spark, df.where("score < 1"), suite, site, "tiny@2")
    assert not first.success and first.failed[0].sample_request_ids == ["r2"] and second.success
    pages = sorted(store.rglob("skewless-tiny.html"))
    assert [p.parent.parent.name for p in pages] == ["tiny@1", "tiny@2"] and first_page in pages
    assert second.docs_page == f"viewfs://gxtest/wh/{pages[1].relative_to(store).as_posix()}"
    # The first page was not copied down for the second run (only its name), and not overwritten.
    assert first_page.read_text() == kept and "Expectation Validation Result" in kept and "Failed" in kept
    index = (store / "_quality/gx" / PAGES / "local_site/index.html").read_text()
    assert "tiny@1" in index and "tiny@2" in index
    assert not [p for p in store.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.suffix != ".crc"]

    # The module's warehouse, through a viewfs URI: a dataset of its own (fraud_daily's versions untouched).
    conf.set("fs.viewfs.mounttable.whtest.link./wh", Path(built.paths.warehouse).as_uri())
    remote = built.with_paths(warehouse="viewfs://whtest/wh")
    made = create(spark, remote, dataclasses.replace(_dataset(), name="fraud_store"), _suite(), AS_OF,
                  Progress("test"))
    assert made["status"] == "published" and made["location"].startswith("viewfs://whtest/wh/snapshots/fraud_store/")
    assert made["report_path"].startswith("viewfs://whtest/wh/_quality/gx/gx/uncommitted/data_docs/")
    page = Path(built.paths.warehouse, made["report_path"].removeprefix("viewfs://whtest/wh/"))
    assert "Expectation Validation Result" in page.read_text()
    assert f"fraud_store@{made['version']}" in Path(built.paths.warehouse, "_quality/gx", PAGES,
                                                      "local_site/index.html").read_text()


def test_splits_are_stable_per_key_and_weights_unbias_sampling(spark: SparkSession, built: Config) -> None:
    df = load_version(spark, built.paths.warehouse, "fraud_daily@latest")
    per_key = df.groupBy("split_key").agg(F.countDistinct("split").alias("n"))
    assert per_key.where("n > 1").count() == 0 and per_key.count() > 20
    assert {r[0] for r in df.select("split").distinct().collect()} == {"train", "validation", "test"}
    assert df.where(F.abs(F.col("weight") - 10.0) > 1e-12).count() == 0  # generator samples at 10%
    # The split is a function of the key alone: another partitioning and order give each key the same
    # split (rows collected first, so the two sides are computed separately).
    keys = spark.createDataFrame([(f"k{i}",) for i in range(2000)], "k string")
    split = _dataset().split
    a = {r["k"]: r["s"] for r in keys.select("k", split_of(F.col("k"), split).alias("s")).collect()}
    shuffled = keys.repartition(7).orderBy(F.rand(5)).select("k", split_of(F.col("k"), split).alias("s"))
    assert {r["k"]: r["s"] for r in shuffled.collect()} == a
    shares = {s: sum(v == s for v in a.values()) / len(a) for s in ("train", "validation", "test")}
    assert abs(shares["train"] - split.train) < 0.05 and abs(shares["validation"] - split.validation) < 0.05
    other = keys.select("k", split_of(F.col("k"), dataclasses.replace(split, seed="other")).alias("s")).collect()
    assert sum(a[r["k"]] != r["s"] for r in other) > 100  # the seed is what reshuffles


def test_drift_weights_undo_sampling_that_varies_by_key(spark: SparkSession, built: Config, stratified: datetime,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The version (hour 09, every request at 10%) against the next hour, where grocery and fuel were
    logged at 1%: the job weighs the hour's rows by 1 / sample_rate as the version's are, and its PSI of
    the merchant mix is the one computed here from weighted counts (small: the same traffic), while
    the same counts unweighted would read as an alert."""
    hour = f"{stratified:%Y-%m-%dT%H}"
    args = argparse.Namespace(model="fraud", reference="fraud_daily@1", reference_hours=None, package=None,
                              by=None, monitoring=None, report=str(tmp_path / "drift.html"),
                              refresh_reference=False, current=drift_run.parse_slice(hour))
    capsys.readouterr()
    drift_run.run(spark, built, args)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["reference"] == "fraud_daily@1" and "merchant_category" not in out["alert"] + out["warn"]
    job_psi = spark.read.format("delta").load(table_path(built.paths.warehouse, N.DRIFT_METRICS)).where(
        (F.col("check_id") == out["check_id"]) & (F.col("feature") == "merchant_category")
        & (F.col("metric") == "psi") & (F.col("segment") == "all")).select("value").collect()

    ref = load_version(spark, built.paths.warehouse, "fraud_daily@1").where("merchant_category IS NOT NULL")
    ref_w = {r[0]: r[1] for r in ref.groupBy("merchant_category").agg(F.sum("weight")).collect()}
    logs = spark.read.format("delta").load(table_path(built.paths.warehouse, N.FEATURE_LOGS))
    cur = served_between(logs, "fraud", stratified, stratified + timedelta(hours=1)).select(
        F.col("features.merchant_category").alias("c"), N.SAMPLE_RATE).where("c IS NOT NULL")
    counts = cur.groupBy("c").agg(F.count("*"), F.sum(1 / F.col(N.SAMPLE_RATE))).collect()
    assert {r[0] for r in cur.select(N.SAMPLE_RATE).distinct().collect()} == {0.1, 0.01}

    def psi(r: dict[str, float], c: dict[str, float]) -> float:
        cats = sorted(r)
        assert set(c) == set(cats)
        p = np.maximum(np.array([r[k] for k in cats]) / sum(r.values()), 1e-4)
        q = np.maximum(np.array([c[k] for k in cats]) / sum(c.values()), 1e-4)
        return float(np.sum((q - p) * np.log(q / p)))

    weighted, unweighted = psi(ref_w, {r[0]: r[2] for r in counts}), psi(ref_w, {r[0]: r[1] for r in counts})
    assert job_psi[0][0] == pytest.approx(weighted, rel=1e-9, abs=1e-12)
    assert weighted < 0.05 < 0.2 < unweighted, (weighted, unweighted)


def test_versions_reproduce_after_source_changes_stream_as_arrow_and_forget_reaches_them(
        spark: SparkSession, built: Config, stratified: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    v = resolve(versions_table(spark, built), "fraud_daily@latest")
    before = load_version(spark, built.paths.warehouse, f"fraud_daily@{v['version']}").localCheckpoint()
    # Sources move on: a new hour of logs (`stratified`), a label correction, then OPTIMIZE and VACUUM
    # of every source.
    target = before.select(N.REQUEST_ID, N.LABEL).orderBy(F.col(N.LABEL).desc(), N.REQUEST_ID).first()
    assert target is not None
    folder = Path(built.paths.landing, N.LABELS_DIR, "date=2027-03-30")  # a late file, observed in the window
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fix.jsonl").write_text(json.dumps({"request_id": target[0], "label": 1.0 - target[1],
                                                 "observed_at": "2027-01-20T00:00:00Z"}) + "\n")
    labels_run.run(spark, built, argparse.Namespace(date="2027-03-30", through=None))
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    for name in (N.FEATURE_LOGS, N.LABELS):
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

    # Forgetting a subject reaches snapshots too; the version then no longer matches its hash. The
    # subject is one with a label, so the forget also marks label events deleted.
    in_snapshot = spark.read.format("delta").load(v["location"]).select(F.col("split_key").alias("user_id"))
    logs = spark.read.format("delta").load(table_path(built.paths.warehouse, N.FEATURE_LOGS))
    ex_path = table_path(built.paths.warehouse, N.LABELS)
    labeled = logs.join(read_delta(spark, ex_path).select(N.REQUEST_ID, N.LABEL_DATE), on=N.REQUEST_ID, how="inner")
    user = (labeled.select("entity.user_id", N.LABEL_DATE).join(in_snapshot, on="user_id", how="left_semi")
            .orderBy("user_id", N.LABEL_DATE).first())
    assert user is not None
    # Another request's label on the subject's label date: the forget then marks the subject's event
    # in that date's file (a deletion vector) instead of removing the file.
    day = f"{user[N.LABEL_DATE]:%Y-%m-%d}"
    (Path(built.paths.landing, N.LABELS_DIR, f"date={day}") / "stranger.jsonl").write_text(json.dumps(
        {"request_id": "stranger", "label": 1.0, "observed_at": f"{day}T12:00:00Z"}) + "\n")
    labels_run.run(spark, built, argparse.Namespace(date=day, through=None))
    monkeypatch.setenv("SKEWLESS_PII_KEY", KEY.secret.decode())
    raw = _raw_user(built.paths.landing, user[0])
    forget_run.run_forget(spark, built, argparse.Namespace(entity=f"user_id={raw}", reason="",
                                                           vacuum_retain_hours=168))
    with pytest.raises(InvariantError, match="content hash .* != recorded"):
        verify_hash(spark.read.format("delta").load(v["location"]), v)
    _arrow_hides_deletion_vectors_like_spark(spark, ex_path)


def _arrow_hides_deletion_vectors_like_spark(spark: SparkSession, ex_path: str) -> None:
    """A forget at the default retention leaves a `labels` version whose rows are only marked
    deleted (deletion vectors); delta-rs must hide them exactly as Spark does."""
    history = DeltaTable.forPath(spark, ex_path).history().select("version", "operation", "operationMetrics")
    marked = [r["version"] for r in history.collect() if r["operation"] == "MERGE"
              and int((r["operationMetrics"] or {}).get("numTargetDeletionVectorsAdded", 0)) > 0]
    assert marked, "the forget's MERGE left no deletion vector to read"
    version = max(marked)
    spark_rows = read_delta(spark, ex_path, version=version).select(N.REQUEST_ID, N.LABEL, N.SOURCE)
    arrow = read_arrow(ex_path, version=version, columns=[N.REQUEST_ID, N.LABEL, N.SOURCE])
    assert 0 < arrow.num_rows < read_delta(spark, ex_path, version=version - 1).count()
    assertDataFrameEqual(spark.createDataFrame(arrow.to_pylist(), spark_rows.schema), spark_rows)


def _raw_user(landing: str, pseudonym: str) -> str:
    """`forget` takes raw values; the test knows a pseudonym: find the raw user id behind it."""
    users: set[str] = set()
    for path in Path(landing, N.PREDICTIONS_DIR).rglob("*.jsonl*"):
        raw = path.read_bytes()
        if path.suffix == ".gz":  # may be cut short (the generator's crashed upload)
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        users.update(re.findall(r'"user_id":"(u\d+)"', raw.decode(errors="replace")))
    return next(u for u in sorted(users) if pseudonyms(u, [KEY])[0] == pseudonym)


def test_serving_install_logs_and_reads_a_version_without_spark(spark: SparkSession, built: Config,
                                                                serving_python: Future[str] | None,
                                                                tmp_path: Path) -> None:
    """`pip install skewless` (the base install, in a clean venv) logs predictions and reads a published
    dataset version through Arrow; pyspark is not even installed there."""
    assert serving_python is not None
    py = serving_python.result()
    script = f"""
import importlib.util, json, sys
from datetime import datetime, UTC
from skewless.serving.logger import PredictionLogger
from skewless.serving.arrow import arrow_batches, read_arrow, resolve_version
logger = PredictionLogger({str(tmp_path / 'landing')!r}, host="h1", sample_rate=1.0)
logger.log("r1", model=("fraud", "v1"), entity={{"user_id": "u1"}},
           features={{"amount": 3.5}}, feature_status={{}}, prediction={{"score": 0.5}},
           logged_at=datetime(2026, 11, 25, 13, tzinfo=UTC))
logger.close()
rows = {{s: sum(b.num_rows for b in arrow_batches({built.paths.warehouse!r}, "fraud_daily@latest", split=s))
        for s in ("train", "validation", "test")}}
print(json.dumps({{"pyspark": importlib.util.find_spec("pyspark") is not None, "rows": rows}}))
"""
    out = subprocess.run([py, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["pyspark"] is False
    latest = load_version(spark, built.paths.warehouse, "fraud_daily@latest")
    assert result["rows"] == {r["split"]: r["count"] for r in latest.groupBy("split").count().collect()}
    assert resolve_version(built.paths.warehouse, "fraud_daily@latest")["version"] == \
        resolve(versions_table(spark, built), "fraud_daily@latest")["version"]
    assert list((tmp_path / "landing").rglob("*.jsonl*")), "the logger wrote no file"
