"""A result printed as a table (Spark's own renderer), JSON lines or CSV, streamed partition by partition:
nothing but the printed rows reaches the driver."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from pyspark.sql import DataFrame

FORMATS = ("table", "json", "csv")


def write(df: DataFrame, fmt: str, limit: int, out: TextIO) -> int:
    """Print `df` in `fmt` (a table shows at most `limit` rows); the number of rows printed."""
    if fmt == "table":
        text = str(df._jdf.showString(limit, 0, False))  # Spark's renderer, no truncation of values
        out.write(text)
        out.flush()
        return max(0, sum(1 for line in text.splitlines() if line.startswith("|")) - 1)  # less the header
    n = 0
    if fmt == "json":
        for row in df.toLocalIterator():
            out.write(json.dumps(row.asDict(recursive=True), default=str) + "\n")
            n += 1
        return n
    writer = csv.writer(out)
    writer.writerow(df.columns)
    for row in df.toLocalIterator():
        writer.writerow(["" if v is None else v for v in row])
        n += 1
    return n
