"""The pre-deploy skew test: a fitted Spark pipeline vs the packaged serving engine, and localization.

One module warehouse (an hour of traffic, labels, a snapshot, a fitted package); the offline side's
outputs are collected once and every injected serving bug is compared against them.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.errors import ConfigError, InvariantError, UsageError
from skewless.core.progress import Progress
from skewless.datasets.snapshot_job import run as snapshot_run
from skewless.devtools.generator import GenSpec, generate
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run
from skewless.model.job import fit
from skewless.model.spec import load_spec
from skewless.serving.arrow import arrow_batches
from skewless.serving.engine import ServingModel
from skewless.serving.package import read_manifest, write_manifest
from skewless.serving.stages import StageFn
from skewless.skew.compare import Localizer
from skewless.skew.evaluate import SERVED_SCORE, SERVED_VERSION, columns_of, evaluate
from skewless.skew.job import SkewOptions, collect_examples, run_skew_test

from . import skewbugs
from .conftest import KEY, ROOT

SPEC = ROOT / "conf" / "models" / "fraud-pipeline.yaml"
START = datetime(2026, 11, 25, 9, tzinfo=UTC)
BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    root = tmp_path_factory.mktemp("skew")
    wh = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    # Two hours: an hour-of-day feature with a single value has std 0 and would hide hour bugs.
    generate(GenSpec(landing=wh.paths.landing, start=START, hours=2, rps=1.5, seed=11), progress=False)
    for hour in (START, START + timedelta(hours=1)):
        compact_run.compact_hour(spark, wh, hour, Progress("test"), KEY)
    labels_run.run(spark, wh, argparse.Namespace(date=None, through="2027-03-31"))
    snapshot_run(spark, wh, argparse.Namespace(snapshot_action="create", name="fraud_daily", as_of="2027-04-01"))
    pkg = root / "pkg" / "fraud"
    fit(spark, wh, load_spec(SPEC), "fraud_daily@1", pkg, replace=False, progress=Progress("test"))
    return wh, pkg


@pytest.fixture(scope="module")
def offline(spark: SparkSession, built: tuple[Config, Path]) -> dict[str, np.ndarray]:
    wh, pkg = built
    table, _ = collect_examples(spark, wh, SkewOptions(str(pkg), examples=5000), read_manifest(pkg))
    return columns_of(table)


def _evaluate(pkg: Path, offline: dict[str, np.ndarray], overrides: dict[str, StageFn] | None = None,
              manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    return evaluate(manifest or read_manifest(pkg), offline, tolerance=1e-6, source="test", package=str(pkg),
                    examples_requested=5000, overrides=overrides)


def test_untouched_package_agrees_at_every_stage(built: tuple[Config, Path], offline: dict[str, np.ndarray]) -> None:
    _, pkg = built
    report = _evaluate(pkg, offline)
    assert report["passed"] and report["examples"] > 300 and report["max_abs_diff"] < 1e-12, report
    engine = ServingModel.load(pkg)
    served = engine.run({f: offline[f] for f in engine.features})
    for stage in engine.stages:  # not only the score: every stage's every output, slot by slot
        for o in stage.outputs:
            a, b = offline[o.column], served[o.column]
            assert a.shape == b.shape, (stage.name, o.name)
            if a.dtype == object:
                assert list(a) == list(b), (stage.name, o.name)
            else:
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-12, err_msg=f"{stage.name} {o.name}")
    # The sample includes the served quirks: timeouts arrive missing and are imputed on both sides.
    assert np.isnan(offline["ip_risk"]).any() and np.isnan(offline["device_fingerprint_score"]).any()


def _exact_medians(wh: Config, pkg: Path) -> skewbugs.StageFn:
    manifest = read_manifest(pkg)
    stage = next(s for s in manifest["stages"] if s["name"] == "impute")
    train = {k: v for b in arrow_batches(wh.paths.warehouse, "fraud_daily@1", split="train")
             for k, v in b.to_pydict().items()}
    hours = [t.hour for t in train["logged_at"]]
    values = {n: hours if n == "utc_hour" else train[n] for n in stage["input_names"]}
    return skewbugs.exact_median([float(np.median([float(v) for v in values[n] if v is not None]))
                                  for n in stage["input_names"]])


BUGS: dict[str, tuple[Callable[[Config, Path], dict[str, StageFn]], str, str]] = {
    "population std": (lambda wh, pkg: {"scale": skewbugs.population_std(
        next(s for s in read_manifest(pkg)["stages"] if s["name"] == "scale")["params"],
        read_manifest(pkg)["dataset"]["rows"])}, "scale", "scaled[amount]"),
    "exact median": (lambda wh, pkg: {"impute": _exact_medians(wh, pkg)}, "impute", "ip_risk"),
    "float32": (lambda wh, pkg: {"inputs": skewbugs.float32_inputs}, "inputs", "logged_at"),
    "missing as 0": (lambda wh, pkg: {"impute": skewbugs.missing_as_zero}, "impute", "ip_risk"),
    "bucket side": (lambda wh, pkg: {"bucket": skewbugs.right_closed_buckets}, "bucket", "txn_count_24h"),
    "one-hot keeps last": (lambda wh, pkg: {"onehot": skewbugs.one_hot_keeps_last}, "onehot", "country["),
    "local hour": (lambda wh, pkg: {"hour": skewbugs.local_hour()}, "hour", "utc_hour"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_known_skew_bug_is_blocked_and_localized(bug: str, built: tuple[Config, Path],
                                                      offline: dict[str, np.ndarray]) -> None:
    wh, pkg = built
    make, stage, slot = BUGS[bug]
    report = _evaluate(pkg, offline, make(wh, pkg))
    assert not report["passed"] and report["over_tolerance"] > 0
    loc = report["localization"]
    assert loc["stage"] == stage, (bug, loc)
    slots = [d["slot"] for d in loc["differing"]]
    assert any(s.startswith(slot) for s in slots), (bug, slots)
    assert loc["comparisons"] <= math.ceil(math.log2(loc["stages"])), loc
    assert loc["isolated"]["differs"], loc  # the stage itself disagrees on identical inputs
    sample = loc["differing"][0]["examples"][0]
    assert sample["request_id"] in set(offline["request_id"]) and sample["offline"] != sample["serving"]


@given(n=st.integers(1, 64), first=st.integers(0, 63))
def test_bisection_finds_the_first_divergent_stage_in_log_comparisons(n: int, first: int) -> None:
    first = min(first, n - 1)

    class Fake(Localizer):
        def diverges(self, k: int, rows: np.ndarray) -> bool:
            self.comparisons += 1
            return k >= first

    engine = type("E", (), {"stages": [None] * n})()
    loc = Fake(engine, {}, {}, 1e-6)
    assert loc.first_divergent_stage(np.arange(1)) == first
    assert loc.comparisons <= math.ceil(math.log2(n)) if n > 1 else loc.comparisons == 0


def test_production_scores_are_compared_where_this_version_served(built: tuple[Config, Path],
                                                                  offline: dict[str, np.ndarray]) -> None:
    _, pkg = built
    manifest = read_manifest(pkg)
    logged = dict(offline)
    logged[SERVED_VERSION] = np.array([manifest["model"]["version"]] * 10 + list(offline[SERVED_VERSION][10:]),
                                      dtype=object)
    score = offline["score"].copy()
    score[3] += 1e-3  # production served something else for one request
    logged[SERVED_SCORE] = np.where(np.arange(len(score)) < 10, score, np.nan)
    report = _evaluate(pkg, logged)
    assert report["served"] == {"compared": 10, "max_abs_diff": pytest.approx(1e-3), "over_tolerance": 1}
    assert not report["passed"] and report["over_tolerance"] == 0  # offline and engine agree; production did not


def test_package_is_sealed_and_specs_fail_with_their_key(built: tuple[Config, Path], tmp_path: Path) -> None:
    _, pkg = built
    copy = tmp_path / "pkg"
    shutil.copytree(pkg, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["stages"][-1]["params"]["intercept"] += 0.5
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvariantError, match="content hash .* changed after it was written"):
        ServingModel.load(copy)
    with pytest.raises(UsageError, match="not a model package"):
        ServingModel.load(tmp_path)
    text = SPEC.read_text()
    for old, new, match in [
        ("strategy: median", "strategy: median\n    strategee: mean", r"stages\[1\]\.strategee: unknown key"),
        ("inputs: [country,", "inputs: [amount, country,", r"stages\[6\]\.inputs\[0\]: one_hot reads categorical"),
        ("[scaled, card_present,", "[scaled, ip_risk_raw,", r"stages\[8\]\.inputs\[1\]: 'ip_risk_raw' is not"),
        ("-.inf, 1, 3, 10, .inf", "-.inf, 3, 1, .inf", r"stages\[4\]\.splits: must rise"),
    ]:
        (tmp_path / "p.yaml").write_text(text.replace(old, new, 1))
        with pytest.raises(ConfigError, match=match):
            load_spec(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text(text.replace("inputs: [utc_hour, amount,", "inputs: [amount,", 1))
    with pytest.raises(ConfigError, match=r"stages\[8\]\.inputs: \['scaled'\] may be missing here"):
        load_spec(tmp_path / "p.yaml")


def test_a_blocked_deploy_from_the_cli_leaves_report_page_and_history(
        spark: SparkSession, built: tuple[Config, Path], tmp_path: Path) -> None:
    """As a CI pipeline runs it: a package whose scaler a serving team re-exported with the population
    std. Exit 1, the JSON names the stage, the page renders in Chromium, and skew_tests has both runs."""
    wh, pkg = built
    good = run_skew_test(spark, wh, SkewOptions(str(pkg), examples=200), progress=Progress("test"))
    assert good["passed"] and good["examples"] == 200
    bad = tmp_path / "bad"
    shutil.copytree(pkg, bad)
    manifest = read_manifest(bad)
    scale = next(s for s in manifest["stages"] if s["name"] == "scale")
    n = manifest["dataset"]["rows"]
    scale["params"]["std"] = [s * math.sqrt((n - 1) / n) for s in scale["params"]["std"]]
    write_manifest(bad, manifest)
    page = tmp_path / "report.html"
    out = subprocess.run([str(BIN / "skewless"), "--landing", wh.paths.landing, "--warehouse", wh.paths.warehouse,
                          "skew-test", "--model", str(bad), "--examples", "300", "--report", str(page)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["stage"] == "scale" and not result["passed"] and "scaled[amount]" in result["differing"]
    assert "diverges first at stage scale" in out.stderr and "Using Spark's default" not in out.stderr
    rows = read_table(spark, wh.paths.warehouse, "skew_tests").orderBy("tested_at").collect()
    assert [(r.passed, r.stage, r.examples) for r in rows] == [(True, None, 200), (False, "scale", 300)]
    dom = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert "FAILED: the deploy is blocked" in dom.stdout, dom.stderr[-2000:]
    assert dom.stdout.count("<tr>") > 10 and "scaled[amount]" in dom.stdout


CUSTOM_SPEC = """
name: fraud_small
version: "0.1"
features: {amount: numeric, txn_count_24h: numeric, country: categorical}
stages:
  - {name: impute, kind: imputer, inputs: [amount, txn_count_24h]}
  - name: per_txn
    kind: custom
    inputs: [amount, txn_count_24h]
    outputs: [amount_per_txn]
    serving: tests.custom_stage:per_txn_serving
    spark: tests.custom_stage:per_txn_spark
    options: {smoothing: "1"}
  - {name: onehot, kind: one_hot, inputs: [country], drop_last: false}
  - {name: assemble, kind: assemble, inputs: [amount, amount_per_txn, country], output: features}
