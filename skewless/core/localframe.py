"""Small DataFrames built from Python values (an audit row, a version row, a list of subjects).

`spark.createDataFrame(list)` ships the rows as a Python RDD: every job over it starts Python workers,
0.4 s or more for one row on 2 cores. Through Arrow the rows become a local relation in the JVM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType


def local_frame(spark: SparkSession, rows: Sequence[Sequence[Any]], schema: StructType) -> DataFrame:
    """A DataFrame of `rows` (tuples in the schema's field order) with exactly `schema`, metadata (access
    tags) and nullability included. Naive datetimes are UTC, as everywhere in the warehouse."""
    arrow_schema = to_arrow_schema(schema)
    columns = [pa.array([row[i] for row in rows], type=f.type) for i, f in enumerate(arrow_schema)]
    table = pa.Table.from_arrays(columns, schema=arrow_schema)
    return spark.createDataFrame(table, schema)
