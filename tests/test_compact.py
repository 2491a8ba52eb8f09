"""Compaction end to end on small landing files: dedup, late records, reconciliation, reruns, crashes,
schema evolution. Tables live under tmp_path."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import read_table, table_property
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run

from .conftest import HOUR, KEY, frozen, record, write_hour

RUN_COLUMNS = [N.RUN_ID, N.INGESTED_AT]


def _compact(spark: SparkSession, wh: Config, hour: Any = HOUR) -> dict[str, Any]:
    return compact_run.compact_hour(spark, wh, hour, Progress("test"), KEY)


def _table(spark: SparkSession, wh: Config, name: str) -> DataFrame:
    return read_table(spark, wh.paths.warehouse, name)


def _reconciles(audit: dict[str, Any]) -> bool:
    return audit["records_read"] == audit["loaded"] + audit["duplicates"] + audit["quarantined"]


def test_dedup_late_records_quarantine_and_bad_files(spark: SparkSession, warehouse: Config) -> None:
    landing = warehouse.paths.landing
    r3_retry = record("r3", logged_at="2026-11-25T13:30:01.000Z", prediction={"score": 0.0})
    write_hour(landing, HOUR, "pod-0-a", [
        record("r1"), record("r2", logged_at="2026-11-25T13:20:00.000Z"),
        record("r2", logged_at="2026-11-25T13:20:00.000Z"),            # identical client retry
        r3_retry, record("r3", logged_at="2026-11-25T13:30:00.000Z"),  # retry first in file, logged later
        '{"request_id": "r5", "logged_at": ',                          # truncated line
        record("r4", logged_at="2026-11-25T12:50:00.000Z"),            # late: belongs to hour 12
    ])
    write_hour(landing, HOUR, "pod-1-empty", [], gz=False)
    cut = gzip.compress(b"".join(json.dumps(record(f"t{i}")).encode() + b"\n" for i in range(200)))
    truncated = Path(write_hour(landing, HOUR, "pod-2-crashed", []))
    truncated.write_bytes(cut[: len(cut) // 2])  # a host crashed mid-upload
    Path(landing, "predictions", "date=2026-11-25", "hour=13", ".pod-3.jsonl.gz.inprogress").write_bytes(b"x")

    audit = _compact(spark, warehouse)

    assert _reconciles(audit), audit
    assert audit["files"] == 3 and audit["duplicates_in_run"] == 2 and audit["duplicates_existing"] == 0
    assert audit["quarantined_by_reason"].get("malformed_json", 0) >= 1
    assert audit["late_records"] == 1 and audit["event_hours"] == ["2026-11-25T12", "2026-11-25T13"]
    assert audit["truncated_files"] == ["pod-2-crashed.jsonl.gz"]  # the complete gzip is not flagged
    assert audit["status"] == "incomplete" and "EOFException" in audit["unreadable_files"][0], audit
    logs = _table(spark, warehouse, N.FEATURE_LOGS)
    kept = logs.where(F.col(N.REQUEST_ID).isin("r1", "r2", "r3", "r4")).select(
        N.REQUEST_ID, F.date_format(N.LOGGED_AT, "HH:mm:ss").alias("at"), N.EVENT_HOUR, "prediction.score")
    expected = spark.createDataFrame(
        [("r1", "13:10:00", 13, 0.25), ("r2", "13:20:00", 13, 0.25), ("r3", "13:30:00", 13, 0.25),
         ("r4", "12:50:00", 12, 0.25)], kept.schema)
    assertDataFrameEqual(kept, expected)
    assert logs.where(F.col(N.REQUEST_ID).startswith("t")).count() > 0  # the readable part of the cut file
    q = _table(spark, warehouse, N.FEATURE_LOGS_QUARANTINE).where(F.col(N.SOURCE_FILE).contains("pod-0-a"))
    row = q.select(N.REASON, N.SOURCE_LINE, N.RAW_TEXT).first()
    assert row is not None and tuple(row) == ("malformed_json", 6, '{"request_id": "r5", "logged_at": ')
    # The cut file is quarantined as a whole, named, besides the lines read from it (which load).
    whole = _table(spark, warehouse, N.FEATURE_LOGS_QUARANTINE).where(F.col(N.SOURCE_LINE).isNull()).collect()
    assert [(r[N.SOURCE_FILE].rsplit("/", 1)[-1], r[N.REASON], r[N.RAW_TEXT]) for r in whole] == [
        ("pod-2-crashed.jsonl.gz", "unreadable_file", None)]
    runs = _table(spark, warehouse, N.INGESTION_AUDIT).collect()
    assert len(runs) == 1 and runs[0]["loaded"] == audit["loaded"] and runs[0]["status"] == "incomplete"
    assert runs[0]["truncated_files"] == ["pod-2-crashed.jsonl.gz"]


def test_rerun_is_idempotent_and_dedups_against_other_hours(spark: SparkSession, warehouse: Config) -> None:
    # OPTIMIZE at two files per event hour: the late c1 makes event hour 13's second file, so the rerun
    # below replaces hour 13's rows inside a file that also holds another landing hour's.
    optimize = dataclasses.replace(warehouse.compaction.optimize, min_files=2)
    warehouse = dataclasses.replace(warehouse, compaction=dataclasses.replace(warehouse.compaction, optimize=optimize))
    landing = warehouse.paths.landing
    nxt = HOUR + timedelta(hours=1)
    write_hour(landing, HOUR, "pod-0", [record("a1"), record("a2"), "not json"])
    write_hour(landing, nxt, "pod-0", [record("a2"), record("b1", logged_at="2026-11-25T14:05:00Z"),
                                       record("c1", logged_at="2026-11-25T13:50:00Z")])
    first = _compact(spark, warehouse)
    assert first["optimized_hours"] == []  # one file in event hour 13
    second = _compact(spark, warehouse, nxt)
    assert (second["loaded"], second["duplicates_existing"]) == (2, 1)  # a2 was loaded by hour 13
    assert second["optimized_hours"] == ["2026-11-25T13"]  # two files there now: compacted into one
    hour13 = _table(spark, warehouse, N.FEATURE_LOGS).where(f"{N.EVENT_HOUR} = 13")
    assert len(hour13.inputFiles()) == 1 and hour13.count() == 3
    # Collected: a cached read of a Delta path would be served again for the rerun's read.
    snapshot = [frozen(spark, _table(spark, warehouse, t).drop(*RUN_COLUMNS))
                for t in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE)]
    fl_path = f"{warehouse.paths.warehouse}/{N.FEATURE_LOGS}"
    stats = "delta.dataSkippingStatsColumns"
    spark.sql(f"ALTER TABLE delta.`{fl_path}` SET TBLPROPERTIES ('{stats}' = '{N.REQUEST_ID}')")

    again = _compact(spark, warehouse)

    # The properties the jobs rely on come back on the next write (statistics where replaceWhere prunes).
    assert table_property(spark, fl_path, stats) == compact_run.FEATURE_LOG_PROPERTIES[stats]

    for key in ("records_read", "loaded", "duplicates", "quarantined"):
        assert again[key] == first[key], key
    for before, name in zip(snapshot, (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE), strict=True):
        assertDataFrameEqual(_table(spark, warehouse, name).drop(*RUN_COLUMNS), before)
    audits = _table(spark, warehouse, N.INGESTION_AUDIT)
    assert audits.count() == 3
    assert all(_reconciles(r.asDict()) for r in audits.collect())


def test_new_features_extend_the_schema_and_unknown_models_load(spark: SparkSession, warehouse: Config) -> None:
    landing = warehouse.paths.landing
    nxt = HOUR + timedelta(hours=1)
    write_hour(landing, HOUR, "pod-0", [record("s1")])
    later = {"amount": 5.0, "embedding_norm": 0.75, "merchant_tier": "gold", "all_null_so_far": None}
    write_hour(landing, nxt, "pod-0", [
        record("s2", logged_at="2026-11-25T14:01:00Z", features=later),
        record("s3", logged_at="2026-11-25T14:02:00Z", model={"name": "ranker", "version": "v1"},
               features={"clicks_7d": 3}),
    ])
    _compact(spark, warehouse)
    audit = _compact(spark, warehouse, nxt)

    assert audit["new_features"] == {"clicks_7d": "numeric", "embedding_norm": "numeric",
                                     "merchant_tier": "categorical"}
    assert audit["unknown_models"] == ["ranker"]
    logs = _table(spark, warehouse, N.FEATURE_LOGS)
    got = logs.select(N.REQUEST_ID, "features.embedding_norm", "features.merchant_tier", "features.clicks_7d")
    expected = spark.createDataFrame(
        [("s1", None, None, None), ("s2", 0.75, "gold", None), ("s3", None, None, 3.0)], got.schema)
    assertDataFrameEqual(got, expected)
    assert dict(logs.select("features.*").dtypes)["embedding_norm"] == "double"
