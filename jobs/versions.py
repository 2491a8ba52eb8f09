"""`dataset_versions`: the record of every snapshot version, and how references resolve to one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import names as N
from jobs.access import tag_schema
from jobs.config import Warehouse
from jobs.dataset_config import Ref, parse_ref
from jobs.errors import UsageError
from jobs.tables import ensure_table, is_table, qualify, table_path

SNAPSHOTS_DIR = "snapshots"
VERSIONS_SCHEMA = T.StructType([
    T.StructField("name", T.StringType(), False),
    T.StructField("version", T.IntegerType(), False),
    T.StructField("created_at", T.TimestampType()),
    T.StructField("as_of", T.DateType()),
    T.StructField("window_start", T.TimestampType()),
    T.StructField("window_end", T.TimestampType()),
    T.StructField("label_cutoff", T.TimestampType()),
    T.StructField("rows", T.LongType()),
    T.StructField("rows_per_split", T.MapType(T.StringType(), T.LongType())),
    T.StructField("schema_json", T.StringType()),
    T.StructField("content_hash", T.StringType()),
    T.StructField("lineage", T.MapType(T.StringType(), T.LongType())),  # source table -> Delta version read
    T.StructField("location", T.StringType()),
    T.StructField("definition", T.StringType()),  # the dataset YAML as loaded, JSON
    T.StructField("suite", T.StringType()),
    T.StructField("suite_success", T.BooleanType()),
    T.StructField("failed_expectations", T.ArrayType(T.StringType())),
    T.StructField("report_path", T.StringType()),
    T.StructField("status", T.StringType()),  # published | failed
    T.StructField("materialize_s", T.DoubleType()),
    T.StructField("validate_s", T.DoubleType()),
])
TAGGED = tag_schema(VERSIONS_SCHEMA, {f.name: "internal" for f in VERSIONS_SCHEMA.fields})


def snapshot_path(wh: Warehouse, name: str, version: int) -> str:
    return f"{qualify(wh.paths.warehouse).rstrip('/')}/{SNAPSHOTS_DIR}/{name}/v{version:04d}"


def versions_table(spark: SparkSession, wh: Warehouse) -> DataFrame:
    path = table_path(wh.paths.warehouse, N.DATASET_VERSIONS)
    if not is_table(spark, path):
        return spark.createDataFrame([], VERSIONS_SCHEMA)
    return spark.read.format("delta").load(path)


def next_version(versions: DataFrame, name: str) -> int:
    row = versions.where(F.col("name") == name).agg(F.max("version")).first()
    return int(row[0] or 0) + 1 if row is not None else 1


def record_version(spark: SparkSession, wh: Warehouse, record: dict[str, Any]) -> None:
    """Append the version's row; txnAppId/txnVersion make a retried append of the same version a no-op."""
    path = table_path(wh.paths.warehouse, N.DATASET_VERSIONS)
    ensure_table(spark, path, TAGGED, (), {})
    df = spark.createDataFrame([tuple(record[f.name] for f in TAGGED.fields)], TAGGED)
    (df.coalesce(1).write.format("delta").mode("append").option("txnAppId", f"snapshot:{record['name']}")
     .option("txnVersion", int(record["version"])).save(path))


def resolve(versions: DataFrame, text: str | Ref, *, published_only: bool = True) -> Row:
    """The version row a reference names. `@latest` and `@DATE` only ever pick published versions;
    `@N` picks N, and refuses a failed N unless `published_only` is off (to inspect it)."""
    ref = parse_ref(text) if isinstance(text, str) else text
    mine = versions.where(F.col("name") == ref.name)
    label = text if isinstance(text, str) else f"{ref.name}@{ref.kind}"
    if ref.kind == "version":
        row = mine.where(F.col("version") == ref.version).first()
        if row is None:
            raise UsageError(f"{label}: no such version ({_known(mine)})")
        if published_only and row["status"] != "published":
            raise UsageError(f"{label}: version {ref.version} {row['status']} its quality gate; it is not published")
        return row
    published = mine.where(F.col("status") == "published")
    if ref.kind == "date":
        assert ref.day is not None
        before = datetime.combine(ref.day, datetime.min.time()) + timedelta(days=1)
        published = published.where(F.col("created_at") < F.lit(before))
    row = published.orderBy(F.col("version").desc()).first()
    if row is None:
        raise UsageError(f"{label}: no published version{' by then' if ref.kind == 'date' else ''} ({_known(mine)})")
    return row


def _known(mine: DataFrame) -> str:
    rows = mine.select("version", "status").orderBy("version").collect()
    return "versions: " + (", ".join(f"{r['version']} {r['status']}" for r in rows) or "none")
