"""`skewless sql`: Spark SQL over the project's tables by plain name, printed as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import SparkSession

from jobs.config import Warehouse
from jobs.errors import UsageError
from jobs.tables import register_views


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="a Spark SQL query, e.g. \"SELECT count(*) FROM feature_logs\"")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (default), json (one object per row) or csv")
    p.add_argument("--limit", type=int, default=1000, help="most rows printed as a table (default 1000)")


def run(spark: SparkSession, wh: Warehouse, args: argparse.Namespace) -> int:
    register_views(spark, wh.paths.warehouse)
    try:
        df = spark.sql(args.query)
    except (AnalysisException, ParseException) as exc:
        raise UsageError(f"query rejected: {exc.getMessage() if hasattr(exc, 'getMessage') else exc}") from exc
    if args.format == "table":
        print(df._jdf.showString(args.limit, 0, False))  # Spark's own renderer, no truncation of values
        return 0
    out = sys.stdout
    if args.format == "json":
        for row in df.toLocalIterator():  # streams partition by partition, never collects the result
            out.write(json.dumps(row.asDict(recursive=True), default=str, sort_keys=False) + "\n")
        return 0
    writer = csv.writer(out)
    writer.writerow(df.columns)
    for row in df.toLocalIterator():
        writer.writerow(["" if v is None else v for v in row])
    return 0
