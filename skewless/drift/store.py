"""The drift tables: `drift_references` (a reference's cuts and cell counts, computed once per reference
and settings, then reused by every hourly check) and `drift_metrics` (the history, one row per check,
segment, feature and metric).

Both writes are idempotent, one commit each: a reference's rows replace those of the same key (the
hash of the model, the reference, its content hash, the features and the binning settings), and a
check's rows replace those of the same check id, so a rerun converges on one set of rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core.delta import is_table, read_delta, replace_rows
from skewless.core.localframe import local_frame
from skewless.core.policy import PrivacyPolicy

# n: rows; w: their weights' sum (= n unweighted; key -2: squared weights). Delta: no NOT NULL in arrays.
CELL = T.StructType([T.StructField("k", T.IntegerType(), True), T.StructField("s", T.StringType(), True),
                     T.StructField("n", T.LongType(), True), T.StructField("w", T.DoubleType(), True)])
REFERENCE_SCHEMA = T.StructType([
    T.StructField("ref_key", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("reference", T.StringType(), False),
    T.StructField("created_at", T.TimestampType(), False),
    T.StructField("feature", T.StringType(), False),
    T.StructField("feature_index", T.IntegerType(), False),
    T.StructField("feature_type", T.StringType(), False),
    T.StructField("cuts", T.ArrayType(T.DoubleType(), True), False),
    T.StructField("psi_cuts", T.ArrayType(T.DoubleType(), True), False),
    T.StructField("cells", T.ArrayType(CELL, True), False),
])
METRICS_SCHEMA = T.StructType([
    T.StructField("check_id", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("run_at", T.TimestampType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("reference", T.StringType(), False),
    T.StructField("current_slice", T.StringType(), False),
    T.StructField("slice_start", T.TimestampType(), False),
    T.StructField("slice_end", T.TimestampType(), False),
    T.StructField("segment_by", T.StringType(), True),
    T.StructField("segment", T.StringType(), False),
    T.StructField("feature", T.StringType(), False),
    T.StructField("feature_type", T.StringType(), False),
    T.StructField("feature_status", T.StringType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("value", T.DoubleType(), True),
    T.StructField("warn", T.DoubleType(), False),
    T.StructField("alert", T.DoubleType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("reference_value", T.DoubleType(), True),
    T.StructField("current_value", T.DoubleType(), True),
    T.StructField("p_value", T.DoubleType(), True),
    T.StructField("error_bound", T.DoubleType(), True),
    T.StructField("detail", T.StringType(), True),
    T.StructField("reference_rows", T.LongType(), False),
    T.StructField("current_rows", T.LongType(), False),
])


def cached_reference(spark: SparkSession, path: str, ref_key: str) -> list[dict[str, Any]] | None:
    """The stored rows of a reference (one per feature), None when it was never computed."""
    if not is_table(spark, path):
        return None
    rows = read_delta(spark, path).where(F.col("ref_key") == ref_key).orderBy("feature_index").collect()
    return [r.asDict(recursive=True) for r in rows] or None


def save_reference(spark: SparkSession, path: str, rows: list[dict[str, Any]], policy: PrivacyPolicy) -> None:
    """One commit: the reference's rows replace any earlier computation under the same key."""
    df = local_frame(spark, [tuple(r[f.name] for f in REFERENCE_SCHEMA.fields) for r in rows], REFERENCE_SCHEMA)
    key = rows[0]["ref_key"]
    _check_hex(key)
    replace_rows(df.coalesce(1), path, (), f"ref_key = '{key}'", {}, policy, f"drift_ref:{key}")


def save_metrics(spark: SparkSession, path: str, rows: list[dict[str, Any]], check_id: str,
                 policy: PrivacyPolicy, run_id: str) -> None:
    """One commit: this check's rows replace any earlier run of the same check."""
    df = local_frame(spark, [tuple(r.get(f.name) for f in METRICS_SCHEMA.fields) for r in rows], METRICS_SCHEMA)
    _check_hex(check_id)
    replace_rows(df.coalesce(1), path, (), f"check_id = '{check_id}'", {}, policy, run_id)


def _check_hex(key: str) -> None:
    if not key or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"key {key!r} is not hex")  # it goes into a replaceWhere predicate


def psi_trend(spark: SparkSession, path: str, model: str, reference: str, features: list[str],
              before: datetime, last: int = 24) -> dict[str, list[tuple[str, float]]]:
    """Each feature's PSI over the latest `last` checks of its model and reference (segment `all`) up
    to `before` (the current slice's start included), oldest first: the report's trend lines."""
    if not features or not is_table(spark, path):
        return {}
    rows = (read_delta(spark, path)
            .where((F.col("model") == model) & (F.col("reference") == reference) & (F.col("metric") == "psi")
                   & (F.col("segment") == "all") & F.col("feature").isin(*features)
                   & (F.col("slice_start") <= F.lit(before)))
            .select("feature", "slice_start", "current_slice", "value")
            .dropDuplicates(["feature", "current_slice"]).collect())
    out: dict[str, list[tuple[datetime, str, float]]] = {}
    for r in rows:
        out.setdefault(r["feature"], []).append((r["slice_start"], r["current_slice"], float(r["value"])))
    return {f: [(s, v) for _, s, v in sorted(points)[-last:]] for f, points in out.items()}
