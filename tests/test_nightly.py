"""`skewless nightly`: one night run in this process on a generated day, its rerun, a late upload, a
failed step and its resume, and the lease (in-process and from the CLI, as a second operator would)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import current_version, read_table
from skewless.core.errors import LeaseHeldError
from skewless.devtools.generator import GenSpec, generate
from skewless.labels import view as examples_view
from skewless.nightly import job as nightly
from skewless.nightly import steps
from skewless.nightly.lease import Lease
from skewless.nightly.plan import STEPS

from .conftest import HOUR, ROOT, record, write_hour

BIN = Path(sys.executable).parent
DAY = "2026-11-25"


def _night(spark: SparkSession, cfg: Config, day: str = DAY, **kw: Any) -> tuple[int, dict[str, Any]]:
    args = argparse.Namespace(date=day, steps=kw.get("steps"), force=kw.get("force"), wait_minutes=None,
                              exit_zero_on_checks=kw.get("exit_zero_on_checks", False))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = nightly.run(spark, cfg, args)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, lines  # stdout is the summary alone; the JVM's console lines (VACUUM's
    jvm = spark.sparkContext._jvm  # "Deleted N files ...") are sent to stderr when the session starts
    assert jvm is not None and jvm.java.lang.System.out.equals(jvm.java.lang.System.err)
    return code, json.loads(lines[0])


@pytest.fixture(scope="module")
def night(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("nightly")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "wh"))
    generated = generate(GenSpec(landing=cfg.paths.landing, start=HOUR, hours=2, rps=1, seed=11, hosts=2),
                         progress=False)
    code, out = _night(spark, cfg)
    return {"cfg": cfg, "code": code, "out": out, "generated": generated, "root": root}


def test_a_night_runs_every_step_and_records_it(spark: SparkSession, night: dict[str, Any], tmp_path: Path) -> None:
    cfg, out = night["cfg"], night["out"]
    steps_ = out["steps"]
    cut = bool(night["generated"].get("truncated_files"))
    assert sorted(steps_) == sorted(STEPS)  # the summary's keys are sorted; `position` keeps the order
    assert steps_["compact"]["status"] == ("check_failed" if cut else "succeeded")
    assert steps_["compact"]["hours"] == 2 and [r["why"] for r in steps_["compact"]["runs"]] == ["new", "new"]
    c = steps_["compact"]
    assert c["records_read"] == c["loaded"] + c["duplicates"] + c["quarantined"] == c["records"] > 0
    assert read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS).count() == c["loaded"]
    # Each loaded label event is counted once: joinable, before its prediction, or orphaned.
    lab = steps_["labels"]
    assert lab["status"] == "succeeded" and lab["joinable"] + lab["before_prediction"] + lab["orphaned"] == lab[
        "loaded"] == read_table(spark, cfg.paths.warehouse, N.LABELS).count()
    assert examples_view.labeled_examples(spark, cfg).count() == c["loaded"]
    assert steps_["purge"]["status"] == "succeeded" and steps_["purge"]["before"] == "2026-10-27"
    # Wednesday: the weekly (Monday) snapshot is not due; drift has no published reference yet.
    assert steps_["snapshots"]["not_due"] == ["fraud_daily"] and steps_["snapshots"]["created"] == {}
    assert steps_["drift"]["status"] == "check_failed"
    assert steps_["drift"]["checks"]["fraud"]["status"] == "no_reference"
    assert night["code"] == 1 == out["exit_code"] and out["status"] == "check_failed"
    rows = read_table(spark, cfg.paths.warehouse, N.NIGHTLY_STEPS).where(F.col(N.RUN_ID) == out["run_id"])
    assert sorted((r["position"], r["step"], r["status"]) for r in rows.collect()) == [
        (i, s, steps_[s]["status"]) for i, s in enumerate(STEPS, 1)]
    run = read_table(spark, cfg.paths.warehouse, N.NIGHTLY_RUNS).where(F.col(N.RUN_ID) == out["run_id"]).collect()
    assert [(r["status"], r["exit_code"]) for r in run] == [("check_failed", 1)]
    assert json.loads(run[0]["steps"]) == json.loads(json.dumps(steps_))
    # The morning page, as a browser renders it: the verdict and one row per compacted hour.
    dom = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom", Path(out["report"]).as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'id="verdict">check_failed (exit 1)' in dom.stdout, dom.stderr[-2000:]
    assert "2026-11-25T13" in dom.stdout and "2026-11-25T14" in dom.stdout and "no_reference" in dom.stdout
    assert "<th>label_state</th>" in dom.stdout and "<td>pending</td>" in dom.stdout  # the day's label states
    index = (Path(out["report"]).parent / "index.html").read_text()
    assert f'href="{DAY}.html"' in index


def test_a_rerun_skips_what_completed_and_writes_nothing(spark: SparkSession, night: dict[str, Any]) -> None:
    cfg = night["cfg"]
    tables = (N.FEATURE_LOGS, N.LABELS, N.INGESTION_AUDIT)
    before = {t: current_version(spark, f"{cfg.paths.warehouse}/{t}") for t in tables}
    code, out = _night(spark, cfg)
    assert {s: r["status"] for s, r in out["steps"].items()} == dict.fromkeys(out["steps"], "skipped")
    assert code == 1 and out["steps"]["drift"]["previous"] == "check_failed"  # the day's failing check stays
    code, out = _night(spark, cfg, steps=("drift",), exit_zero_on_checks=True)  # a scheduler's step task
    assert code == 0 and out["exit_code"] == 1 and list(out["steps"]) == ["drift"]
    assert {t: current_version(spark, f"{cfg.paths.warehouse}/{t}") for t in tables} == before


def test_a_late_upload_is_compacted_the_next_night(spark: SparkSession, night: dict[str, Any]) -> None:
    cfg = night["cfg"]
    loaded = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS).count()
    write_hour(cfg.paths.landing, HOUR, "late-host-00001",
               [record(f"late-{i}", "2026-11-25T13:20:00.000Z") for i in range(5)])
    code, out = _night(spark, cfg, "2026-11-26", steps=("compact",))
    runs = out["steps"]["compact"]["runs"]
    assert [(r["hour"], r["why"]) for r in runs] == [("2026-11-25T13", "late_upload")]  # not 14: no new file
    assert out["steps"]["compact"]["hours_already_compacted"] == 1 and list(out["steps"]) == ["compact"]
    assert read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS).count() == loaded + 5
    assert code in (0, 1)


def test_a_failed_step_stops_the_night_and_the_rerun_resumes_there(
        spark: SparkSession, night: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = night["cfg"].with_paths(warehouse=str(night["root"] / "wh-failed"))
    shutil.copytree(night["cfg"].paths.warehouse, cfg.paths.warehouse)

    def broken(n: steps.Night) -> steps.Outcome:
        raise RuntimeError("label store unreachable")
    monkeypatch.setitem(steps.STEP_FUNCTIONS, "labels", broken)
    code, out = _night(spark, cfg, force=["labels"])
    assert code == 3 and out["failed_step"] == "labels" and "label store unreachable" in out["error"]
    assert [out["steps"][s]["status"] for s in ("compact", "labels", "purge", "drift")] == [
        "skipped", "failed", "not_run", "not_run"]
    monkeypatch.undo()
    code, out = _night(spark, cfg)  # resumes at labels; purge completed before, so it is skipped
    assert [out["steps"][s]["status"] for s in ("compact", "labels", "purge")] == ["skipped", "succeeded", "skipped"]
    assert code == 1 and out["steps"]["drift"]["status"] == "skipped"


def test_the_lease_admits_one_run(spark: SparkSession, night: dict[str, Any]) -> None:
    wh = str(night["root"] / "wh-lease")
    first = Lease(spark, wh, "run-a", timedelta(minutes=30))
    first.acquire(0)
    second = Lease(spark, wh, "run-b", timedelta(minutes=30))
    with pytest.raises(LeaseHeldError, match=r"holds the lease on .*wh-lease: .*\(run-a\), until "):
        second.acquire(0.5, poll_s=0.2)
    held = second.current()
    assert held is not None and held.token == first.token  # the refusal changed nothing
    first.release()
    second.acquire(0)
    assert (second.current() or held).token == second.token
    # Racing takers on a free lease: Delta's commit conflict lets exactly one in.
    second.release()
    racers = [Lease(spark, wh, f"racer-{i}", timedelta(minutes=30)) for i in range(3)]
    won: list[str] = []

    def take(lease: Lease) -> None:
        with contextlib.suppress(LeaseHeldError):
            lease.acquire(0)
            won.append(lease.token)
    threads = [threading.Thread(target=take, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and (racers[0].current() or held).token == won[0]


def test_an_expired_or_dead_holders_lease_is_taken_over(spark: SparkSession, night: dict[str, Any]) -> None:
    wh = str(night["root"] / "wh-expired")
    crashed = Lease(spark, wh, "crashed", timedelta(minutes=30))
    crashed.pid = 2 ** 22 + 12345  # a process that does not exist on this host: its lease is stale at once
    crashed.acquire(0)
    heir = Lease(spark, wh, "heir", timedelta(minutes=30))
    heir.acquire(0)
    assert (heir.current() or pytest.fail()).token == heir.token
    elsewhere = Lease(spark, wh, "other-host", timedelta(seconds=1))
    heir.release()
    elsewhere.host = "another-host"
    elsewhere.acquire(0)  # expires in a second; it is on another host, so only its expiry frees it
    late = Lease(spark, wh, "late", timedelta(minutes=30))
    late.acquire(30, poll_s=1)
    assert (late.current() or pytest.fail()).token == late.token


def test_a_second_operator_is_told_who_holds_the_warehouse(spark: SparkSession, night: dict[str, Any]) -> None:
    wh = str(night["root"] / "wh-busy")
    holder = Lease(spark, wh, "nightly-20261125-ops", timedelta(minutes=30))
    holder.host = "scheduler-1"
    holder.acquire(0)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run([str(BIN / "skewless"), "--landing", night["cfg"].paths.landing, "--warehouse", wh,
                           "nightly", "--date", DAY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "another nightly run holds the lease" in proc.stderr and "(nightly-20261125-ops)" in proc.stderr
    assert not (Path(wh) / N.FEATURE_LOGS).exists() and not (Path(wh) / N.NIGHTLY_STEPS).exists()  # nothing ran
