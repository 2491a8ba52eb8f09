"""Delta helpers shared by every job: the one table reader, table creation, commits and their metrics.

Session in, plain values or DataFrames out. Every write that replaces a unit of work (a landing hour,
a label date) goes through `replace_rows`: one commit, access tags on every column, the privacy
policy's version recorded with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from skewless.core.access import POLICY_PROPERTY, tagged
from skewless.core.errors import TableNotFoundError
from skewless.core.paths import table_path
from skewless.core.policy import PrivacyPolicy


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def read_delta(spark: SparkSession, path: str, *, version: int | None = None) -> DataFrame:
    """The one way the jobs read a Delta table: its latest version, or `version` (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_table(spark: SparkSession, warehouse: str, name: str, *, version: int | None = None) -> DataFrame:
    """A warehouse table by name; TableNotFoundError (exit 2) when no job has written it yet."""
    path = table_path(warehouse, name)
    if not is_table(spark, path):
        raise TableNotFoundError(name, path)
    return read_delta(spark, path, version=version)


def last_commit(spark: SparkSession, path: str) -> dict[str, Any]:
    """Version, operation and metrics of a table's latest commit (one log entry, not data)."""
    row = DeltaTable.forPath(spark, path).history(1).select("version", "operation", "operationMetrics").first()
    assert row is not None
    return {"version": int(row["version"]), "operation": row["operation"],
            "metrics": dict(row["operationMetrics"] or {})}


def commit_metrics(spark: SparkSession, path: str, action: Callable[[], object]) -> dict[str, str]:
    """Run `action` (a MERGE, a DELETE) on the table at `path` and return the metrics of the commit it
    made; {} when it made none (a Delta operation that changes nothing may not commit, and the latest
    commit is then someone else's)."""
    before = last_commit(spark, path)["version"]
    action()
    after = last_commit(spark, path)
    return dict(after["metrics"]) if after["version"] != before else {}


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The Delta table's properties (e.g. delta.enableChangeDataFeed)."""
    detail = DeltaTable.forPath(spark, path).detail().select("properties").first()
    return {} if detail is None else dict(detail[0] or {})


def table_property(spark: SparkSession, path: str, key: str) -> str | None:
    """One Delta table property, None when unset."""
    return table_properties(spark, path).get(key)


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a session conf for one Delta call (VACUUM's check, a commit's userMetadata), then restore it."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def ensure_table(spark: SparkSession, path: str, schema: StructType, partitions: tuple[str, ...],
                 properties: dict[str, str]) -> None:
    """Create the Delta table with its partitioning and properties if it does not exist yet; on an
    existing table, restore any of those properties that differ (a table created before a property
    was introduced, or one changed by hand): the jobs rely on them (change feed, statistics columns)."""
    if is_table(spark, path):
        if properties:
            current = table_properties(spark, path)
            differ = {k: v for k, v in properties.items() if current.get(k) != v}
            if differ:
                pairs = ", ".join(f"'{k}' = '{_sql_quote(v)}'" for k, v in sorted(differ.items()))
                spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy(*partitions)
    for key, value in properties.items():
        builder = builder.property(key, value)
    builder.execute()


def _sql_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def replace_rows(df: DataFrame, path: str, partitions: tuple[str, ...], where: str,
                 properties: dict[str, str], policy: PrivacyPolicy) -> dict[str, Any]:
    """One Delta commit that swaps the rows matching `where` (a landing hour, a label date) for `df`:
    a rerun converges, a crash before the commit leaves the previous version. New columns merge.
    Columns carry their access tags; the commit records the privacy policy's version."""
    df = tagged(df, path.rstrip("/").rsplit("/", 1)[-1], policy)
    ensure_table(spark=df.sparkSession, path=path, schema=df.schema, partitions=partitions,
                 properties={**properties, POLICY_PROPERTY: policy.tag})
    (df.write.format("delta").mode("overwrite").option("mergeSchema", "true").option("replaceWhere", where)
     .option("userMetadata", f'{{"{POLICY_PROPERTY}": "{policy.tag}"}}').partitionBy(*partitions).save(path))
    return last_commit(df.sparkSession, path)
