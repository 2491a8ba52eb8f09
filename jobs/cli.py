"""The `skewless` command. Exit codes: 0 success, 1 a check failed, 2 usage or config error, 3 job failure."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs import __version__
from jobs.config import Warehouse, load
from jobs.errors import SkewlessError, UsageError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_JOB_FAILED = 0, 1, 2, 3
# Commands that run on a Spark session: command -> (module, function(spark, warehouse, args) -> exit code).
SPARK_COMMANDS = {
    "compact": ("jobs.compact_run", "run"), "labels": ("jobs.labels_run", "run"), "sql": ("jobs.sql", "run"),
    "tables": ("jobs.describe", "run"), "snapshot": ("jobs.snapshot_run", "run"),
    "datasets": ("jobs.datasets", "run"), "forget": ("jobs.forget_run", "run_forget"),
    "purge": ("jobs.forget_run", "run_purge"),
}
DEFAULT_CONFIG = "conf/warehouse.yaml"

EPILOG = """exit codes: 0 success, 1 a check failed, 2 usage or config error, 3 job failure.
Every job prints progress on stderr and ends with one JSON line of counts on stdout."""


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"warehouse YAML (default {DEFAULT_CONFIG})")
    parser.add_argument("--landing", help="landing root, overriding paths.landing")
    parser.add_argument("--warehouse", help="Delta table root, overriding paths.warehouse")


def build_parser() -> argparse.ArgumentParser:
    from jobs import compact_run, datasets, describe, forget_run, generate_cmd, labels_run, snapshot_run, sql

    parser = argparse.ArgumentParser(
        prog="skewless", description="Served-feature logging warehouse on Spark + Delta Lake.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"skewless {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands: list[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = [
        ("generate", "write realistic fraud-scoring traffic and labels into the landing folders",
         generate_cmd.add_arguments),
        ("compact", "compact landing hours into feature_logs, its quarantine and the audit",
         compact_run.add_arguments),
        ("labels", "ingest one label date and update labeled_examples (point-in-time correct)",
         labels_run.add_arguments),
        ("sql", "run Spark SQL where the project's tables resolve by plain name, as a role", sql.add_arguments),
        ("tables", "list the tables, or describe one with every column's access tag", describe.add_arguments),
        ("forget", "delete a subject from every table, physically (VACUUM), and log the request",
         forget_run.add_forget_arguments),
        ("purge", "purge quarantined raw text past its retention (also done by compact --date)",
         forget_run.add_purge_arguments),
        ("snapshot", "create a versioned training snapshot, gated by its Great Expectations suite",
         snapshot_run.add_arguments),
        ("datasets", "list, show and export dataset versions (NAME@N, NAME@latest, NAME@YYYY-MM-DD)",
         datasets.add_arguments),
        ("jars", "print the Delta jar paths for `spark-submit --jars`", lambda p: None),
    ]
    for name, help_text, add in commands:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add(p)
    return parser


def _config(args: argparse.Namespace) -> Warehouse:
    path = Path(args.config)
    if args.config == DEFAULT_CONFIG and not path.exists():
        # Run from outside the project (e.g. spark-submit from another folder): use the project's own.
        path = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG
    wh = load(path)
    return wh.with_paths(landing=args.landing, warehouse=args.warehouse)


def dispatch(args: argparse.Namespace) -> int:
    wh = _config(args)  # validated before any command reads or writes
    if args.command == "generate":
        from jobs import generate_cmd

        return generate_cmd.run(wh, args)
    if args.command == "jars":
        from jobs.jars import main as jars_main

        return jars_main(["path"])
    if args.command not in SPARK_COMMANDS:
        raise UsageError(f"unknown command {args.command!r}")
    from jobs.session import build_session

    spark = build_session(wh.spark)
    module, function = SPARK_COMMANDS[args.command]
    run: Callable[[Any, Warehouse, argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return run(spark, wh, args)



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return _guarded(lambda: dispatch(args))


def run_job(command: str, argv: list[str] | None = None) -> int:
    """Entry for `spark-submit jobs/<command>.py ARGS`: the same options as `skewless <command>`."""
    args = list(sys.argv[1:] if argv is None else argv)
    globals_, rest = [], []
    it = iter(args)
    for a in it:
        if a in ("--config", "--landing", "--warehouse"):
            globals_ += [a, next(it, "")]
        elif a.split("=", 1)[0] in ("--config", "--landing", "--warehouse"):
            globals_.append(a)
        else:
            rest.append(a)
    return main([*globals_, command, *rest])


def _guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except SkewlessError as exc:
        print(f"skewless: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("skewless: interrupted", file=sys.stderr)
        return EXIT_JOB_FAILED
    except Exception as exc:  # noqa: BLE001 - a job failure is exit 3 with its traceback, never a hang
        traceback.print_exc(limit=8)
        # A JVM error's message carries its whole Java stack; its first lines name the cause.
        head = "\n".join(str(exc).splitlines()[:6])
        print(f"skewless: job failed: {type(exc).__name__}: {head}", file=sys.stderr)
        return EXIT_JOB_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
