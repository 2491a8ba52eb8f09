"""The CLI, run as a user runs it: in subprocesses. (spark-submit of the job files: `test_cluster`;
a refused query's exit code and message: `test_sql_guard`.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import ROOT

# Subprocesses only: they run beside the in-process session's tests (tests/beside.py).
pytestmark = pytest.mark.beside

BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path = ROOT, timeout: int = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _run_all(*argvs: list[str], env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
    """`skewless ARGV` for each argv, all at once; results in argv order."""
    with ThreadPoolExecutor(len(argvs)) as pool:
        return list(pool.map(lambda argv: _run(str(BIN / "skewless"), *argv, env=env), argvs))


def test_help_explains_commands_and_exit_codes() -> None:
    top = _run(str(BIN / "skewless"), "--help")
    assert top.returncode == 0
    for word in ("generate", "compact", "sql", "exit codes"):
        assert word in top.stdout
    sub = _run(str(BIN / "skewless"), "compact", "--help")
    assert sub.returncode == 0 and "--hour" in sub.stdout and "--date" in sub.stdout
    # forget's run (a minute of Delta work even on a tiny warehouse) is test_forget's, in-process.
    sub = _run(str(BIN / "skewless"), "forget", "--help")
    assert sub.returncode == 0 and "--entity" in sub.stdout and "--rewrite-landing" in sub.stdout


def test_bad_config_fails_before_any_write(tmp_path: Path) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text("compaction:\n  late_tolerance_hourz: 3\n")
    out = _run(str(BIN / "skewless"), "--config", str(conf), "--warehouse", str(tmp_path / "wh"),
               "compact", "--hour", "2026-11-25T13")
    assert out.returncode == 2
    assert "compaction.late_tolerance_hourz: unknown key" in out.stderr
    assert not (tmp_path / "wh").exists()


def test_the_nightly_checks_every_config_it_reads_before_the_jvm(tmp_path: Path) -> None:
    """A dataset's schedule, its suite, monitoring.yaml: read by the nightly's later steps, checked first."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    shutil.copytree(ROOT / "expectations", tmp_path / "expectations")
    ds = conf / "datasets" / "fraud_daily.yaml"
    no_jvm = {"JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(BIN)}
    argv = [str(BIN / "skewless"), "--config", str(conf / "warehouse.yaml"), "--warehouse", str(tmp_path / "wh"),
            "--landing", str(tmp_path / "landing"), "nightly", "--date", "2026-11-25"]
    ds.write_text(ds.read_text().replace("schedule: weekly:monday", "schedule: weekly:funday"))
    bad_schedule = _run(*argv, env=no_jvm)
    ds.write_text(ds.read_text().replace("weekly:funday", "daily"))
    mon = conf / "monitoring.yaml"
    mon.write_text(mon.read_text().replace("  fraud:\n", "  fruad:\n"))
    bad_model = _run(*argv, env=no_jvm)
    assert bad_schedule.returncode == 2 and "fraud_daily.yaml: schedule: must be daily, none or weekly:<weekday>" \
        in bad_schedule.stderr, bad_schedule.stderr
    assert bad_model.returncode == 2 and "models.fruad: not declared in models/" in bad_model.stderr, bad_model.stderr
    assert not (tmp_path / "wh").exists()


def test_usage_error_exit_code(tmp_path: Path) -> None:
    """A bad hour or date is refused when the command line is parsed: exit 2 with the value named,
    before a JVM starts or anything (a key file, a table) is written under the warehouse."""
    wh = ["--warehouse", str(tmp_path / "wh")]
    cases = {
        "not an hour: 'yesterday'": ["--landing", str(tmp_path), "generate", "--start", "yesterday"],
        "--low-risk-rate must be in (0, --sample-rate 0.1], got 0.5":
            ["--landing", str(tmp_path / "gen"), "generate", "--start", "2026-11-25T00", "--low-risk-rate", "0.5"],
        "not a date: '25/11/2026'": [*wh, "compact", "--date", "25/11/2026"],
        "not an hour: '2026-13-45'": [*wh, "compact", "--hour", "2026-13-45"],
        "not a date: '2026-02-30'": [*wh, "labels", "--date", "2026-02-30"],
        "not a date: 'today'": [*wh, "labels", "--through", "today"],
        "not a date: '2026-11'": [*wh, "purge", "--before", "2026-11"],
        "not a date: '11/25'": [*wh, "snapshot", "create", "fraud_daily", "--as-of", "11/25"],
        "the last hour is before the first": [*wh, "drift", "--model", "fraud", "--current",
                                              "2026-11-25T05..2026-11-25T01"],
        "not a date: '2026-11-31'": [*wh, "nightly", "--date", "2026-11-31"],
        "unknown step(s) ['compaction']": [*wh, "nightly", "--date", "2026-11-25", "--steps", "compaction,labels"],
        "--hours '2026-11-25T05..2026-11-25T01': the last hour is before the first":
            [*wh, "skew-test", "--model", str(tmp_path / "pkg"), "--hours", "2026-11-25T05..2026-11-25T01"],
    }
    # No Java to start: a command that reached Spark before checking its arguments fails otherwise.
    no_jvm = {"JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(BIN)}
    for (message, argv), out in zip(cases.items(), _run_all(*cases.values(), env=no_jvm), strict=True):
        assert out.returncode == 2, (argv, out.stderr)
        assert message in out.stderr, (argv, out.stderr)
    assert not (tmp_path / "wh").exists() and not (tmp_path / "gen").exists()


def test_generate_compact_sql_end_to_end(tmp_path: Path) -> None:
    roots = ["--landing", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh")]
    # Format v2 as a user asks for it: Avro files, and v1 lines for the records Avro cannot hold.
    gen = _run(str(BIN / "skewless"), *roots, "generate", "--start", "2026-11-25T13", "--hours", "1",
               "--rps", "4", "--hosts", "2", "--seed", "3", "--format", "avro", "--codec", "zstandard")
    assert gen.returncode == 0, gen.stderr
    generated = json.loads(gen.stdout.strip().splitlines()[-1])

    comp = _run(str(BIN / "skewless"), *roots, "compact", "--hour", "2026-11-25T13")
    summary = json.loads(comp.stdout.strip().splitlines()[-1])
    # Exit 1 exactly when the generator cut an upload short (a crashed host): the rest loads.
    assert comp.returncode == (1 if generated.get("truncated_files") else 0), comp.stderr[-3000:]
    assert summary["unreadable_files"] == generated.get("truncated_files", 0)
    if not generated.get("truncated_files"):
        assert summary["records_read"] == generated["records"] + generated["retries"] + generated["broken"]
    assert summary["records_read"] == summary["loaded"] + summary["duplicates"] + summary["quarantined"]
    assert "hour 2026-11-25T13" in comp.stderr and " Avro)" in comp.stderr and "(0 Avro)" not in comp.stderr

    # Independent commands at once, as users and schedulers run them (each its own JVM): a reader of
    # feature_logs and the labels run, which writes other tables.
    desc, listed_tables, lab = _run_all(
        [*roots, "tables", "describe", "feature_logs", "--format", "json"], [*roots, "tables", "list"],
        [*roots, "labels", "--through", "2027-03-31"])
    assert desc.returncode == 0, desc.stderr[-3000:]
    assert listed_tables.returncode == 0 and "feature_logs\tpresent\t" in listed_tables.stdout, listed_tables.stderr
    assert "privacy_requests\tnot written yet\t" in listed_tables.stdout
    columns = {c["column"]: (c["access"], c["action"]) for c in json.loads(desc.stdout)["columns"]}
    assert columns["entity.email"] == ("restricted", "hash") and columns["logged_at"] == ("public", "keep")
    assert lab.returncode == 0, lab.stderr[-3000:]
    counts = json.loads(lab.stdout.strip().splitlines()[-1])
    assert counts["records_read"] == counts["loaded"] + counts["duplicates"] + counts["quarantined"] > 0
    assert counts["joinable"] + counts["before_prediction"] + counts["orphaned"] == counts["loaded"]  # each once
    assert counts["joinable"] > 0

    snap = _run(str(BIN / "skewless"), *roots, "snapshot", "create", "fraud_daily", "--as-of", "2027-04-01")
    assert snap.returncode == 0, snap.stderr[-3000:]
    made = json.loads(snap.stdout.strip().splitlines()[-1])
    assert made["status"] == "published" and made["version"] == 1 and Path(made["report"]).is_file()
    out = tmp_path / "train"
    # Readers of the published version at once: list and show (Arrow, no JVM), export, and drift of the
    # served hour against the version trained on it (a dataset reference: nothing drifted).
    listed, missing, exported, drift, examples = _run_all(
        [*roots, "datasets", "list"], [*roots, "datasets", "show", "fraud_daily@7"],
        [*roots, "datasets", "export", "fraud_daily@latest", "--split", "train", "--out", str(out)],
        [*roots, "drift", "--model", "fraud", "--reference", "fraud_daily@latest", "--current", "2026-11-25T13"],
        [*roots, "sql", "--role", "ml_engineer", "--format", "json",
         "SELECT count(*) AS n, count_if(label_state = 'labeled') AS labeled, "
         "(SELECT count(DISTINCT request_id) FROM feature_logs) AS ids FROM labeled_examples"])
    # labeled_examples, derived at read time: one row per served prediction, labeled where a joinable
    # label is inside its window; feature_logs holds each loaded request id once.
    assert examples.returncode == 0, examples.stderr[-3000:]
    got = json.loads(examples.stdout.strip())
    assert (got["n"], got["ids"]) == (summary["loaded"], summary["loaded"]) and 0 < got["labeled"] <= counts["joinable"]
    assert listed.returncode == 0 and listed.stdout.startswith("fraud_daily@1\tpublished"), listed.stderr[-2000:]
    assert missing.returncode == 2 and "fraud_daily@7: no such version (versions: 1 published)" in missing.stderr
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert json.loads(exported.stdout)["rows"] == made["rows_per_split"]["train"] and list(out.glob("*.parquet"))
    assert drift.returncode == 0, drift.stderr[-3000:]
    checked = json.loads(drift.stdout.strip().splitlines()[-1])
    assert checked["reference"] == "fraud_daily@1" and checked["status"] == "ok" and checked["features"] == 19
    assert checked["rows"]["current"] == summary["loaded"] and Path(checked["report_path"]).is_file()


def test_prod_profile_refuses_the_demo_key_before_any_write(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    text = (conf / "warehouse.yaml").read_text()
    (conf / "warehouse.yaml").write_text(text.replace("profile: dev", "profile: prod"))
    env_less = {k: v for k, v in os.environ.items() if k != "SKEWLESS_PII_KEY"}
    out = subprocess.run([str(BIN / "skewless"), "--config", str(conf / "warehouse.yaml"), "--warehouse",
                          str(tmp_path / "wh"), "compact", "--hour", "2026-11-25T13"],
                         env=env_less, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "privacy.yaml: key: no key for version k1" in out.stderr and "refuses" in out.stderr
    assert not (tmp_path / "wh").exists()
