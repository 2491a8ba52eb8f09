"""The `skew_tests` Delta table: one row per skew-test run, so the history is queryable with `skewless sql`.

Appended under the run's own transaction id (txnAppId = skew_test:RUN_ID): a retried append is a no-op.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from skewless.core.access import tag_schema
from skewless.core.delta import retry_conflicts
from skewless.core.localframe import local_frame

SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("tested_at", T.TimestampType(), False),
    T.StructField("model_name", T.StringType(), False),
    T.StructField("model_version", T.StringType(), False),
    T.StructField("package_hash", T.StringType(), False),
    T.StructField("dataset", T.StringType(), False),
    T.StructField("source", T.StringType(), False),
    T.StructField("examples", T.LongType(), False),
    T.StructField("tolerance", T.DoubleType(), False),
    T.StructField("max_abs_diff", T.DoubleType(), True),
    T.StructField("p99_abs_diff", T.DoubleType(), True),
    T.StructField("mean_abs_diff", T.DoubleType(), True),
    T.StructField("over_tolerance", T.LongType(), False),
    T.StructField("served_compared", T.LongType(), False),
    T.StructField("passed", T.BooleanType(), False),
    T.StructField("stage", T.StringType(), True),
    T.StructField("comparisons", T.IntegerType(), True),
    T.StructField("report_path", T.StringType(), False),
    T.StructField("report_json", T.StringType(), False),
])
TAGGED = tag_schema(SCHEMA, {f.name: "internal" for f in SCHEMA.fields})


def row_of(report: dict[str, Any]) -> tuple[Any, ...]:
    loc = report.get("localization") or {}
    return (report["run_id"], datetime.fromisoformat(report["tested_at"]), report["model"]["name"],
            report["model"]["version"], report["package_hash"], report["dataset"], report["source"],
            int(report["examples"]), float(report["tolerance"]), _num(report["max_abs_diff"]),
            _num(report["p99_abs_diff"]), _num(report["mean_abs_diff"]), int(report["over_tolerance"]),
            int(report["served"]["compared"]), bool(report["passed"]), loc.get("stage"), loc.get("comparisons"),
            report["report_path"], json.dumps(report, sort_keys=True, default=str))


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def append(spark: SparkSession, path: str, report: dict[str, Any]) -> None:
    df = local_frame(spark, [row_of(report)], TAGGED)
    retry_conflicts(lambda: df.coalesce(1).write.format("delta").mode("append")
                    .option("txnAppId", f"skew_test:{report['run_id']}").option("txnVersion", 1).save(path),
                    f"skew_tests row of {report['run_id']}")
