"""`skewless sql`: Spark SQL over the project's tables by plain name, as a role.

Three ways in, one guard: a query on the command line, the shell (no query, or `--shell`; also reads a
pipe), and `--serve` (a JDBC/ODBC endpoint). Each binds the session to the role first (the role's
views, then the JVM guard locked on them: skewless/sql/jvm), so every statement is checked by Spark's
plans before it is analysed or run. This is enforcement in this tool's session, not in storage: see
docs/security.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from skewless.core.config import Config
from skewless.core.errors import UsageError
from skewless.sql import output, server
from skewless.sql.guard import run_statement
from skewless.sql.roles import bind
from skewless.sql.shell import run_shell


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", help="a Spark SQL query, e.g. \"SELECT count(*) FROM feature_logs\"; "
                                            "none: the shell (reads statements until EOF, also from a pipe)")
    p.add_argument("--role", help="read as this role (roles in conf/privacy.yaml; default: its default_role)")
    p.add_argument("--format", choices=output.FORMATS, default="table",
                   help="table (default), json (one object per row) or csv")
    p.add_argument("--limit", type=int, default=1000, help="most rows printed as a table (default 1000)")
    p.add_argument("--shell", action="store_true", help="the interactive shell (the default without a query)")
    p.add_argument("--serve", action="store_true", help="serve the role's views over JDBC/ODBC (Spark's Thrift "
                                                         "server) until SIGTERM")
    p.add_argument("--host", default="127.0.0.1", help="--serve: address to bind (default 127.0.0.1; any other "
                                                        "needs --password-file)")
    p.add_argument("--port", type=int, default=10000, help="--serve: TCP port (default 10000)")
    p.add_argument("--password-file", type=Path, help="--serve: users allowed to connect (skewless sql-user add)")


def _check(args: argparse.Namespace) -> None:
    if sum([args.query is not None, args.shell, args.serve]) > 1:
        raise UsageError("give a query, --shell or --serve, not several")
    if args.serve:
        server.check_options(args.host, args.port, args.password_file)
    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: must be 0 or more")


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    _check(args)
    role = args.role or cfg.privacy_policy.default_role
    if args.serve:
        server.configure(spark, args.host, args.port, args.password_file)
    binding = bind(spark, cfg, role, whole_application=True)
    if args.serve:
        return server.serve(spark, binding, args.host, args.port, args.password_file)
    if args.query is None:
        return run_shell(spark, binding, args.format, args.limit)
    output.write(run_statement(spark, binding, args.query), args.format, args.limit, sys.stdout)
    return 0
