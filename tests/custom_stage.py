"""A team's own pipeline stage, both sides: amount per transaction in the last 24 hours."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def per_txn_serving(cols: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"amount_per_txn": cols["amount"] / (float(options["smoothing"]) + cols["txn_count_24h"])}


def per_txn_spark(df: DataFrame, inputs: dict[str, str], outputs: dict[str, str], options: dict[str, Any]) -> DataFrame:
    return df.withColumn(outputs["amount_per_txn"], F.col(inputs["amount"])
                         / (F.lit(float(options["smoothing"])) + F.col(inputs["txn_count_24h"])))


def per_txn_serving_unsmoothed(cols: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, np.ndarray]:
    """The bug: the serving port forgot the smoothing term."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"amount_per_txn": cols["amount"] / np.maximum(cols["txn_count_24h"], 1.0)}
