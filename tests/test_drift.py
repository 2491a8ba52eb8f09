"""Drift: the metrics cross-checked against scipy on the same rows, the job on generated traffic whose
device features shift (caught; untouched features and the hour before stay ok), history, the cached
reference, the webhook against a local server, and the page in a real headless browser."""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.errors import ConfigError
from skewless.core.progress import Progress
from skewless.devtools.generator import GenSpec, generate
from skewless.drift import alerts
from skewless.drift import job as drift_run
from skewless.drift import metrics as M
from skewless.drift.evaluate import sides
from skewless.drift.profile import FeatureSet, cell_counts, distinct_cuts, features_frame, quantile_cuts
from skewless.drift.settings import load_monitoring
from skewless.ingest import job as compact_run

from .conftest import KEY, ROOT

START = datetime(2026, 11, 25, 0, tzinfo=UTC)
SHIFT = START + timedelta(hours=2)  # hour 00 is the reference, 01 is before the shift, 02 after it


# ---- the metrics against scipy, on rows that went through the Spark profile -------------------------

def _profile(spark: SparkSession, ref: dict[str, list[Any]], cur: dict[str, list[Any]], fs: FeatureSet,
             grid: int = 100) -> tuple[dict, dict, list[list[float]]]:
    def frame(cols: dict[str, list[Any]]) -> Any:
        rows = list(zip(*cols.values(), strict=True))
        types = {"feature_status": "map<string,string>", **{k: "double" for k in fs.numeric}}
        schema = ", ".join(f"{k} {types.get(k, 'string')}" for k in cols)
        return features_frame(spark.createDataFrame(rows, schema), fs)

    q = quantile_cuts(frame(ref), fs, grid, 10_000).first()
    assert q is not None
    cuts = [distinct_cuts(q[f"_n{i}"]) for i in range(len(fs.numeric))]

    def counted(cols: dict[str, list[Any]]) -> dict:
        return sides([(r.f, r.k, r.s, r.n, r.w) for r in cell_counts(frame(cols), fs, cuts).collect()], fs, cuts)

    return counted(ref), counted(cur), cuts


