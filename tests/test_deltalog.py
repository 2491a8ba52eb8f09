"""The transaction-log reader (`core.deltalog`) and the bookkeeping built on it (`core.delta`) answer
exactly what Delta's own history and DESCRIBE DETAIL answer, past checkpoints, after log cleanup and
without checksums; and `local_frame` builds the same rows and schema as `createDataFrame`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from skewless.core.delta import commit_of, file_count, last_commit, others_added_rows, table_properties
from skewless.core.deltalog import checksum, commit_at, latest_version
from skewless.core.localframe import local_frame

COMMITS = 13  # past the checkpoint written at version 5 and 10 (checkpointInterval 5)


def _write(spark: SparkSession, path: str, i: int, run_id: str) -> None:
    (spark.range(i, i + 3).selectExpr("id", "id % 2 AS part").write.format("delta").mode("append")
     .partitionBy("part").option("userMetadata", json.dumps({"run_id": run_id})).save(path))


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("deltalog") / "t")
    _write(spark, path, 0, "run-0")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.checkpointInterval' = '5', 'x.y' = 'z')")
    for i in range(2, COMMITS):
        _write(spark, path, i * 10, f"run-{i}")
    return path


def _history(spark: SparkSession, path: str) -> dict[int, tuple[Any, ...]]:
    rows = DeltaTable.forPath(spark, path).history().collect()
    return {int(r["version"]): (r["operation"], dict(r["operationMetrics"] or {}), r["userMetadata"]) for r in rows}


def test_the_log_reader_answers_what_delta_answers(spark: SparkSession, table: str) -> None:
    assert (Path(table) / "_delta_log" / "_last_checkpoint").is_file()  # the gallop starts past a checkpoint
    history = _history(spark, table)
    assert latest_version(spark, table) == max(history) == COMMITS - 1
    for version, (operation, metrics, meta) in history.items():
        commit = commit_at(spark, table, version)
        assert commit is not None and (commit.operation, commit.metrics, commit.user_metadata) == (
            operation, metrics, meta), version
    detail = DeltaTable.forPath(spark, table).detail().first()
    assert detail is not None
    assert file_count(spark, table) == detail["numFiles"] > 0
    assert table_properties(spark, table) == dict(detail["properties"]) and table_properties(spark, table)["x.y"] == "z"
    assert last_commit(spark, table) == {"version": COMMITS - 1, "operation": "WRITE",
                                        "metrics": history[COMMITS - 1][1]}
    assert commit_of(spark, table, "run-4")["version"] == 4  # version 1 is the ALTER
    assert commit_of(spark, table, "run-99") == {"version": COMMITS - 1, "operation": None,
                                                 "metrics": {"numOutputRows": "0"}}
    assert others_added_rows(spark, table, 9, "run-11") == [10, 12]  # version 11 is run-11: mine


def test_cleaned_up_logs_missing_checksums_and_no_table(spark: SparkSession, table: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    (copy / "_delta_log").mkdir(parents=True)
    for f in (Path(table) / "_delta_log").iterdir():
        name = f.name
        # Log cleanup removes entries older than the last checkpoint; and no checksum anywhere.
        if f.is_file() and not name.endswith(".crc") and not (name[:20].isdigit() and int(name[:20]) < 7):
            (copy / "_delta_log" / name).write_bytes(f.read_bytes())
    assert latest_version(spark, str(copy)) == COMMITS - 1
    assert commit_at(spark, str(copy), 3) is None and checksum(spark, str(copy), COMMITS - 1) is None
    (copy / "_delta_log" / "_last_checkpoint").unlink()  # no pointer either, and no version 0: listed
    assert latest_version(spark, str(copy)) == COMMITS - 1
    assert latest_version(spark, str(tmp_path / "nothing")) is None
    # Without a checksum the answers come from Delta's DESCRIBE DETAIL, equal to the checksum's.
    bare = tmp_path / "bare"
    spark.range(4).write.format("delta").save(str(bare))
    expected = (file_count(spark, str(bare)), table_properties(spark, str(bare)))
    for crc in (bare / "_delta_log").glob("*.crc"):
        crc.unlink()
    assert (file_count(spark, str(bare)), table_properties(spark, str(bare))) == expected


SCHEMA = T.StructType([
    T.StructField("id", T.StringType(), False, {"access": "internal"}),
    T.StructField("at", T.TimestampType()), T.StructField("n", T.LongType()),
    T.StructField("by", T.MapType(T.StringType(), T.LongType())), T.StructField("tags", T.ArrayType(T.StringType())),
])


def test_local_frame_equals_create_dataframe(spark: SparkSession) -> None:
    rows = [("a", datetime(2026, 11, 25, 13, 5, 7, 123456), 3, {"x": 1, "y": 2}, ["p", "q"]),
            ("b", None, None, None, None)]
    built = local_frame(spark, rows, SCHEMA)
    assert built.schema == SCHEMA and built.schema.json() == SCHEMA.json()  # metadata and nullability too
    assertDataFrameEqual(built, spark.createDataFrame(rows, SCHEMA))
    assert local_frame(spark, [], SCHEMA).schema == SCHEMA and local_frame(spark, [], SCHEMA).count() == 0
    with pytest.raises(ValueError, match="'id' with null values to non-nullable"):
        local_frame(spark, [(None, None, None, None, None)], SCHEMA)


def test_tables_describe_from_the_log_answers_what_spark_answers(spark: SparkSession, guard_wh: Any) -> None:
    """`skewless tables describe` reads the log through delta-rs (no JVM): the same partitions, file
    count, size, properties and tagged columns as Spark's DESCRIBE DETAIL and schema."""
    from skewless.core.delta import read_delta
    from skewless.core.names import FEATURE_LOGS, FEATURE_LOGS_QUARANTINE, INGESTION_AUDIT
    from skewless.core.paths import table_path
    from skewless.sql.tables_job import _columns, describe

    for name in (FEATURE_LOGS, FEATURE_LOGS_QUARANTINE, INGESTION_AUDIT):
        path = table_path(guard_wh.paths.warehouse, name)
        detail = DeltaTable.forPath(spark, path).detail().first()
        assert detail is not None
        info = describe(guard_wh, name)
        assert (info["partitions"], info["files"], info["bytes"], info["properties"]) == (
            list(detail["partitionColumns"]), detail["numFiles"], detail["sizeInBytes"], dict(detail["properties"]))
        assert info["columns"] == _columns(guard_wh, name, read_delta(spark, path).schema)
        assert isinstance(info["files"], int) and info["files"] > 0
        assert bool(info["privacy_policy"]) or name == INGESTION_AUDIT  # the tagged writes record their policy
    tags = {c["column"]: c["access"] for c in describe(guard_wh, FEATURE_LOGS)["columns"]}  # type: ignore[attr-defined]
    assert tags["entity.email"] == "restricted"
