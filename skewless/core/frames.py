"""Checks every pure transform makes at its edges, and the one served-slice filter of feature_logs."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.errors import MissingColumnsError


def require_columns(df: DataFrame, expected: tuple[str, ...], where: str) -> None:
    """Fail with the missing names (expected vs. actual) before Spark fails with an analysis error."""
    if not set(expected) <= set(df.columns):
        raise MissingColumnsError(where, expected, df.columns)


def served_between(logs: DataFrame, model: str, start: datetime, end: datetime) -> DataFrame:
    """feature_logs rows of `model` served in [start, end): logged_at (event time) bounds, with the
    event_date partitions they can fall in, so only those partitions are read."""
    require_columns(logs, (N.EVENT_DATE, N.LOGGED_AT, N.MODEL), "served_between")
    return logs.where((F.col(N.EVENT_DATE) >= F.lit(start.date())) & (F.col(N.EVENT_DATE) <= F.lit(end.date()))
                      & (F.col(N.LOGGED_AT) >= F.lit(start)) & (F.col(N.LOGGED_AT) < F.lit(end))
                      & (F.col(N.MODEL)["name"] == model))
