"""A Delta table's transaction log read as files: the latest version, one commit's info, the file count
and properties. Bookkeeping that runs no Spark job.

Delta's `history()` and `DESCRIBE DETAIL` each build a DataFrame and run a job, 0.2 to 0.8 s apiece on
2 cores; a compaction asked them six times an hour. The files read here are the ones the Delta protocol
defines (`_delta_log/<version>.json`, `_last_checkpoint`) plus Delta Spark's checksum (`<version>.crc`),
through Hadoop's FileSystem: the same paths Delta reads, on local disk and object stores. A missing
checksum (turned off, or its write failed) answers None and the caller asks Delta instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from skewless.core.storage import hadoop_fs

LOG_DIR = "_delta_log"


@dataclass(frozen=True)
class Commit:
    """One commit's `commitInfo`: its version, operation, metrics (strings, as Delta writes them) and
    the userMetadata a job set on it."""

    version: int
    operation: str | None
    metrics: dict[str, str] = field(default_factory=dict)
    user_metadata: str | None = None
    timestamp_ms: int | None = None  # the writer's clock at commit, epoch milliseconds
    parameters: dict[str, Any] = field(default_factory=dict)  # operationParameters, as Delta wrote them


class _Log:
    """The `_delta_log` folder of one table, through one FileSystem handle."""

    def __init__(self, spark: SparkSession, table: str) -> None:
        self.fs, self.dir = hadoop_fs(spark, f"{table.rstrip('/')}/{LOG_DIR}")
        self.jvm = spark.sparkContext._jvm

    def _path(self, name: str) -> Any:
        assert self.jvm is not None
        return self.jvm.org.apache.hadoop.fs.Path(self.dir, name)

    def has(self, version: int) -> bool:
        return bool(self.fs.exists(self._path(f"{version:020d}.json")))

    def listed_latest(self) -> int | None:
        """The highest version among the log's commit files, by listing the folder (the slow way)."""
        if not self.fs.exists(self.dir):
            return None
        names = [str(s.getPath().getName()) for s in self.fs.listStatus(self.dir)]
        versions = [int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()]
        return max(versions, default=None)

    def read(self, name: str) -> str | None:
        """The file's text, None when it does not exist."""
        path = self._path(name)
        if not self.fs.exists(path):
            return None
        stream = self.fs.open(path)
        try:
            return bytes(stream.readAllBytes()).decode("utf-8")
        finally:
            stream.close()


def latest_version(spark: SparkSession, table: str) -> int | None:
    """The table's latest committed version, None when it has no commit. Starts at the last checkpoint
    (the log before it may be cleaned up) and gallops forward: versions are contiguous, so a few
    existence checks find the end whatever the number of commits since."""
    log = _Log(spark, table)
    checkpoint = log.read("_last_checkpoint")
    low = int(json.loads(checkpoint)["version"]) if checkpoint else 0
    if not log.has(low):
        return log.listed_latest()  # no pointer and a cleaned-up start, or no table at all
    step = 1
    while log.has(low + step):  # low exists; find a missing version above it
        low, step = low + step, step * 2
    high = low + step  # missing
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if log.has(mid) else (low, mid)
    return low


def commit_at(spark: SparkSession, table: str, version: int) -> Commit | None:
    """The commitInfo of `version`, None when that log entry is gone (cleaned up) or has none."""
    text = _Log(spark, table).read(f"{version:020d}.json")
    for line in (text or "").splitlines():
        if line.startswith('{"commitInfo"'):
            info = json.loads(line)["commitInfo"]
            stamp = info.get("timestamp")
            return Commit(version, info.get("operation"), dict(info.get("operationMetrics") or {}),
                          info.get("userMetadata"), int(stamp) if stamp is not None else None,
                          dict(info.get("operationParameters") or {}))
    return None


def checksum(spark: SparkSession, table: str, version: int) -> dict[str, Any] | None:
    """Delta Spark's checksum of `version` (numFiles, metadata with its configuration), None if absent."""
    text = _Log(spark, table).read(f"{version:020d}.crc")
    return json.loads(text) if text else None
