"""Statements on a bound session, and the guard's refusals reported well.

The rules are the SQL extension's (skewless/sql/jvm/PlanChecks.java): an allow-list over Spark's parsed
plan, checked in the session's parser before anything is analysed, and a check rule over the analysed
plan before anything runs. This module only turns what the JVM raised into the project's errors:
QueryRefusedError (what and why), AccessDeniedError (a hidden column or table, with its access class),
UsageError (a statement Spark cannot parse or analyse).
"""

from __future__ import annotations

import logging
import re

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import AnalysisException, ParseException, PySparkException
from pyspark.sql import DataFrame, SparkSession

from skewless.core.errors import AccessDeniedError, QueryRefusedError, UsageError
from skewless.sql.roles import Binding

_REFUSED = re.compile(r"query refused: (?P<what>.+?): (?P<why>[^\n]+)")


def refusal_in(exc: BaseException) -> QueryRefusedError | None:
    """The guard's refusal carried by a JVM error, whichever wrapper Spark or py4j put around it."""
    texts = [str(exc)]
    if isinstance(exc, Py4JJavaError):
        texts.insert(0, str(exc.java_exception.toString()))
    for text in texts:
        m = _REFUSED.search(text)
        if m:
            return QueryRefusedError(m["what"], m["why"].strip())
    return None


def run_statement(spark: SparkSession, binding: Binding, statement: str) -> DataFrame:
    """The statement as a DataFrame, after both checks passed. A query is only parsed and analysed
    here (a command the guard allows, DESCRIBE or SHOW, has run and its result is local)."""
    # PySpark logs every failed analysis at ERROR with the Java stack; the error below says it plainly.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    try:
        return spark.sql(statement)
    except (AnalysisException, ParseException) as exc:
        refused = refusal_in(exc)
        if refused is not None:
            raise refused from None
        params = exc.getMessageParameters() or {} if isinstance(exc, AnalysisException) else {}
        unresolved = [v for k, v in params.items() if k in ("objectName", "fieldName", "relationName")]
        denied = denied_reference(statement, binding.hidden, unresolved) if isinstance(exc, AnalysisException) \
            else None
        if denied is not None:
            raise AccessDeniedError(binding.role, denied[0], denied[1], binding.clearance) from None
        raise UsageError(f"query rejected: {exc.getMessage() if hasattr(exc, 'getMessage') else exc}") from None
    except (Py4JJavaError, PySparkException, Py4JError) as exc:
        refused = refusal_in(exc)
        if refused is not None:
            raise refused from None
        raise


def denied_reference(query: str, hidden: dict[str, str], unresolved: list[str]) -> tuple[str, str] | None:
    """The hidden table or column behind a failed query: first among the names Spark could not
    resolve, else the first one the query text names (by full path or last part). Only used to word an
    error the guard or Spark already raised; it decides nothing."""
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
