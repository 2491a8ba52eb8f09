"""`dataset_versions`: the record of every snapshot version, and how references resolve to one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.access import tag_schema
from skewless.core.config import Config
from skewless.core.delta import conflict_name, ensure_table, is_table, read_delta, retry_conflicts
from skewless.core.errors import VersionTakenError
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path
from skewless.core.refs import Ref, choose_version, parse_ref

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


def versions_table(spark: SparkSession, cfg: Config) -> DataFrame:
    path = table_path(cfg.paths.warehouse, N.DATASET_VERSIONS)
    if not is_table(spark, path):
        return local_frame(spark, [], VERSIONS_SCHEMA)
    return read_delta(spark, path)


def next_version(versions: DataFrame, name: str) -> int:
    row = versions.where(F.col("name") == name).agg(F.max("version")).first()
    return int(row[0] or 0) + 1 if row is not None else 1


RESERVATION_SCHEMA = T.StructType([
    T.StructField("name", T.StringType(), False), T.StructField("version", T.IntegerType(), False),
    T.StructField("token", T.StringType(), False), T.StructField("reserved_at", T.TimestampType()),
])


def reserve_version(spark: SparkSession, cfg: Config, name: str, *, attempts: int = 5) -> int:
    """Take the next version number of `name` for this run alone, before anything is written.

    One append per try to `dataset_reservations`, under the Delta transaction id `reserve:NAME` with
    the number as its version: of two runs that try the same number, Delta lets one commit (the other
    gets a conflict, or its append is skipped as already done), and the row read back names the
    winner. The loser tries the next number; numbers are unique and increasing, and may skip one (a
    run that crashed, or found its content unchanged, burned it)."""
    path = table_path(cfg.paths.warehouse, N.DATASET_RESERVATIONS)
    retry_conflicts(lambda: ensure_table(spark, path, RESERVATION_SCHEMA, (), {}), f"create {path}")
    token = uuid.uuid4().hex
    tried: list[int] = []
    for _ in range(attempts):
        taken = read_delta(spark, path).where(F.col("name") == name).agg(F.max("version")).first()
        number = max(next_version(versions_table(spark, cfg), name), int((taken and taken[0]) or 0) + 1)
        row = spark.createDataFrame([(name, number, token, datetime.now(UTC).replace(tzinfo=None))],
                                    RESERVATION_SCHEMA)
        try:
            (row.write.format("delta").mode("append").option("txnAppId", f"reserve:{name}")
             .option("txnVersion", number).save(path))
        except Exception as exc:
            if conflict_name(exc) is None:
                raise
            tried.append(number)
            continue
        owners = read_delta(spark, path).where((F.col("name") == name) & (F.col("version") == number)).collect()
        if [r["token"] for r in owners] == [token]:
            return number
        tried.append(number)
    raise VersionTakenError(name, tried)


def record_version(spark: SparkSession, cfg: Config, record: dict[str, Any]) -> None:
    """Append the version's row; txnAppId/txnVersion make a retried append of the same version a no-op."""
    path = table_path(cfg.paths.warehouse, N.DATASET_VERSIONS)
    df = local_frame(spark, [tuple(record[f.name] for f in TAGGED.fields)], TAGGED)

    def commit() -> None:
        ensure_table(spark, path, TAGGED, (), {})
        (df.coalesce(1).write.format("delta").mode("append").option("txnAppId", f"snapshot:{record['name']}")
         .option("txnVersion", int(record["version"])).save(path))

    retry_conflicts(commit, f"record {record['name']}@{record['version']}")


def resolve(versions: DataFrame, text: str | Ref, *, published_only: bool = True) -> dict[str, Any]:
    """The version record a reference names (the rule: `core.refs.choose_version`). Only the named
    dataset's rows reach the driver: one per version."""
    ref = parse_ref(text) if isinstance(text, str) else text
    rows = [r.asDict(recursive=True) for r in versions.where(F.col("name") == ref.name).collect()]
    return dict(choose_version(rows, text, published_only=published_only))
