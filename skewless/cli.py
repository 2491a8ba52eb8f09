"""The `skewless` command. Exit codes: 0 success, 1 a check failed, 2 usage or config error, 3 job failure,
141 stdout closed by its reader.

Every command joins the one registry, `COMMANDS`: its name, help, the module holding its argument adder
and runner, and whether it needs Spark. Only the chosen command's module is imported, so commands
without Spark (`generate`, `jars`, `--help`) load no pyspark and start no JVM.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skewless import __version__
from skewless.core.errors import SkewlessError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_JOB_FAILED = 0, 1, 2, 3
# What a shell reports for a process that SIGPIPE killed: `skewless sql ... | head` is not a failed job.
EXIT_OUTPUT_CLOSED = 128 + 13
EPILOG = """exit codes: 0 success, 1 a check failed, 2 usage or config error, 3 job failure,
141 the reader closed stdout early (| head).
Every job prints progress on stderr and ends with one JSON line of counts on stdout.
--verbose shows Spark's own log lines too."""
GLOBAL_OPTIONS = ("--config", "--landing", "--warehouse")
GLOBAL_FLAGS = ("--verbose",)


@dataclass(frozen=True)
class Command:
    """One `skewless` command. `module` holds `add` (argparse) and `runner`: run(spark, config, args)
    when `spark`, else run(config, args); run(args) for a command that needs no `config`."""

    name: str
    help: str
    module: str
    runner: str = "run"
    add: str = "add_arguments"
    spark: bool = True
    config: bool = True
    preflight: str | None = None   # check(config, args): the command's own config, before the JVM starts

    def function(self, attr: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), attr)


COMMANDS: tuple[Command, ...] = (
    Command("generate", "write realistic fraud-scoring traffic and labels into the landing folders",
            "skewless.devtools.job", spark=False),
    Command("compact", "compact landing hours into feature_logs, its quarantine and the audit", "skewless.ingest.job"),
    Command("labels", "ingest label dates (labeled_examples picks labels from them when read)", "skewless.labels.job"),
    Command("sql", "run Spark SQL where the project's tables resolve by plain name, as a role", "skewless.sql.job"),
    Command("sql-user", "add a user to the password file of `skewless sql --serve` (PBKDF2-SHA256)",
            "skewless.sql.passwords", spark=False, config=False),
    Command("tables", "list the tables, or describe one with every column's access tag", "skewless.sql.tables_job",
            spark=False),  # Delta logs through delta-rs; only a view's describe starts Spark, itself
    Command("forget", "delete a subject from every table, physically (VACUUM), and log the request",
            "skewless.privacy.job", runner="run_forget", add="add_forget_arguments"),
    Command("purge", "purge quarantined raw text past its retention (also done by compact --date)",
            "skewless.privacy.job", runner="run_purge", add="add_purge_arguments"),
    Command("snapshot", "create a versioned training snapshot, gated by its Great Expectations suite",
            "skewless.datasets.snapshot_job"),
    Command("datasets", "list, show and export dataset versions (NAME@N, NAME@latest, NAME@YYYY-MM-DD)",
            "skewless.datasets.catalog_job", spark=False),  # only `export` starts Spark, itself
    Command("model", "fit a pipeline spec on a dataset version into a model package (manifest + Spark model)",
            "skewless.model.job"),
    Command("skew-test", "block a deploy: offline pipeline vs packaged serving model on logged examples",
            "skewless.skew.job"),
    Command("drift", "PSI, KS and Jensen-Shannon per feature: a serving slice vs the training reference",
            "skewless.drift.job"),
    Command("nightly", "the day's duty in one run: compact, labels, purge, snapshots, drift; resumable",
            "skewless.nightly.job", preflight="preflight"),
    Command("jars", "print the Delta jar paths for `spark-submit --jars` (fetch them with `jars fetch`)",
            "skewless.core.jars", spark=False, config=False),
)
BY_NAME = {c.name: c for c in COMMANDS}


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="warehouse YAML (default: $SKEWLESS_CONFIG, else conf/warehouse.yaml)")
    parser.add_argument("--landing", help="landing root, overriding paths.landing")
    parser.add_argument("--warehouse", help="Delta table root, overriding paths.warehouse")
    parser.add_argument("--verbose", action="store_true", help="show Spark's and Delta's log lines too")


def chosen_command(argv: Sequence[str]) -> Command | None:
    """The command named in argv (the first word that is not a global option or its value)."""
    pre = argparse.ArgumentParser(add_help=False)
    _global_options(pre)
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(list(argv))
    return BY_NAME.get(known.command or "")


def build_parser(command: Command | None = None) -> argparse.ArgumentParser:
    """The whole parser; only `command`'s own arguments are added (its module is imported)."""
    parser = argparse.ArgumentParser(
        prog="skewless", description="Served-feature logging warehouse on Spark + Delta Lake.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"skewless {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help, description=c.help, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if command is not None and c.name == command.name:
            c.function(c.add)(p)
    return parser


def dispatch(command: Command, args: argparse.Namespace) -> int:
    if not command.config:
        return int(command.function(command.runner)(args))
    from skewless.core.config import config_path, load

    cfg = load(config_path(args.config)).with_paths(landing=args.landing, warehouse=args.warehouse)
    if not command.spark:  # validated before any command reads or writes
        return int(command.function(command.runner)(cfg, args))
    run = command.function(command.runner)  # imported (and its arguments checked) before the JVM starts
    if command.preflight:
        command.function(command.preflight)(cfg, args)
    from skewless.core.session import build_session

    spark = build_session(cfg.spark, verbose=args.verbose)
    return int(run(spark, cfg, args))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = chosen_command(args_list)
    args = build_parser(command).parse_args(args_list)
    return _guarded(lambda: dispatch(command or BY_NAME[args.command], args))


def submit(command: str, argv: Sequence[str] | None = None) -> int:
    """Entry for `spark-submit jobs/<command>.py ARGS`: the same options as `skewless <command>`,
    global ones (--config, --landing, --warehouse, --verbose) accepted anywhere on the line."""
    args = list(sys.argv[1:] if argv is None else argv)
    globals_, rest = [], []
    it = iter(args)
    for a in it:
        if a in GLOBAL_OPTIONS:
            globals_ += [a, next(it, "")]
        elif a in GLOBAL_FLAGS or a.split("=", 1)[0] in GLOBAL_OPTIONS:
            globals_.append(a)
        else:
            rest.append(a)
    return main([*globals_, command, *rest])


def _guarded(fn: Callable[[], int]) -> int:
    try:
        code = fn()
        sys.stdout.flush()  # here, not at the interpreter's exit, where a closed pipe could not be answered
        return code
    except SkewlessError as exc:
        print(f"skewless: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("skewless: interrupted", file=sys.stderr)
        return EXIT_JOB_FAILED
    except Exception as exc:  # noqa: BLE001 - a job failure is exit 3 with its traceback, never a hang
        # The reader of stdout took what it wanted (`| head`). Not a socket's broken pipe (a JVM that died).
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            # Later writes, and the interpreter's own flush at exit, go nowhere instead of raising again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OUTPUT_CLOSED
        traceback.print_exc(limit=8)
        # A JVM error's message carries its whole Java stack; its first lines name the cause.
        head = "\n".join(str(exc).splitlines()[:6])
        print(f"skewless: job failed: {type(exc).__name__}: {head}", file=sys.stderr)
        return EXIT_JOB_FAILED


def _stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # not a file descriptor (a test's captured stream): not a closed pipe
        return False
