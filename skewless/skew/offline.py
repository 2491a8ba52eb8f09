"""The skew test's Spark side: pick logged examples and run them through the fitted offline pipeline.

One Spark job: a deterministic sample (the N smallest seeded hashes of request_id: the same examples on
every run over the same data), the pipeline's transform, and one collect of at most N rows with every
stage's output. Nothing else comes to the driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.errors import UsageError
from skewless.core.frames import require_columns, served_between
from skewless.skew.evaluate import SERVED_SCORE, SERVED_VERSION

SAMPLE_SEED = "skewless-skew-test"


def raw_features(df: DataFrame, features: list[str]) -> list[Column]:
    """Each input feature from a table's top level (dataset versions, `logged_at`) or `features` struct."""
    struct = df.schema[N.FEATURES].dataType if N.FEATURES in df.columns else T.StructType()
    assert isinstance(struct, T.StructType)
    inner = set(struct.fieldNames())
    out = []
    for f in features:
        if f in df.columns:
            out.append(F.col(f).alias(f))
        elif f in inner:
            out.append(F.col(N.FEATURES)[f].alias(f))
        else:
            raise UsageError(f"input feature {f!r} is in neither the table's columns nor its features "
                             f"(columns: {df.columns}; features: {sorted(inner)})")
    return out


def from_feature_logs(logs: DataFrame, model: str, start: datetime, end: datetime, features: list[str]) -> DataFrame:
    """Logged examples of `model` served in [start, end): raw vectors as served, with the served score."""
    require_columns(logs, (N.REQUEST_ID, N.MODEL, N.PREDICTION, N.EVENT_DATE, N.LOGGED_AT), "from_feature_logs")
    rows = served_between(logs, model, start, end)
    return rows.select(N.REQUEST_ID, F.col(N.MODEL)["version"].alias(SERVED_VERSION),
                       F.col(N.PREDICTION)[N.SCORE].cast("double").alias(SERVED_SCORE), *raw_features(rows, features))


def from_dataset(rows: DataFrame, features: list[str]) -> DataFrame:
    """A dataset version's rows (served vectors, as logged); the served score is joined on later."""
    require_columns(rows, (N.REQUEST_ID, "model_version"), "from_dataset")
    return rows.select(N.REQUEST_ID, F.col("model_version").alias(SERVED_VERSION),
                       F.lit(None).cast("double").alias(SERVED_SCORE), *raw_features(rows, features))


def with_served_scores(examples: DataFrame, logs: DataFrame, first_day: Any, last_day: Any) -> DataFrame:
    """The score production logged for each example (feature_logs holds one row per request id)."""
    scores = (logs.where((F.col(N.EVENT_DATE) >= F.lit(first_day)) & (F.col(N.EVENT_DATE) <= F.lit(last_day)))
              .select(N.REQUEST_ID, F.col(N.PREDICTION)[N.SCORE].cast("double").alias("_logged")))
    return (examples.join(scores, on=N.REQUEST_ID, how="left")
            .withColumn(SERVED_SCORE, F.col("_logged")).drop("_logged"))


def sample(examples: DataFrame, n: int, seed: str = SAMPLE_SEED) -> DataFrame:
    """The n examples with the smallest seeded hash of request_id: deterministic, spread over the input."""
    key = F.xxhash64(F.lit(seed), F.col(N.REQUEST_ID))
    return examples.orderBy(key, F.col(N.REQUEST_ID)).limit(n)


def offline_table(model: PipelineModel, examples: DataFrame, stages: list[dict[str, Any]]) -> pa.Table:
    """Every stage's outputs for the examples, as Arrow: vectors as arrays, the score as a number."""
    out = model.transform(examples)
    cols = [F.col(c) for c in examples.columns]
    for st in stages:
        for o in st["outputs"]:
            if st["kind"] == "logistic_regression":
                prob = st["params"]["spark_probability_column"]
                cols.append(vector_to_array(F.col(prob))[1].alias(o["column"]))
            elif o["slots"] is not None:
                cols.append(vector_to_array(F.col(o["column"])).alias(o["column"]))
            else:
                cols.append(F.col(o["column"]))
    return out.select(*cols).toArrow()