scorer: {input: features, reg_param: 0.1}
"""


def test_a_custom_stage_plugs_into_both_sides(spark: SparkSession, built: tuple[Config, Path], tmp_path: Path) -> None:
    wh, _ = built
    (tmp_path / "small-pipeline.yaml").write_text(CUSTOM_SPEC)
    pkg = tmp_path / "small"
    fit(spark, wh, load_spec(tmp_path / "small-pipeline.yaml"), "fraud_daily@latest", pkg, replace=False,
        progress=Progress("test"))
    with pytest.raises(UsageError, match="exists"):
        fit(spark, wh, load_spec(tmp_path / "small-pipeline.yaml"), "fraud_daily@1", pkg, replace=False,
            progress=Progress("test"))
    table, _ = collect_examples(spark, wh, SkewOptions(str(pkg), examples=400), read_manifest(pkg))
    cols = columns_of(table)
    assert _evaluate(pkg, cols)["passed"]

    def unsmoothed(stage: Any, c: Any) -> dict[str, np.ndarray]:
        from .custom_stage import per_txn_serving_unsmoothed
        return {stage.outputs[0].column: per_txn_serving_unsmoothed(
            {n: c[i] for n, i in zip(stage.input_names, stage.inputs, strict=True)}, {})["amount_per_txn"]}

    loc = _evaluate(pkg, cols, {"per_txn": unsmoothed})["localization"]
    assert loc["stage"] == "per_txn" and [d["slot"] for d in loc["differing"]] == ["amount_per_txn"]
