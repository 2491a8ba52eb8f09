"""Checks every pure transform makes at its edges."""

from __future__ import annotations

from pyspark.sql import DataFrame

from skewless.core.errors import MissingColumnsError


def require_columns(df: DataFrame, expected: tuple[str, ...], where: str) -> None:
    """Fail with the missing names (expected vs. actual) before Spark fails with an analysis error."""
    if not set(expected) <= set(df.columns):
        raise MissingColumnsError(where, expected, df.columns)
