"""Delta helpers shared by every job: the one table reader, table creation, commits and their metrics.

Session in, plain values or DataFrames out. Every write that replaces a unit of work (a landing hour,
a label date) goes through `replace_rows`: one commit, access tags on every column, the privacy
policy's version recorded with it.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from skewless.core.access import POLICY_PROPERTY, tagged
from skewless.core.deltalog import Commit, checksum, commit_at, latest_version
from skewless.core.errors import ConcurrentCommitError, TableNotFoundError
from skewless.core.paths import table_path
from skewless.core.policy import PrivacyPolicy
from skewless.core.progress import Progress

R = TypeVar("R")
# Delta's optimistic-concurrency losers (the commit is safe to retry: it was not made).
_CONFLICT = re.compile(r"DELTA_CONCURRENT_\w+|DELTA_METADATA_CHANGED|DELTA_PROTOCOL_CHANGED|"
                       r"Concurrent(Append|DeleteRead|DeleteDelete|Transaction|Write)Exception|"
                       r"MetadataChangedException|ProtocolChangedException")


def conflict_name(exc: BaseException) -> str | None:
    """The Delta conflict an exception reports (e.g. DELTA_CONCURRENT_APPEND), None for any other error."""
    found = _CONFLICT.search(str(exc)[:20_000])
    return found.group(0) if found else None


def retry_conflicts(action: Callable[[], R], what: str, *, attempts: int = 6, base_delay_s: float = 0.2,
                    sleep: Callable[[float], None] = time.sleep) -> R:
    """Run `action` (a whole commit: plan and write), again after a lost Delta conflict, with
    exponential backoff and jitter, at most `attempts` times. Other errors pass through at once."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            name = conflict_name(exc)
            if name is None:
                raise
            if attempt == attempts:
                raise ConcurrentCommitError(what, attempts, name) from exc
            wait = base_delay_s * 2 ** (attempt - 1) * (1 + random.random())
            Progress("delta").step(f"{what}: lost to a concurrent commit ({name}); retry {attempt}/{attempts - 1} "
                                   f"in {wait:.1f}s")
            sleep(wait)
    raise AssertionError("unreachable")


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def read_delta(spark: SparkSession, path: str, *, version: int | None = None) -> DataFrame:
    """The one way the jobs read a Delta table: its latest version, or `version` (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_table(spark: SparkSession, warehouse: str, name: str, *, version: int | None = None) -> DataFrame:
    """A warehouse table by name; TableNotFoundError (exit 2) when no job has written it yet."""
    path = table_path(warehouse, name)
    if not is_table(spark, path):
        raise TableNotFoundError(name, path)
    return read_delta(spark, path, version=version)


def _as_dict(commit: Commit) -> dict[str, Any]:
    return {"version": commit.version, "operation": commit.operation, "metrics": dict(commit.metrics)}


def last_commit(spark: SparkSession, path: str) -> dict[str, Any]:
    """Version, operation and metrics of a table's latest commit (read from its log, no Spark job)."""
    version = latest_version(spark, path)
    commit = commit_at(spark, path, version) if version is not None else None
    if commit is not None:
        return _as_dict(commit)
    row = DeltaTable.forPath(spark, path).history(1).select("version", "operation", "operationMetrics").first()
    assert row is not None
    return {"version": int(row["version"]), "operation": row["operation"],
            "metrics": dict(row["operationMetrics"] or {})}


def commit_of(spark: SparkSession, path: str, run_id: str) -> dict[str, Any]:
    """Version and metrics of the commit `run_id` made (its userMetadata names it), not the latest
    commit, which a concurrent writer may have made since; looked for among the last 50. Delta makes
    no commit for a write that changes nothing (an empty replace of nothing): then no rows were
    written, and the metrics say 0; a job's reconciliation catches any other case."""
    latest = latest_version(spark, path)
    for version in range(latest if latest is not None else -1, max((latest or 0) - 50, -1), -1):
        commit = commit_at(spark, path, version)
        if commit is not None and f'"{run_id}"' in (commit.user_metadata or ""):
            return _as_dict(commit)
    return {"version": latest, "operation": None, "metrics": {"numOutputRows": "0"}}


def rows_added(metrics: dict[str, Any]) -> int:
    """The rows a commit wrote of its own. Delta's numOutputRows also counts the rows a replaceWhere
    copied out of a file it rewrote (a file that also held rows outside the predicate, as after an
    OPTIMIZE merged two landing hours' files): those are numCopiedRows."""
    return int(metrics.get("numOutputRows", 0)) - int(metrics.get("numCopiedRows", 0))


def current_version(spark: SparkSession, path: str) -> int | None:
    """The table's latest version, None before its first commit: pin reads to it."""
    return latest_version(spark, path)


_ADDS_ROWS = ("WRITE", "MERGE", "CREATE OR REPLACE TABLE AS SELECT", "CREATE TABLE AS SELECT", "STREAMING UPDATE",
              "COPY INTO", "UPDATE")


def others_added_rows(spark: SparkSession, path: str, since: int | None, mine: str) -> list[int]:
    """Versions after `since` (of the last 100) that another writer committed and that may add rows
    (not ours: our commits carry `mine` in their userMetadata). A job that read the table at `since` to
    decide what to write (dedup) must decide again when this is not empty."""
    latest = latest_version(spark, path)
    if latest is None:
        return []
    first = max(since + 1 if since is not None else 0, latest - 99)
    commits = [commit_at(spark, path, v) for v in range(first, latest + 1)]
    return [c.version for c in commits
            if c is not None and c.operation in _ADDS_ROWS and mine not in (c.user_metadata or "")]


