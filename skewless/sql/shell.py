"""`skewless sql --role R` without a query: one bound session, statements read until EOF.

Interactive (a terminal): `;`-terminated multi-line input with readline editing and history in
~/.skewless_sql_history ($SKEWLESS_SQL_HISTORY), each result followed by its row count and time;
Ctrl-C cancels the running query (its Spark jobs too) and returns to the prompt; Ctrl-D leaves.
From a pipe (`skewless sql --role analyst < queries.sql`): the same statements with no prompt; a last
statement without `;` runs at EOF. A refused or rejected statement prints why and the shell goes on.
"""

from __future__ import annotations

import os
import sys
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

EXIT_OK, EXIT_REFUSED = 0, 2


def history_file() -> Path:
    return Path(os.environ.get("SKEWLESS_SQL_HISTORY") or Path.home() / ".skewless_sql_history")


def run_shell(spark: SparkSession, binding: Binding, fmt: str, limit: int,
              stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Run every statement of the input; 0 when all ran, 2 when any was refused or rejected."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        _start_history()
        print(f"skewless sql as role {binding.role}; views: {', '.join(binding.views)}. "
              "End a statement with ';', Ctrl-C cancels, Ctrl-D leaves.", file=sys.stderr)
    worst = EXIT_OK
    try:
        for statement in _statements(stdin, interactive, binding.role):
            worst = max(worst, _execute(spark, binding, statement, fmt, limit, out))
    finally:
        if interactive:
            _save_history()
    return worst


def _statements(stdin: TextIO, interactive: bool, role: str) -> Iterator[str]:
    buffer = ""
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
        yield from split.statements
        buffer = split.rest
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
    started = time.perf_counter()
    spark.sparkContext.setJobGroup("skewless-sql", statement[:200], interruptOnCancel=True)
    try:
        rows = output.write(run_statement(spark, binding, statement), fmt, limit, out)
    except (QueryRefusedError, AccessDeniedError, UsageError) as exc:
        print(f"skewless: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        spark.sparkContext.cancelJobGroup("skewless-sql")
        print(f"cancelled after {time.perf_counter() - started:.2f} s", file=sys.stderr)
        return EXIT_OK
    print(f"({rows} row{'s' if rows != 1 else ''}, {time.perf_counter() - started:.3f} s)", file=sys.stderr)
    return EXIT_OK


def _start_history() -> None:
    try:
        import readline
    except ImportError:  # no readline on this Python: plain input still works
        return
    path = history_file()
    if path.is_file():
        try:
            readline.read_history_file(path)
        except OSError:
            pass
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
