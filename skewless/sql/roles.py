"""A session bound to a role: the role's views of every table, then the JVM guard locked on them.

The rules live in the SQL extension (skewless/sql/jvm, `RoleGuard` and `PlanChecks`); this module only
builds the views the extension trusts and binds the session. Binding is one-way (the JVM has no unlock),
so the role is fixed for the session's life and no SQL can change it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from skewless.core import names as N
from skewless.core.access import highest, role_view
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta
from skewless.core.errors import GuardUnavailableError, UsageError
from skewless.core.paths import table_path
from skewless.core.session import GUARD_EXTENSION
from skewless.labels import view as examples_view

_GUARD_CLASS = "io.skewless.sql.RoleGuard"


@dataclass(frozen=True)
class Binding:
    """What a bound session may read. `hidden`: `table.column` (or `table`) -> access class it lacks."""

    role: str
    views: tuple[str, ...]
    hidden: dict[str, str]
    clearance: str


@dataclass(frozen=True)
class RoleViews:
    """What `register_role_views` made: the views registered, and what the role may not see
    (`table.column`, or `table` when no column is visible -> access class)."""

    views: tuple[str, ...]
    hidden: dict[str, str]


def register_role_views(spark: SparkSession, cfg: Config, role: str) -> RoleViews:
    """Temp views of every existing table as `role` sees it, and no other view of those names: a view
    left by an earlier registration whose table is now absent or hidden is dropped."""
    clearance = cfg.privacy_policy.clearance(role)
    hidden: dict[str, str] = {}
    views: list[str] = []
    for name in N.QUERYABLE:
        source = _source(spark, cfg, name)
        view, cols = role_view(source, clearance) if source is not None else (None, {})
        hidden.update({f"{name}.{c}": cls for c, cls in cols.items()})
        if view is None:
            if cols:
                hidden[name] = highest(list(cols.values()))  # type: ignore[arg-type]
            spark.catalog.dropTempView(name)
            continue
        view.createOrReplaceTempView(name)
        views.append(name)
    return RoleViews(tuple(sorted(views)), hidden)


def _source(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    """What the view `name` reads: a table's latest version, or `labeled_examples` derived from its two
    tables (the guard sees only the temp view; its plan reads the tables beneath). None: not written yet."""
    if name == N.LABELED_EXAMPLES:
        return examples_view.labeled_examples(spark, cfg) if examples_view.exists(spark, cfg) else None
    path = table_path(cfg.paths.warehouse, name)
    return read_delta(spark, path) if is_table(spark, path) else None


def bind(spark: SparkSession, cfg: Config, role: str, *, whole_application: bool) -> Binding:
    """Register `role`'s views in `spark`, then lock the session to them. With `whole_application`
    every other session of the JVM (the Thrift server's, a notebook's `newSession()`) is locked too,
    with no view: it reads nothing. Raises GuardUnavailableError when the extension is not active."""
    bound = role_of(spark)
    if bound is not None:
        raise UsageError(f"this session is already bound to role {bound!r}: a session's role is fixed")
    # The names registered, not the catalog's list: that costs a second or more on a cold JVM, and
    # would also list a same-named view made before this call, which the guard must not trust.
    registered = register_role_views(spark, cfg, role)
    # A second wall behind the guard: `parquet.`/path`` and the like do not even resolve.
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    views, hidden = registered.views, registered.hidden
    # The session catalog (Delta's) is loaded here, on this thread: the JDBC server's handler threads
    # cannot load it from the class loader that holds --jars (ClassNotFoundException: DeltaCatalog).
    spark._jsparkSession.sessionState().catalogManager().v2SessionCatalog()
    guard = _guard_class(spark)
    guard.lock(  # type: ignore[attr-defined]
        spark._jsparkSession, role, ",".join(views), whole_application)
    _prove_active(spark)
    return Binding(role, views, hidden, ", ".join(cfg.privacy_policy.clearance(role)))


def _guard_class(spark: SparkSession) -> object:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        jvm.java.lang.Class.forName(_GUARD_CLASS, True, jvm.java.lang.Thread.currentThread().getContextClassLoader())
    except Exception as exc:  # py4j: ClassNotFoundException
        raise GuardUnavailableError(f"the SQL extension's jar is not on the driver's classpath ({_GUARD_CLASS}); "
                                    "pass --jars \"$(skewless jars)\" to spark-submit") from exc
    return jvm.io.skewless.sql.RoleGuard


def _prove_active(spark: SparkSession) -> None:
    """The session's parser must refuse a plain `SET` now; if it does not, the extension is not installed
    in this session (spark.sql.extensions was overridden) and nothing may run."""
    try:
        spark._jsparkSession.sessionState().sqlParser().parsePlan("SET")
    except Exception as exc:
        if "query refused" in str(exc):
            return
        raise
    raise GuardUnavailableError(f"the session was locked but its parser does not refuse commands: "
                                f"spark.sql.extensions must include {GUARD_EXTENSION}")


def role_of(spark: SparkSession) -> str | None:
    """The role the JVM holds for this session (None: unbound)."""
    role = _guard_class(spark).roleOf(spark._jsparkSession)  # type: ignore[attr-defined]
    return None if role is None else str(role)