def test_ks_js_and_psi_agree_with_scipy_and_numpy_on_the_same_rows(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    n, m = 3000, 2500
    ref = {"x": rng.normal(0, 1, n).round(6).tolist(), "k": rng.integers(0, 10, n).astype(float).tolist(),
           "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()}
    cur = {"x": rng.normal(0.15, 1.1, m).round(6).tolist(), "k": rng.integers(1, 10, m).astype(float).tolist(),
           "c": rng.choice(["a", "b", "c", "d", "e"], m, p=[0.3, 0.3, 0.2, 0.1, 0.1]).tolist()}
    ref["x"][:40] = [None] * 40
    # The first 40 timed out; 7 more were defaults; a status of a feature nobody monitors is dropped.
    ref["feature_status"] = [{"x": "timeout"}] * 40 + [{"x": "default", "other": "error"}] * 7 + [None] * (n - 47)
    fs = FeatureSet(("x", "k"), ("c",))
    r, c, cuts = _profile(spark, ref, cur, fs)
    # Continuous x: the grid's D is a lower bound and D + bound an upper bound of scipy's exact D.
    xr = np.array([v for v in ref["x"] if v is not None])
    d_exact = ks_2samp(xr, np.array(cur["x"])).statistic
    d, bound = M.ks(r["x"].cells, c["x"].cells)
    assert d <= d_exact + 1e-12 and d_exact <= d + bound and bound < 0.03
    # Discrete k (every value is a cut): exact, and the p-value matches scipy's asymptotic one.
    scipy_k = ks_2samp(ref["k"], cur["k"], method="asymp")
    dk, bound_k = M.ks(r["k"].cells, c["k"].cells)
    assert bound_k == 0 and dk == pytest.approx(scipy_k.statistic, abs=1e-12)
    assert M.ks_pvalue(dk, n, m) == pytest.approx(scipy_k.pvalue, rel=0.05, abs=1e-6)
    # Jensen-Shannon on the category counts (e only in the current slice) against scipy's, base 2.
    cats = ["a", "b", "c", "d", "e"]
    p = M.pool(dict(r["c"].categories), dict(c["c"].categories), rare_share=0.0, max_categories=50)
    want = jensenshannon([ref["c"].count(k) for k in cats], [cur["c"].count(k) for k in cats], base=2)
    assert M.js_distance(p.ref, p.cur) == pytest.approx(want, abs=1e-12)
    assert p.unseen_share == pytest.approx(cur["c"].count("e") / m) and p.unseen_count == 1
    # PSI over the cuts the job chose, recomputed with numpy from the raw values (left-closed bins).
    psi_cuts = distinct_cuts(cuts[0][9::10])
    def hist(v: Any) -> Any:
        return np.bincount(np.searchsorted(psi_cuts, v, side="right"), minlength=len(psi_cuts) + 1)

    rs, cs = hist(xr) / len(xr), hist(np.array(cur["x"])) / m
    want_psi = float(np.sum((np.maximum(cs, 1e-4) - np.maximum(rs, 1e-4)) * np.log(np.maximum(cs, 1e-4)
                                                                                   / np.maximum(rs, 1e-4))))
    got = M.psi(M.psi_bins(r["x"].cells, cuts[0], psi_cuts), M.psi_bins(c["x"].cells, cuts[0], psi_cuts), 1e-4)
    assert got == pytest.approx(want_psi, abs=1e-12)
    assert (r["x"].nulls, r["x"].rows, c["x"].nulls) == (40, n, 0)
    assert r["x"].statuses == {"timeout": 40, "default": 7} and not r["k"].statuses and not c["x"].statuses


def test_cell_counts_are_exact_per_cell_segment_and_status_and_cap_the_categories(spark: SparkSession) -> None:
    """The JVM aggregate against a Python count of the same rows: points, -0.0, infinities, nulls and
    NaN (missing), categories past the cap summed under TAIL, statuses, two segments."""
    fs = FeatureSet(("x",), ("c",))
    cuts = [[-1.5, 0.0, 2.0, float("inf")]]
    xs = [-3.0, -1.5, -0.0, 0.0, 0.5, 2.0, 7.0, float("inf"), None, float("nan"), 2.0, -1.5]
    cs = ["a", "a", "a", "b", "b", "c", "d", None, "e", "a", "b", "a"]
    status = [{"x": "timeout"}, None, {"x": "default", "c": None}, {}] * 3
    seg = ["s1", "s2"] * 6
    df = spark.createDataFrame(list(zip(seg, xs, cs, status, strict=True)),
                               "seg string, x double, c string, feature_status map<string,string>")
    got = sorted((r[0], r.f, r.k, r.s, r.n, r.w) for r in
                 cell_counts(features_frame(df, fs, F.col("seg")), fs, cuts, cap=2).collect())

    def key(v: float | None) -> int:
        if v is None or v != v:
            return 0
        at = sum(c <= v for c in cuts[0])
        return 2 * at if at and cuts[0][at - 1] == v else 2 * at + 1

    want: dict[tuple[str, int, int, str | None], int] = {}
    for g in ("s1", "s2"):
        rows = [i for i, s in enumerate(seg) if s == g]
        for i in rows:
            want[(g, 0, key(xs[i]), None)] = want.get((g, 0, key(xs[i]), None), 0) + 1
            for f, st_ in (status[i] or {}).items():
                if st_ is not None:
                    k = (g, -1, -1, f"{f}\x00{st_}")
                    want[k] = want.get(k, 0) + 1
        values = [cs[i] for i in rows]
        ranked = sorted({v for v in values if v}, key=lambda v: (-values.count(v), v))
        for rank, v in enumerate(ranked):
            k = (g, 1, 1, v if rank < 2 else "__tail__")
            want[k] = want.get(k, 0) + values.count(v)
        if values.count(None):
            want[(g, 1, 0, None)] = values.count(None)
        # Key -2: each feature's non-missing rows (unweighted, their squared weights are as many).
        want[(g, 0, -2, None)] = sum(key(xs[i]) != 0 for i in rows)
        want[(g, 1, -2, None)] = len(values) - values.count(None)
    assert got == sorted((*k, n, float(n)) for k, n in want.items())


def test_weighted_rows_give_numpy_weighted_shares_ks_and_kish_sizes(spark: SparkSession) -> None:
    """Weighted (a dataset's 1 / sample_rate): every cell's weight sum, the shares PSI and KS read, the
    null and status shares and the p-value's effective size, against numpy on the same rows."""
    rng = np.random.default_rng(11)
    n = 4000
    x = rng.normal(0, 1, n).round(3)
    w = rng.choice([1.0, 10.0, 100.0], n)  # 100%, 10% and 1% sampled rows
    x_none: list[float | None] = x.tolist()
    for i in range(0, n, 50):
        x_none[i] = None
    c = rng.choice(["a", "b", "c"], n).tolist()
    status = [{"x": "timeout"} if v is None else None for v in x_none]
    df = spark.createDataFrame(list(zip(x_none, c, status, w.tolist(), strict=True)),
                               "x double, c string, feature_status map<string,string>, weight double")
    fs = FeatureSet(("x",), ("c",))
    cuts = [[-1.0, 0.0, 0.5, 1.0]]
    rows = cell_counts(features_frame(df, fs, weight=F.col("weight")), fs, cuts, weighted=True).collect()
    side = sides([(r.f, r.k, r.s, r.n, r.w) for r in rows], fs, cuts)
    present = np.array([v is not None for v in x_none])
    xp, wp = x[present], w[present]
    keys = np.array([2 * int(np.searchsorted(cuts[0], v, side="right")) - (1 if v in cuts[0] else 0) + 1
                     for v in xp])  # the cell keys again (1-based cells: key - 1 is the position)
    want_cells = np.bincount(keys - 1, weights=wp, minlength=2 * len(cuts[0]) + 1)
    assert side["x"].cells is not None
    np.testing.assert_allclose(side["x"].cells, want_cells, rtol=1e-12)
    assert (side["x"].rows, side["x"].nulls) == (n, n - int(present.sum()))  # counts stay counts
    assert side["x"].null_weight == pytest.approx(w[~present].sum(), rel=1e-12)
    assert side["x"].statuses == {"timeout": pytest.approx(w[~present].sum(), rel=1e-12)}
    assert side["x"].effective == pytest.approx(wp.sum() ** 2 / (wp ** 2).sum(), rel=1e-12)
    assert side["c"].categories == {k: pytest.approx(w[np.array(c) == k].sum(), rel=1e-12) for k in "abc"}
    # KS between the weighted side and the same rows unweighted: numpy's weighted ECDFs at the cuts.
    flat = sides([(r.f, r.k, r.s, r.n, r.w) for r in cell_counts(features_frame(df, fs), fs, cuts).collect()],
                 fs, cuts)
    assert flat["x"].cells is not None and flat["x"].effective == present.sum()
    ecdf = [(wp[below].sum() / wp.sum(), below.mean()) for g in cuts[0] for below in (xp < g, xp <= g)]
    d, _ = M.ks(side["x"].cells, flat["x"].cells)
    assert d == pytest.approx(max(abs(a - b) for a, b in ecdf), abs=1e-12)
    # A weight that is not a finite non-negative number is refused, never counted as something else.
    bad = df.withColumn("weight", F.when(F.col("c") == "a", F.lit(None)).otherwise(F.col("weight")))
    with pytest.raises(Exception, match="weight must be finite and >= 0"):
        cell_counts(features_frame(bad, fs, weight=F.col("weight")), fs, cuts, weighted=True).collect()


def test_cuts_from_a_sample_keep_the_row_count_and_land_near_the_quantiles(spark: SparkSession) -> None:
    fs = FeatureSet(("x",), ())
    frame = features_frame(spark.range(20_000).select((F.col("id") / 20_000).alias("x")), fs)
    q = quantile_cuts(frame, fs, 10, 10_000, sample=2_000).first()
    assert q is not None and q["_rows"] == 20_000
    assert max(abs(v - j / 10) for j, v in enumerate(q["_n0"], start=1)) < 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12), st.lists(st.integers(0, 50), min_size=2, max_size=12))
