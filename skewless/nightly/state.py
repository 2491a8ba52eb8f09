"""The nightly's own tables: `nightly_steps` (a row per run and step, appended as each step ends) and
`nightly_runs` (a row per run, appended last: a run without one did not finish).

A step row is appended after the step's own commits, with the run's transaction id (txnAppId =
nightly:RUN, txnVersion = the step's position), so a retried append is a no-op; the last row of a
(date, step) says whether a rerun skips it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from skewless.core import names as N
from skewless.core.access import tag_schema
from skewless.core.delta import is_table, read_delta, retry_conflicts
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path
from skewless.nightly.plan import STEPS, StepResult

NIGHTLY_DATE = "nightly_date"
STEP_SCHEMA = T.StructType([
    T.StructField(N.RUN_ID, T.StringType(), False),
    T.StructField(NIGHTLY_DATE, T.DateType(), False),
    T.StructField("step", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("exit_code", T.IntegerType()),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()),
    T.StructField("seconds", T.DoubleType()),
    T.StructField("counts", T.StringType()),   # the step's JSON summary
    T.StructField("error", T.StringType()),
])
RUN_SCHEMA = T.StructType([
    T.StructField(N.RUN_ID, T.StringType(), False),
    T.StructField(NIGHTLY_DATE, T.DateType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("exit_code", T.IntegerType(), False),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()),
    T.StructField("seconds", T.DoubleType()),
    T.StructField("owner", T.StringType()),
    T.StructField("steps", T.StringType()),    # the run's JSON summary, every step
    T.StructField("report", T.StringType()),
])
# Counts, step names and file names: no record content, internal like the ingestion audit.
_STEP_TAGGED = tag_schema(STEP_SCHEMA, {f.name: "internal" for f in STEP_SCHEMA.fields})
_RUN_TAGGED = tag_schema(RUN_SCHEMA, {f.name: "internal" for f in RUN_SCHEMA.fields})


def _append(spark: SparkSession, path: str, schema: T.StructType, row: tuple[Any, ...], app: str, version: int) -> None:
    retry_conflicts(lambda: (
        local_frame(spark, [row], schema).coalesce(1).write.format("delta").mode("append")
        .option("txnAppId", app).option("txnVersion", version).option("mergeSchema", "true").save(path)),
        f"{app} row {version}")


def record_step(spark: SparkSession, warehouse: str, run_id: str, day: date, result: StepResult,
                started: datetime, finished: datetime) -> None:
    row = (run_id, day, result.step, STEPS.index(result.step) + 1, result.status, result.exit_code, started,
           finished, round(result.seconds, 3), json.dumps(dict(result.counts), sort_keys=True, default=str),
           result.error)
    _append(spark, table_path(warehouse, N.NIGHTLY_STEPS), _STEP_TAGGED, row, f"nightly:{run_id}",
            STEPS.index(result.step) + 1)


def record_run(spark: SparkSession, warehouse: str, run_id: str, day: date, summary: Mapping[str, Any],
               owner: str, started: datetime, finished: datetime) -> None:
    row = (run_id, day, summary["status"], summary["exit_code"], started, finished, summary["seconds"], owner,
           json.dumps(summary["steps"], sort_keys=True, default=str), summary.get("report"))
    _append(spark, table_path(warehouse, N.NIGHTLY_RUNS), _RUN_TAGGED, row, f"nightly:{run_id}", len(STEPS) + 1)


def completed(spark: SparkSession, warehouse: str, day: date) -> dict[str, str]:
    """step -> the status its latest recorded run for `day` ended with (a few rows: one per step run)."""
    return {step: str(row["status"]) for step, row in step_counts(spark, warehouse, day).items()}


def step_counts(spark: SparkSession, warehouse: str, day: date) -> dict[str, dict[str, Any]]:
    """step -> its latest recorded counts for `day` (the morning report of a resumed night)."""
    path = table_path(warehouse, N.NIGHTLY_STEPS)
    if not is_table(spark, path):
        return {}
    latest = Window.partitionBy("step").orderBy(F.desc("finished_at"), F.desc(N.RUN_ID))
    rows = (read_delta(spark, path).where(F.col(NIGHTLY_DATE) == F.lit(day))
            .withColumn("_n", F.row_number().over(latest)).where("_n = 1")
            .select("step", "status", "exit_code", "seconds", "counts", "error").collect())
    return {r["step"]: {"status": r["status"], "exit_code": r["exit_code"], "seconds": r["seconds"],
                        "error": r["error"], **json.loads(r["counts"] or "{}")} for r in rows}
