"""The query guard of `skewless sql`: a role's query runs only when Spark's own plans show that it
reads the role's views and nothing else. Nothing is executed before both checks pass.

1. The parsed plan (Spark's parser; nothing runs): one statement; no command, DDL, DML, `SET`,
   `ADD JAR`, cache or time travel anywhere, also inside CTEs and subqueries; the only commands are
   `DESCRIBE` of one of the role's views and a plain `SHOW TABLES`. No JVM reflection function.
2. The analysed plan (analysis resolves names, runs nothing): every leaf relation, including those of
   subqueries and CTEs, is one of the role's temporary views, an inline table or `range()`; a file
   source, a path table or any other relation fails closed. No reflection expression anywhere.

`spark.sql.runSQLOnFiles=false` is set by the caller as a second wall. This guards what this tool
runs; it is not storage security (see docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import convert_exception

from skewless.core.errors import QueryRefusedError

_LOGICAL = "org.apache.spark.sql.catalyst.plans.logical."
# Commands a role may run: they only show what its views already show.
_ALLOWED_COMMANDS = {_LOGICAL + "DescribeRelation", _LOGICAL + "ShowTables"}
_COMMAND_TYPES = (_LOGICAL + "Command", _LOGICAL + "ParsedStatement")
_REFLECTION_FUNCTIONS = {"reflect", "java_method", "try_reflect"}
_REFLECTION_EXPRESSIONS = {"CallMethodViaReflection", "TryReflect"}
# Leaves that read no table: VALUES, SELECT without FROM, range(), a CTE reference (its definition is
# checked where it is defined).
_SAFE_LEAVES = {"LocalRelation", "OneRowRelation", "Range", "CTERelationRef"}


def _seq(scala_seq: Any) -> Iterator[Any]:
    for i in range(scala_seq.size()):
        yield scala_seq.apply(i)


def _class_name(obj: Any) -> str:
    return str(obj.getClass().getName())


def _simple_name(obj: Any) -> str:
    return _class_name(obj).rsplit(".", 1)[-1].rstrip("$").rsplit("$", 1)[-1]  # Scala objects end in $


class _Jvm:
    """The few JVM calls the guard makes, on the session's gateway."""

    def __init__(self, spark: Any) -> None:
        self.jvm = spark.sparkContext._jvm
        self.session = spark._jsparkSession
        self._classes = {name: self.jvm.java.lang.Class.forName(name) for name in _COMMAND_TYPES}

    def is_command(self, node: Any) -> bool:
        return any(cls.isInstance(node) for cls in self._classes.values()) or \
            _class_name(node).startswith("org.apache.spark.sql.execution.command.")

    def parse(self, query: str) -> Any:
        try:
            return self.session.sessionState().sqlParser().parsePlan(query)
        except Py4JJavaError as exc:  # as pyspark raises it from spark.sql: a ParseException
            raise convert_exception(exc.java_exception) from None


def _plan_nodes(plan: Any) -> Iterator[Any]:
    """Every node of a plan, with CTE definitions (inner children) and subquery plans."""
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(_seq(node.children()))
        stack.extend(_seq(node.innerChildren()))
        stack.extend(_seq(node.subqueries()))


def _expressions(node: Any) -> Iterator[Any]:
    stack = list(_seq(node.expressions()))
    while stack:
        expr = stack.pop()
        yield expr
        stack.extend(_seq(expr.children()))


def check_parsed(spark: Any, query: str, views: set[str]) -> bool:
    """Refuse (QueryRefusedError) unless the query is a read query or an allowed command; whether it
    is an (allowed) command, which spark.sql then runs eagerly and whose result is a local table."""
    jvm = _Jvm(spark)
    plan = jvm.parse(query)  # a ParseException (several statements, bad syntax) propagates to the caller
    command = False
    for node in _plan_nodes(plan):
        name = _simple_name(node)
        if name == "RelationTimeTravel":
            raise QueryRefusedError("time travel", "a role reads the current version of its views only")
        if jvm.is_command(node):
            _check_command(node, name, views)
            command = True
        if name == "UnresolvedRelation":
            parts = [str(p) for p in _seq(node.multipartIdentifier())]
            if len(parts) > 1:  # `delta`.`/path`, parquet.`...`, catalog.db.table: never a role's view
                raise QueryRefusedError(f"relation {'.'.join(parts)}", "a role reads its views only: no file "
                                                                       "source, path table or catalog table")
        for expr in _expressions(node):
            if _simple_name(expr) == "UnresolvedFunction":
                fn = str(expr.nameParts().last()).lower()
                if fn in _REFLECTION_FUNCTIONS:
                    raise QueryRefusedError(f"function {fn}()", "it calls JVM methods, outside every view")
    return command


def _check_command(node: Any, name: str, views: set[str]) -> None:
    if _class_name(node) not in _ALLOWED_COMMANDS:
        raise QueryRefusedError(f"command {name}", "only read queries (SELECT, WITH, VALUES), DESCRIBE of "
                                                  "a view and SHOW TABLES run here")
    if name == "DescribeRelation":
        target = node.relation()
        parts = [str(p) for p in _seq(target.multipartIdentifier())] if _simple_name(target) in (
            "UnresolvedTableOrView", "UnresolvedTable", "UnresolvedView") else []
        if len(parts) != 1 or parts[0] not in views:
            raise QueryRefusedError(f"DESCRIBE {'.'.join(parts) or _simple_name(target)}",
                                    f"a role describes its own views only ({', '.join(sorted(views))})")
    if name == "ShowTables" and _simple_name(node.namespace()) != "CurrentNamespace":
        raise QueryRefusedError("SHOW TABLES IN another namespace", "a role sees its own views only")


def check_analysed(analysed: Any, views: set[str]) -> None:
    """Refuse unless every leaf relation of the analysed plan is one of `views` (or reads no table)."""
    stack = [analysed]
    while stack:
        node = stack.pop()
        name = _simple_name(node)
        for expr in _expressions(node):
            if _simple_name(expr) in _REFLECTION_EXPRESSIONS:
                raise QueryRefusedError("a reflection call", "it calls JVM methods, outside every view")
        if name == "View":
            ident = node.desc().identifier()
            table = str(ident.table())
            if not node.isTempView() or table not in views:
                raise QueryRefusedError(f"view {table}", f"not one of the role's views ({', '.join(sorted(views))})")
            continue  # inside is the role view itself: built by this tool, trusted
        children = list(_seq(node.children()))
        if not children and name not in _SAFE_LEAVES:
            raise QueryRefusedError(f"relation {name}", "a role reads its views only: no file source, path "
                                                        "table or catalog table")
        stack.extend(children)
        stack.extend(_seq(node.innerChildren()))
        stack.extend(_seq(node.subqueries()))
