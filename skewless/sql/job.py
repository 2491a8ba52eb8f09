"""`skewless sql`: Spark SQL over the project's tables by plain name, as a role, printed as a table, JSON or CSV.

With `--role R` (default: the policy's `default_role`) each table resolves to a view holding only the
columns and struct fields R's clearance covers. A query naming anything else fails with the column and
its access class. Before anything runs, `guard` checks Spark's parsed and analysed plans: read queries
over the role's views only (no command, file source, path table, reflection or time travel). This is
enforcement in this tool's layer, not in storage: see docs/security.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession

from skewless.core import names as N
from skewless.core.access import highest, role_view
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta, session_conf
from skewless.core.errors import AccessDeniedError, UsageError
from skewless.core.paths import table_path
from skewless.sql.guard import check_analysed, check_parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="a Spark SQL query, e.g. \"SELECT count(*) FROM feature_logs\"")
    p.add_argument("--role", help="read as this role (roles in conf/privacy.yaml; default: its default_role)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (default), json (one object per row) or csv")
    p.add_argument("--limit", type=int, default=1000, help="most rows printed as a table (default 1000)")


def register_role_views(spark: SparkSession, cfg: Config, role: str) -> dict[str, str]:
    """Temp views of every existing table as `role` sees it; returns what it may not see:
    `table.column` (or `table` when no column is visible) -> access class."""
    clearance = cfg.privacy_policy.clearance(role)
    hidden: dict[str, str] = {}
    for name in N.TABLES:
        path = table_path(cfg.paths.warehouse, name)
        if not is_table(spark, path):
            continue
        view, cols = role_view(read_delta(spark, path), clearance)
        hidden.update({f"{name}.{c}": cls for c, cls in cols.items()})
        if view is None:
            hidden[name] = highest(list(cols.values()))  # type: ignore[arg-type]
            spark.catalog.dropTempView(name)
            continue
        view.createOrReplaceTempView(name)
    return hidden


def denied_reference(query: str, hidden: dict[str, str], unresolved: list[str]) -> tuple[str, str] | None:
    """The hidden table or column behind a failed query: first among the names Spark could not
    resolve, else the first one the query text names (by full path or last part)."""
    for text in (" ".join(unresolved), query):
        found = _named(text, hidden)
        if found is not None:
            return found
    return None


def _named(query: str, hidden: dict[str, str]) -> tuple[str, str] | None:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", query.replace("`", "")))
    parts = {p for w in words for p in w.split(".")}
    for target, cls in sorted(hidden.items(), key=lambda kv: -kv[0].count(".")):
        table, _, column = target.partition(".")
        if not column:
            if table in parts:
                return target, cls
            continue
        leaf = column.rsplit(".", 1)[-1]
        if column in words or any(w.endswith(f".{column}") for w in words) or leaf in parts:
            return target, cls
    return None


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    role = args.role or cfg.privacy_policy.default_role
    hidden = register_role_views(spark, cfg, role)
    df = guarded_query(spark, args.query, role, hidden, ", ".join(cfg.privacy_policy.clearance(role)))
    if args.format == "table":
        print(df._jdf.showString(args.limit, 0, False))  # Spark's own renderer, no truncation of values
        return 0
    out = sys.stdout
    if args.format == "json":
        for row in df.toLocalIterator():  # streams partition by partition, never collects the result
            out.write(json.dumps(row.asDict(recursive=True), default=str, sort_keys=False) + "\n")
        return 0
    writer = csv.writer(out)
    writer.writerow(df.columns)
    for row in df.toLocalIterator():
        writer.writerow(["" if v is None else v for v in row])
    return 0


def guarded_query(spark: SparkSession, query: str, role: str, hidden: dict[str, str], clearance: str) -> DataFrame:
    """The query as a DataFrame over the role's registered views, after the guard passed; nothing runs
    before that. Refusals: QueryRefusedError (what and why), AccessDeniedError (a hidden column or
    table), UsageError (a query Spark cannot parse or analyse)."""
    views = {t.name for t in spark.catalog.listTables() if t.isTemporary} & set(N.TABLES)
    # PySpark logs every failed analysis at ERROR with the Java stack; the error below says it plainly.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    try:
        command = check_parsed(spark, query, views)  # commands are refused here, before spark.sql runs them
        # A second wall behind the guard: `parquet.`/path``, `delta.`/path`` and the like do not resolve.
        with session_conf(spark, "spark.sql.runSQLOnFiles", "false"):
            df = spark.sql(query)  # a query is only analysed here: names resolve, nothing runs
        if not command:  # DESCRIBE of a role's view, SHOW TABLES: already run, their result is local
            check_analysed(df._jdf.queryExecution().analyzed(), views)
    except (AnalysisException, ParseException) as exc:
        params = exc.getMessageParameters() or {} if isinstance(exc, AnalysisException) else {}
        unresolved = [v for k, v in params.items() if k in ("objectName", "fieldName", "relationName")]
        denied = denied_reference(query, hidden, unresolved) if isinstance(exc, AnalysisException) else None
        if denied is not None:
            raise AccessDeniedError(role, denied[0], denied[1], clearance) from exc
        raise UsageError(f"query rejected: {exc.getMessage() if hasattr(exc, 'getMessage') else exc}") from exc
    return df