def commit_metrics(spark: SparkSession, path: str, action: Callable[[], object]) -> dict[str, str]:
    """Run `action` (a MERGE, a DELETE) on the table at `path` and return the metrics of the commit it
    made; {} when it made none (a Delta operation that changes nothing may not commit, and the latest
    commit is then someone else's)."""
    before = last_commit(spark, path)["version"]
    retry_conflicts(action, f"commit to {path}")
    after = last_commit(spark, path)
    return dict(after["metrics"]) if after["version"] != before else {}


def _latest_checksum(spark: SparkSession, path: str) -> dict[str, Any] | None:
    version = latest_version(spark, path)
    return checksum(spark, path, version) if version is not None else None


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The Delta table's properties (e.g. delta.enableChangeDataFeed)."""
    crc = _latest_checksum(spark, path)
    if crc is not None and isinstance(crc.get("metadata"), dict):
        return dict(crc["metadata"].get("configuration") or {})
    detail = DeltaTable.forPath(spark, path).detail().select("properties").first()
    return {} if detail is None else dict(detail[0] or {})


def file_count(spark: SparkSession, path: str) -> int:
    """The number of data files in the table's latest version."""
    crc = _latest_checksum(spark, path)
    if crc is not None and "numFiles" in crc:
        return int(crc["numFiles"])
    detail = DeltaTable.forPath(spark, path).detail().select("numFiles").first()
    return 0 if detail is None else int(detail[0])


def created_ms(spark: SparkSession, path: str) -> int | None:
    """When the table's version 0 was committed (the writer's clock, epoch ms); None once that log entry
    is cleaned up (the table is older than the log's retention) or carries no timestamp."""
    first = commit_at(spark, path, 0)
    return first.timestamp_ms if first is not None else None


def deletion_vectors_possible(crc: dict[str, Any] | None) -> bool:
    """From a version's checksum: False only when it proves that no file carries a deletion vector: the
    protocol lacks the table feature (so none was ever written), or the count is 0. The table property
    alone proves nothing: switched off, it leaves the vectors already written in place."""
    if crc is None:
        return True
    protocol = crc.get("protocol") or {}
    if int(protocol.get("minWriterVersion", 7)) < 7:
        return False  # a legacy protocol has no table features, deletion vectors among them
    features = protocol.get("writerFeatures")
    if features is not None and "deletionVectors" not in features:
        return False
    count = crc.get("numDeletionVectorsOpt")
    return count is None or int(count) != 0


def may_have_deletion_vectors(spark: SparkSession, path: str) -> bool:
    """`deletion_vectors_possible` of the latest version: one listing and one small file read."""
    return deletion_vectors_possible(_latest_checksum(spark, path))


def table_property(spark: SparkSession, path: str, key: str) -> str | None:
    """One Delta table property, None when unset."""
    return table_properties(spark, path).get(key)


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a session conf for one Delta call (VACUUM's check, a commit's userMetadata), then restore it."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def ensure_table(spark: SparkSession, path: str, schema: StructType, partitions: tuple[str, ...],
                 properties: dict[str, str]) -> None:
    """Create the Delta table with its partitioning and properties if it does not exist yet; on an
    existing table, restore any of those properties that differ (a table created before a property
    was introduced, or one changed by hand): the jobs rely on them (statistics columns, deletion vectors)."""
    if is_table(spark, path):
        if properties:
            current = table_properties(spark, path)
            differ = {k: v for k, v in properties.items() if current.get(k) != v}
            if differ:
                pairs = ", ".join(f"'{k}' = '{_sql_quote(v)}'" for k, v in sorted(differ.items()))
                spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy(*partitions)
    for key, value in properties.items():
        builder = builder.property(key, value)
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            builder.execute()
            return
        except Exception:
            # Two first writers race to create the table: the loser sees the winner's `_delta_log`
            # before its first commit (DELTA_TABLE_NOT_FOUND) or loses version 0. Once the winner's
            # commit is visible the table exists; our write then merges its schema into it.
            time.sleep(0.2 * attempt)
            if is_table(spark, path):
                ensure_table(spark, path, schema, partitions, properties)
                return
            if attempt == _CREATE_ATTEMPTS:
                raise


_CREATE_ATTEMPTS = 5


def _sql_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def replace_rows(df: DataFrame, path: str, partitions: tuple[str, ...], where: str,
                 properties: dict[str, str], policy: PrivacyPolicy, run_id: str = "",
                 metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Delta commit that swaps the rows matching `where` (a landing hour, a label date) for `df`:
    a rerun converges, a crash before the commit leaves the previous version. New columns merge.
    Columns carry their access tags; the commit records the privacy policy's version (and `metadata`,
    in its userMetadata, for the jobs that read this table's log)."""
    df = tagged(df, path.rstrip("/").rsplit("/", 1)[-1], policy)

    def commit() -> None:
        ensure_table(spark=df.sparkSession, path=path, schema=df.schema, partitions=partitions,
                     properties={**properties, POLICY_PROPERTY: policy.tag})
        (df.write.format("delta").mode("overwrite").option("mergeSchema", "true").option("replaceWhere", where)
         .option("userMetadata", json.dumps({**(metadata or {}), POLICY_PROPERTY: policy.tag, "run_id": run_id}))
         .partitionBy(*partitions).save(path))

    retry_conflicts(commit, f"replace {where} in {path}")
    return commit_of(df.sparkSession, path, run_id) if run_id else last_commit(df.sparkSession, path)
