"""What `label_choices` has absorbed so far, so that a labels run reads only what changed since.

Each commit the labels job makes to `label_choices` carries, in its Delta `userMetadata`, the
`feature_logs` version it read through, the label watermark (`as_of`) and the label policies (their
rows and a digest). Readers derive `labeled_examples` from a version of `label_choices` with exactly
that `as_of` and those policies, so a pinned version gives the same rows forever. The next run
- reads `feature_logs`' change data feed after that version (the served rows compaction added since)
  only to find new served rows that already have label events (labels that came before their
  prediction was compacted); when the feed does not cover the range it recomputes;
- recomputes everything when the label policies changed (a different window changes every choice).
The state lives in the same commit as the choices it describes, so a crash can never separate them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.delta import read_delta, table_property
from skewless.core.deltalog import Commit, commit_at, latest_version
from skewless.labels.transforms import SERVED_COLUMNS

STATE_KEY = "skewless.labels"
# Commits that can switch the change data feed on or off part-way through a version range: property
# changes that name it, and table replacements.
_PROPERTY_OPS = ("SET TBLPROPERTIES", "UNSET TBLPROPERTIES")
_REPLACE_OPS = ("CREATE OR REPLACE TABLE", "REPLACE TABLE")


@dataclass(frozen=True)
class SyncState:
    """What one labels commit to `labeled_examples` was computed from."""

    feature_logs_version: int
    as_of: datetime
    policies: str
    rules: tuple[tuple[str, int, str, str], ...] = ()  # policy_rows(): what readers derive states with
    labels_version: int | None = None  # the `labels` version absorbed (None: recorded before it was kept)

    def to_metadata(self) -> str:
        return json.dumps({STATE_KEY: {"feature_logs_version": self.feature_logs_version,
                                       "as_of": self.as_of.isoformat(), "policies": self.policies,
                                       "rules": [list(r) for r in self.rules],
                                       "labels_version": self.labels_version}})

    @classmethod
    def from_metadata(cls, text: str | None) -> SyncState | None:
        try:
            raw = json.loads(text or "")[STATE_KEY]
            rules = tuple((str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in raw.get("rules", []))
            labels = raw.get("labels_version")
            return cls(int(raw["feature_logs_version"]), datetime.fromisoformat(raw["as_of"]), str(raw["policies"]),
                       rules, None if labels is None else int(labels))
        except (ValueError, KeyError, TypeError):
            return None  # not ours (a forget, an OPTIMIZE) or unreadable: look further back


def policies_digest(rows: Sequence[tuple[object, ...]]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows), default=str).encode()).hexdigest()[:16]


_WALK = 200  # commits read as files, newest first, before the lookup falls back to Delta's history()


def last_state(spark: SparkSession, path: str, version: int | None = None) -> SyncState | None:
    """The state recorded by the latest labels commit to `label_choices` (at or before `version`).
    Read from the log's commit files, newest first (each a small file read, no Spark job); Delta's
    history() answers when the walk meets a cleaned-up entry or goes past `_WALK` commits."""
    top = latest_version(spark, path) if version is None else version
    if top is None:
        return None
    for v in range(top, max(top - _WALK, -1), -1):
        commit = commit_at(spark, path, v)
        if commit is None:
            break
        if STATE_KEY in (commit.user_metadata or ""):
            return SyncState.from_metadata(commit.user_metadata)
    else:
        if top < _WALK:
            return None  # every commit down to version 0 was read
    history = DeltaTable.forPath(spark, path).history().where(F.col("userMetadata").contains(STATE_KEY))
    history = history.where(F.col("version") <= top)
    commits = history.orderBy(F.desc("version")).select("userMetadata").limit(1).collect()
    return SyncState.from_metadata(commits[0][0]) if commits else None


LABEL_DATES_KEY = "skewless.labels.dates"  # in the userMetadata of the labels job's commits to `labels`
# Commits that add no label event: rewrites of the same rows, deletions, table settings.
_NO_NEW_EVENTS = ("DELETE", "OPTIMIZE", "REORG", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES", "VACUUM START",
                  "VACUUM END", "UPGRADE PROTOCOL", "ADD CONSTRAINT", "DROP CONSTRAINT")


def label_dates_since(spark: SparkSession, labels_path: str, since: int, until: int) -> dict[str, set[date]] | None:
    """The label dates whose events the labels job's commits (since, until] to `labels` replaced, by
    the run that made each commit. None when the log cannot tell: an entry cleaned up, more than `_WALK`
    commits, or a commit of another writer that may have added events (a MERGE that only deleted, as
    forget's, adds none)."""
    commits = commits_between(spark, labels_path, since, until)
    if commits is None:
        return None
    runs: dict[str, set[date]] = {}
    for commit in commits:
        try:
            meta = json.loads(commit.user_metadata or "{}")
            named, run = meta.get(LABEL_DATES_KEY), str(meta.get("run_id", ""))
        except (ValueError, AttributeError):
            named, run = None, ""
        if named is not None:
            runs.setdefault(run, set()).update(date.fromisoformat(d) for d in named)
        elif not _adds_no_events(commit.operation, commit.metrics):
            return None
    return runs


def _adds_no_events(operation: str | None, metrics: dict[str, str]) -> bool:
    if operation == "MERGE":
        return all(int(metrics.get(k, "1")) == 0 for k in ("numTargetRowsInserted", "numTargetRowsUpdated"))
    return operation in _NO_NEW_EVENTS


def labels_as_of_watermark(labels: DataFrame) -> datetime | None:
    """Labels are known through the end of the latest ingested label date (None: no label loaded yet)."""
    latest = labels.agg(F.max(N.LABEL_DATE)).first()
    if latest is None or latest[0] is None:
        return None
    return datetime.combine(latest[0], datetime.min.time()) + timedelta(days=1)


def feed_covers(spark: SparkSession, fl_path: str, since: int, until: int, retain_hours: float) -> bool:
    """True when feature_logs recorded its change data for every version in (since, until] and none of
    those commits is older than the VACUUM retention (their files may be gone: then compare tables).
    Each version's commitInfo is read as a file; a cleaned-up entry, or a range of more than `_WALK`
    commits, falls back to Delta's history()."""
    if (table_property(spark, fl_path, "delta.enableChangeDataFeed") or "false").lower() != "true":
        return False
    if until <= since:
        return True
    commits = commits_between(spark, fl_path, since, until)
    if commits is None or any(c.timestamp_ms is None for c in commits):
        return _feed_covers_by_history(spark, fl_path, since, until, retain_hours)
    switched = any(_switches_feed(c.operation, json.dumps(c.parameters)) for c in commits)
    oldest = min(c.timestamp_ms for c in commits if c.timestamp_ms is not None)
    return not switched and oldest / 1000 > time.time() - retain_hours * 3600


def commits_between(spark: SparkSession, path: str, since: int, until: int) -> list[Commit] | None:
    """The commitInfo of every version in (since, until], each read as a file; None when one of them
    is gone (cleaned up) or the range holds more than `_WALK` commits."""
    if until - since > _WALK:
        return None
    commits = [commit_at(spark, path, v) for v in range(since + 1, until + 1)]
    return None if any(c is None for c in commits) else [c for c in commits if c is not None]


def _switches_feed(operation: str | None, parameters: str) -> bool:
    # Other property commits (the privacy policy's tag, statistics columns) leave the feed alone.
    return operation in _REPLACE_OPS or (operation in _PROPERTY_OPS and "delta.enableChangeDataFeed" in parameters)


def _feed_covers_by_history(spark: SparkSession, fl_path: str, since: int, until: int, retain_hours: float) -> bool:
    history = DeltaTable.forPath(spark, fl_path).history()
    in_range = history.where((F.col("version") > since) & (F.col("version") <= until))
    feed_touched = (F.col("operation").isin(*_REPLACE_OPS)
                    | (F.col("operation").isin(*_PROPERTY_OPS)
                       & F.to_json("operationParameters").contains("delta.enableChangeDataFeed")))
    row = in_range.agg(F.count_if(feed_touched).alias("switched"),
                       F.min("timestamp").alias("oldest")).first()
    if row is None or row["oldest"] is None:
        return until <= since
    fresh_enough = row["oldest"] > datetime.now() - timedelta(hours=retain_hours)  # both the driver's local time
    return bool(row["switched"] == 0 and fresh_enough)


def served_changes(spark: SparkSession, fl_path: str, since: int, until: int) -> DataFrame:
    """Served rows that feature_logs commits (since, until] inserted or rewrote, the latest per request.
    Deletions need nothing here: `forget` deletes from label_choices itself."""
    if until <= since:
        return spark.createDataFrame([], read_delta(spark, fl_path).select(*SERVED_COLUMNS).schema)
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", since + 1)
           .option("endingVersion", until).load(fl_path))
    latest = Window.partitionBy(N.REQUEST_ID).orderBy(F.desc("_commit_version"))
    return (cdf.where(F.col("_change_type").isin("insert", "update_postimage"))
            .withColumn("_latest", F.row_number().over(latest)).where(F.col("_latest") == 1)
            .select(*SERVED_COLUMNS))


def reach_from(first_observed: datetime, windows_days: Sequence[int]) -> date:
    """The first event date a label observed at `first_observed` can belong to: a label counts only
    within [logged_at, logged_at + window], so no row served more than the longest window before it
    can take it (+ 1 day: event dates are whole UTC days)."""
    return (first_observed - timedelta(days=max(windows_days) + 1)).date()
