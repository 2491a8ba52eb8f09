"""The house rules: layer contracts, a serving side without Spark, thin spark-submit entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skewless.cli import EXIT_JOB_FAILED, EXIT_OUTPUT_CLOSED, _guarded

from .conftest import ROOT

BIN = Path(sys.executable).parent


def _python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold() -> None:
    out = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "6 kept, 0 broken" in out.stdout


def test_logger_arrow_reader_and_cli_parser_load_no_spark() -> None:
    out = _python("import sys, json\n"
                  "import skewless.serving.logger, skewless.serving.arrow, skewless.serving.logformat\n"
                  "from skewless.cli import build_parser, chosen_command\n"
                  "build_parser(chosen_command(['generate', '--start', '2026-11-25T00']))\n"
                  "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
                  "('pyspark', 'py4j', 'delta', 'great_expectations'))))")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_generate_and_help_start_no_jvm(tmp_path: Path) -> None:
    code = ("import sys, json\nfrom skewless.cli import main\n"
            f"rc = main(['--landing', {str(tmp_path)!r}, 'generate', '--start', '2026-11-25T00', '--rps', '1',"
            " '--hosts', '1'])\n"
            "print(json.dumps({'rc': rc, 'pyspark': 'pyspark' in sys.modules}))")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rc": 0, "pyspark": False}
    assert list(tmp_path.rglob("*.jsonl*"))


def test_tables_list_and_describe_of_a_table_start_no_jvm(tmp_path: Path) -> None:
    code = ("import sys, json\nfrom skewless.cli import main\n"
            f"rc = main(['--warehouse', {str(tmp_path)!r}, 'tables', 'list'])\n"
            f"rc2 = main(['--warehouse', {str(tmp_path)!r}, 'tables', 'describe', 'feature_logs'])\n"
            "from pyspark import SparkContext\n"
            "print(json.dumps({'rc': [rc, rc2], 'jvm': SparkContext._gateway is not None}))")
    out = _python(code)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rc": [0, 2], "jvm": False}, out.stderr
    assert "feature_logs\tnot written yet\t" in out.stdout
    assert "table 'feature_logs' does not exist yet" in out.stderr


def test_a_reader_that_closes_stdout_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`skewless tables list | head -1`: the reader's choice, not a failed job; exit 141 as a shell
    reports SIGPIPE, and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child starts: its first line meets the broken pipe, every time
    try:
        out = subprocess.run([str(BIN / "skewless"), "--warehouse", str(tmp_path), "tables", "list"],
                             stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (EXIT_OUTPUT_CLOSED, "")


def test_a_broken_pipe_elsewhere_is_still_a_job_failure(capfd: pytest.CaptureFixture[str]) -> None:
    def gateway_gone() -> int:  # what a socket to a JVM that died raises; stdout is fine
        raise BrokenPipeError(32, "Broken pipe")

    assert _guarded(gateway_gone) == EXIT_JOB_FAILED
    assert "skewless: job failed: BrokenPipeError" in capfd.readouterr().err


def test_spark_submit_entries_are_thin() -> None:
    entries = sorted((ROOT / "jobs").glob("*.py"))
    assert {p.stem for p in entries} >= {"compact", "labels", "snapshot", "forget", "purge", "model", "skew_test",
                                         "drift"}
    for path in entries:
        text = path.read_text()
        assert "sys.path" not in text and len(text.splitlines()) < 15, path
        assert f'submit("{path.stem.replace("_", "-")}")' in text, path  # jobs/skew_test.py: `skew-test`
    assert not (ROOT / "jobs" / "__init__.py").exists()


def test_package_reads_its_files_through_importlib_resources() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "skewless").rglob("*.py") if "__file__" in p.read_text()]
    assert offenders == []
