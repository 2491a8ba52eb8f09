"""Helpers of the SQL tests: the corpus filled in for a warehouse, and the warehouse's whole state."""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import last_commit, read_delta, table_properties
from skewless.core.paths import table_path
from skewless.serving.arrow import open_table

from . import sql_corpus as C
from .conftest import frozen


def scratch(wh: Config) -> Path:
    return Path(wh.paths.warehouse).parent / "scratch"


def fill(statement: str, wh: Config) -> str:
    return C.fill(statement, str(Path(wh.paths.warehouse).resolve()), str(Path(wh.paths.landing).resolve()),
                  str(scratch(wh).resolve()))


def state(spark: SparkSession, wh: Config) -> object:
    """Every table's rows (collected), Delta version and properties, and the scratch folder's contents."""
    out: dict[str, object] = {}
    for name in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.INGESTION_AUDIT):
        path = table_path(wh.paths.warehouse, name)
        out[name] = (sorted(map(str, frozen(spark, read_delta(spark, path)).collect())),
                     last_commit(spark, path)["version"], table_properties(spark, path))
    return _folders(out, wh)


def stored_state(wh: Config) -> object:
    """`state` read with delta-rs, for the tests that run beside the in-process session."""
    out: dict[str, object] = {}
    for name in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.INGESTION_AUDIT):
        table = open_table(table_path(wh.paths.warehouse, name))
        out[name] = (sorted(map(str, table.to_pyarrow_table().to_pylist())), table.version(),
                     table.metadata().configuration)
    return _folders(out, wh)


def _folders(out: dict[str, object], wh: Config) -> object:
    out["scratch"] = sorted(os.listdir(scratch(wh)))
    out["warehouse"] = sorted(os.listdir(wh.paths.warehouse))
    return out