def test_metric_properties(a: list[int], b: list[int]) -> None:
    size = min(len(a), len(b))
    p, q = np.array(a[:size], dtype=float), np.array(b[:size], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return
    assert M.psi(p, p, 1e-4) == pytest.approx(0, abs=1e-12) and M.psi(p, q, 1e-4) >= -1e-12
    js = M.js_distance(p, q)
    assert 0 <= js <= 1 + 1e-12 and js == pytest.approx(M.js_distance(q, p), abs=1e-12)
    assert js == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)
    cells = np.concatenate([p, q])
    d, bound = M.ks(cells, cells[::-1])
    assert 0 <= d <= 1 and 0 <= bound <= 1


def test_pooling_keeps_frequent_categories_and_conserves_counts() -> None:
    ref: dict[str, float] = {"a": 900, "b": 96, "r1": 3, "r2": 1}
    cur: dict[str, float] = {"a": 400, "b": 50, "r1": 2, "new": 48}
    p = M.pool(ref, cur, rare_share=0.005, max_categories=50)
    assert p.categories == ("a", "b", M.OTHER)
    assert p.ref.tolist() == [900, 96, 4] and p.cur.tolist() == [400, 50, 50]
    assert p.unseen_share == pytest.approx(48 / 500) and p.unseen_count == 1


