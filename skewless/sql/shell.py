"""`skewless sql --role R` without a query: one bound session, statements read until EOF.

Interactive (a terminal): `;`-terminated multi-line input with readline editing and history in
~/.skewless_sql_history ($SKEWLESS_SQL_HISTORY), each result followed by its row count and time;
Ctrl-C cancels the running query (its Spark jobs too) and returns to the prompt; Ctrl-D leaves.
From a pipe (`skewless sql --role analyst < queries.sql`): the same statements with no prompt; a last
statement without `;` runs at EOF. A refused or rejected statement prints why and the shell goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from pyspark.sql import SparkSession

from skewless.core.errors import AccessDeniedError, QueryRefusedError, UsageError
from skewless.sql import output
from skewless.sql.guard import run_statement
from skewless.sql.roles import Binding
from skewless.sql.statements import is_blank, split_statements

EXIT_OK, EXIT_REFUSED, EXIT_FAILED = 0, 2, 3
_JOB_GROUP = "skewless-sql"


def history_file() -> Path:
    return Path(os.environ.get("SKEWLESS_SQL_HISTORY") or Path.home() / ".skewless_sql_history")


def run_shell(spark: SparkSession, binding: Binding, fmt: str, limit: int,
              stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Run every statement of the input. From a pipe: 0 when all ran, 2 when any was refused or rejected,
    3 when one failed while running (the worst of these). Interactive: 0 (each error was shown)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        _start_history()
        print(f"skewless sql as role {binding.role}; views: {', '.join(binding.views)}. "
              "End a statement with ';', Ctrl-C cancels, Ctrl-D leaves.", file=sys.stderr)
    worst = EXIT_OK
    # PySpark's own SIGINT handler cancels every job and raises inside a py4j call, which can break the
    # JVM connection; here Ctrl-C only interrupts the main thread's wait (see _execute).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for statement in _statements(stdin, interactive, binding.role):
            worst = max(worst, _execute(spark, binding, statement, fmt, limit, out))
    finally:
        signal.signal(signal.SIGINT, previous)
        if interactive:
            _save_history()
    return EXIT_OK if interactive else worst


def _statements(stdin: TextIO, interactive: bool, role: str) -> Iterator[str]:
    buffer = ""
    mark = _history_length() if interactive else 0
    while True:
        try:
            line = _read_line(stdin, interactive, f"skewless({role})> " if not buffer.strip() else "      ...> ")
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the unfinished statement
            print("^C", file=sys.stderr)
            buffer = ""
            continue
        if line is None:
            break
        split = split_statements(buffer + line)
        if interactive and split.statements:  # history keeps whole statements, not their lines
            _replace_history(mark, split.statements)
        yield from split.statements
        buffer = split.rest
        if interactive and not buffer.strip():
            mark = _history_length()
    if not is_blank(buffer):
        yield buffer.strip()


def _read_line(stdin: TextIO, interactive: bool, prompt: str) -> str | None:
    if interactive:
        try:
            return input(prompt) + "\n"
        except EOFError:
            print(file=sys.stderr)
            return None
    line = stdin.readline()
    return line or None


def _execute(spark: SparkSession, binding: Binding, statement: str, fmt: str, limit: int, out: TextIO) -> int:
    """Run one statement in a worker thread, so that Ctrl-C in this (main) thread can cancel its Spark
    jobs and wait for the worker to come back, leaving the session and its JVM connection whole."""
    started = time.perf_counter()
    result: dict[str, object] = {}

    def work() -> None:
        spark.sparkContext.setJobGroup(_JOB_GROUP, statement[:200], interruptOnCancel=True)
        try:
            result["rows"] = output.write(run_statement(spark, binding, statement), fmt, limit, out)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports it
            result["error"] = exc

    worker = threading.Thread(target=work, name="skewless-sql-statement", daemon=True)
    worker.start()
    cancelled = False
    while worker.is_alive():
        try:
            worker.join(0.1)
        except KeyboardInterrupt:
            if not cancelled:
                cancelled = True
                print("^C cancelling...", file=sys.stderr, flush=True)
                spark.sparkContext.cancelJobGroup(_JOB_GROUP)
    elapsed = time.perf_counter() - started
    error = result.get("error")
    if cancelled:
        print(f"cancelled after {elapsed:.2f} s", file=sys.stderr)
        return EXIT_OK
    if isinstance(error, (QueryRefusedError, AccessDeniedError, UsageError)):
        print(f"skewless: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(error, BrokenPipeError):
        raise error  # stdout's reader left (`| head`): the command ends (cli maps it), not just this statement
    if isinstance(error, BaseException):
        # A statement that fails at run time (overflow, bad cast) ends itself, not the shell.
        text = str(error).strip()
        head = text.splitlines()[0] if text else type(error).__name__
        print(f"skewless: statement failed: {head[:1000]}", file=sys.stderr)
        return EXIT_FAILED
    rows = int(result.get("rows", 0))  # type: ignore[call-overload]
    print(f"({rows} row{'s' if rows != 1 else ''}, {elapsed:.3f} s)", file=sys.stderr)
    return EXIT_OK


def _history_length() -> int:
    try:
        import readline
    except ImportError:
        return 0
    return int(readline.get_current_history_length())


def _replace_history(mark: int, statements: tuple[str, ...]) -> None:
    try:
        import readline
    except ImportError:
        return
    while readline.get_current_history_length() > mark:
        readline.remove_history_item(readline.get_current_history_length() - 1)
    for statement in statements:
        readline.add_history(" ".join(statement.split()) + ";")


def _start_history() -> None:
    try:
        import readline
    except ImportError:  # no readline on this Python: plain input still works
        return
    path = history_file()
    if path.is_file():
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
    readline.set_history_length(2000)


def _save_history() -> None:
    try:
        import readline
    except ImportError:
        return
    path = history_file()
    try:
        readline.write_history_file(path)
        os.chmod(path, 0o600)  # queries can name values worth keeping to oneself
    except OSError as exc:
        print(f"skewless: history not saved to {path}: {exc}", file=sys.stderr)
