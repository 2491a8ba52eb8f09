"""Where tables live and small Delta/Hadoop helpers shared by jobs (session in, plain values out)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs import names as N
from jobs.errors import TableNotFoundError

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def qualify(path: str) -> str:
    """Local paths become absolute (Spark resolves relative ones against its own cwd); URIs pass."""
    return path if _SCHEME.match(path) else str(Path(path).resolve())


def table_path(warehouse: str, name: str) -> str:
    return f"{qualify(warehouse).rstrip('/')}/{name}"


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def read_table(spark: SparkSession, warehouse: str, name: str) -> DataFrame:
    path = table_path(warehouse, name)
    if not is_table(spark, path):
        raise TableNotFoundError(name, path)
    return spark.read.format("delta").load(path)


def last_commit(spark: SparkSession, path: str) -> dict[str, Any]:
    """Version, operation and metrics of a table's latest commit (one log entry, not data)."""
    row = DeltaTable.forPath(spark, path).history(1).select("version", "operation", "operationMetrics").first()
    assert row is not None
    return {"version": int(row["version"]), "operation": row["operation"],
            "metrics": dict(row["operationMetrics"] or {})}


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


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Hadoop Path) for any path or URI: local disk and object stores alike."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file (a report) through Hadoop's FileSystem."""
    fs, hpath = hadoop_fs(spark, path)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def delete_path(spark: SparkSession, path: str) -> None:
    fs, hpath = hadoop_fs(spark, path)
    fs.delete(hpath, True)


@dataclass(frozen=True)
class LandingFile:
    path: str
    size: int


def list_files(spark: SparkSession, folder: str, suffixes: tuple[str, ...]) -> list[LandingFile]:
    """Files directly in `folder` (any Hadoop filesystem), skipping hidden and in-progress names."""
    fs, hpath = hadoop_fs(spark, qualify(folder))
    if not fs.exists(hpath):
        return []
    out = []
    for status in fs.listStatus(hpath):
        name = status.getPath().getName()
        if status.isFile() and not name.startswith((".", "_")) and name.endswith(suffixes):
            out.append(LandingFile(status.getPath().toString(), int(status.getLen())))
    return sorted(out, key=lambda f: f.path)


def read_landing_text(spark: SparkSession, files: list[LandingFile]) -> DataFrame:
    """Landing lines with their file and position: `_value`, `source_file`, `_split_start`, `_row_id`.

    ignoreCorruptFiles: a truncated gzip yields the lines before the cut instead of failing the run.
    No files gives the same columns, empty, so callers need no special case."""
    if not files:
        return spark.createDataFrame([], f"{N.RAW_VALUE} string, {N.SOURCE_FILE} string, "
                                         f"{N.SPLIT_START} long, {N.ROW_ID} long")
    df = spark.read.option("ignoreCorruptFiles", "true").text([f.path for f in files])
    return df.select(
        F.col("value").alias(N.RAW_VALUE),
        F.col("_metadata.file_path").alias(N.SOURCE_FILE),
        F.col("_metadata.file_block_start").alias(N.SPLIT_START),
        F.monotonically_increasing_id().alias(N.ROW_ID),
    )


def gzip_isize(spark: SparkSession, path: str, size: int) -> int | None:
    """The last 4 bytes of a gzip file: its uncompressed size mod 2^32 (little-endian). One small read."""
    if size < 18:  # shorter than an empty gzip member: nothing to trust
        return None
    fs, hpath = hadoop_fs(spark, path)
    stream = fs.open(hpath)
    try:
        stream.seek(size - 4)
        big_endian = int(stream.readInt()) & 0xFFFFFFFF  # DataInput reads big-endian; gzip stores little
        return int.from_bytes(big_endian.to_bytes(4, "big"), "little")
    finally:
        stream.close()


def list_subfolders(spark: SparkSession, folder: str, prefix: str) -> list[str]:
    fs, hpath = hadoop_fs(spark, qualify(folder))
    if not fs.exists(hpath):
        return []
    return sorted(s.getPath().getName() for s in fs.listStatus(hpath)
                  if s.isDirectory() and s.getPath().getName().startswith(prefix))