def test_monitoring_config_errors_name_their_key(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("defaults:\n  thresholds:\n    psi: {warn: 0.1, alert: 0.2, critical: 0.5}\n")
    with pytest.raises(ConfigError, match=r"defaults\.thresholds\.psi\.critical: unknown key"):
        load_monitoring(bad)
    bad.write_text("models:\n  fraud:\n    features:\n      amount: {ks: {warn: 0.3, alert: 0.2}}\n")
    with pytest.raises(ConfigError, match=r"models\.fraud\.features\.amount\.ks: warn 0.3 is above alert 0.2"):
        load_monitoring(bad)
    bad.write_text("defaults: {bins: 10, ks_grid: 25}\n")
    with pytest.raises(ConfigError, match=r"defaults\.ks_grid: must be a multiple of bins"):
        load_monitoring(bad)
    mon = load_monitoring(ROOT / "conf" / "monitoring.yaml")
    assert mon.thresholds("fraud", "device_type").psi.alert == 0.15
    assert mon.thresholds("fraud", "amount").psi.alert == 0.2


# ---- the webhook against a local server -----------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    script: list[int] = []
    received: list[dict[str, Any]] = []
    delay_s = 0.0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        code = self.script.pop(0) if self.script else 200
        if code == 200:
            self.received.append(json.loads(body))
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"script": [], "received": [], "delay_s": 0.0})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/drift", handler
    server.shutdown()


def test_webhook_retries_then_delivers_and_a_dead_one_never_raises(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    handler.script[:] = [500, 503]
    got = alerts.post(url, {"status": "alert"}, timeout_s=2, retries=3, sleep=lambda s: None)
    assert got == {"delivered": True, "attempts": 3, "error": None} and handler.received == [{"status": "alert"}]
    handler.script[:] = [500] * 5
    got = alerts.post(url, {"status": "alert"}, timeout_s=2, retries=2, sleep=lambda s: None)
    assert got == {"delivered": False, "attempts": 3, "error": "HTTP 500"}
    handler.delay_s = 1.0
    got = alerts.post(url, {"x": 1}, timeout_s=0.2, retries=1, sleep=lambda s: None)
    assert not got["delivered"] and "timed out" in str(got["error"])
    dead = alerts.post("http://127.0.0.1:9/", {"x": 1}, timeout_s=0.5, retries=1, sleep=lambda s: None)
    assert not dead["delivered"] and dead["attempts"] == 2


# ---- the job on generated traffic with a shift -----------------------------------------------------

@pytest.fixture(scope="module")
def shifted(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("drift")
    wh = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    generate(GenSpec(landing=wh.paths.landing, start=START, hours=3, rps=6, seed=7, drift_from=SHIFT), progress=False)
    for h in range(3):
        compact_run.compact_hour(spark, wh, START + timedelta(hours=h), Progress("test"), KEY)
    return wh


def _drift(spark: SparkSession, wh: Config, current: str, capsys: pytest.CaptureFixture[str], tmp: Path,
           **extra: Any) -> tuple[int, dict[str, Any]]:
    args = argparse.Namespace(model="fraud", reference=None, package=None, by=None, monitoring=None,
                              report=str(tmp / f"{current}.html"), refresh_reference=False,
                              reference_hours=drift_run.parse_slice("2026-11-25T00"),
                              current=drift_run.parse_slice(current))
    vars(args).update(extra)
    capsys.readouterr()
    code = drift_run.run(spark, wh, args)
    out = capsys.readouterr()
    return code, {**json.loads(out.out.strip().splitlines()[-1]), "_stderr": out.err}


def test_the_shift_alerts_on_device_features_only_and_the_hour_before_is_ok(
        spark: SparkSession, shifted: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, before = _drift(spark, shifted, "2026-11-25T01", capsys, tmp_path)
    assert code == 0 and before["status"] == "ok", before
    assert before["ok"] == before["features"] == 19  # hour_of_day is excluded: a clock
    code, after = _drift(spark, shifted, "2026-11-25T02", capsys, tmp_path, by="model.version")
    assert code == 1 and after["status"] == "alert"
    assert after["alert"] == ["device_fingerprint_score", "device_type"] and after["warn"] == []
    assert set(after["alerting"]["all"]["device_type"]) >= {"js", "psi"}
    assert set(after["alerting"]["all"]["device_fingerprint_score"]) >= {"ks", "psi"}
    assert after["segments"] == ["all", "model.version=v1", "model.version=v2"]
    assert "cached histograms" in after["_stderr"]  # the reference was computed once, by the first check
    refs = read_table(spark, shifted.paths.warehouse, "drift_references")
    assert refs.select("ref_key").distinct().count() == 1 and refs.count() == 19
    # History: both checks, every segment, queryable; the page renders its table in Chromium.
    hist = read_table(spark, shifted.paths.warehouse, "drift_metrics")
    per_check = {r["current_slice"]: r["n"] for r in hist.groupBy("current_slice").agg(F.countDistinct(
        "segment", "feature").alias("n")).collect()}
    assert per_check == {"2026-11-25T01": 19, "2026-11-25T02": 57}
    dom = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom",
                          Path(after["report_path"]).as_uri()], capture_output=True, text=True, timeout=120)
    assert "ALERT: 2 alerting" in dom.stdout, dom.stderr[-2000:]
    assert dom.stdout.count('<tr class="alert">') == 6 and dom.stdout.count("<svg") >= 6


def test_a_rerun_replaces_its_check_and_thin_data_is_not_an_alarm(
        spark: SparkSession, shifted: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _drift(spark, shifted, "2026-11-25T01", capsys, tmp_path)
    path = shifted.paths.warehouse + "/drift_metrics"
    before = spark.read.format("delta").load(path).where("current_slice = '2026-11-25T01'")
    first = sorted((r.segment, r.feature, r.metric, r.value) for r in before.collect())
    _drift(spark, shifted, "2026-11-25T01", capsys, tmp_path)
    again = spark.read.format("delta").load(path).where("current_slice = '2026-11-25T01'")
    assert sorted((r.segment, r.feature, r.metric, r.value) for r in again.collect()) == first
    assert again.select("run_id").distinct().count() == 1  # one run's rows, not two
    thin = tmp_path / "thin.yaml"
    thin.write_text((ROOT / "conf" / "monitoring.yaml").read_text().replace("min_rows: 500", "min_rows: 100000"))
    code, out = _drift(spark, shifted, "2026-11-25T02", capsys, tmp_path, monitoring=str(thin))
    assert code == 0 and out["insufficient_data"] and not out["alert"]
