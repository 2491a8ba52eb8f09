"""What `labeled_examples` has absorbed so far, so that a labels run reads only what changed since.

Each commit the labels job makes to `labeled_examples` carries, in its Delta `userMetadata`, the
`feature_logs` version it read through, the label watermark (`as_of`) and a digest of the label
policies. The next run then
- reads `feature_logs`' change data feed after that version instead of the whole table (the served
  rows compaction added since), falling back to comparing whole tables when the feed does not cover
  the range (a table created before the feed was on, or a version range it was switched on in);
- finds every row it can change in one narrow scan of `labeled_examples`: rows the day's labels name,
  and pending rows whose window can have closed since that `as_of`;
- recomputes everything when the label policies changed (a different window changes every row).
The state lives in the same commit as the rows it describes, so a crash can never separate them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.delta import read_delta, table_property
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

    def to_metadata(self) -> str:
        return json.dumps({STATE_KEY: {"feature_logs_version": self.feature_logs_version,
                                       "as_of": self.as_of.isoformat(), "policies": self.policies}})

    @classmethod
    def from_metadata(cls, text: str | None) -> SyncState | None:
        try:
            raw = json.loads(text or "")[STATE_KEY]
            return cls(int(raw["feature_logs_version"]), datetime.fromisoformat(raw["as_of"]), str(raw["policies"]))
        except (ValueError, KeyError, TypeError):
            return None  # not ours (a forget, an OPTIMIZE) or unreadable: look further back


def policies_digest(rows: Sequence[tuple[object, ...]]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows), default=str).encode()).hexdigest()[:16]


def last_state(spark: SparkSession, ex_path: str) -> SyncState | None:
    """The state recorded by the latest labels commit to `labeled_examples`, if any."""
    commits = (DeltaTable.forPath(spark, ex_path).history().where(F.col("userMetadata").contains(STATE_KEY))
               .orderBy(F.desc("version")).select("userMetadata").limit(1).collect())
    return SyncState.from_metadata(commits[0][0]) if commits else None


def labels_as_of_watermark(labels: DataFrame) -> datetime | None:
    """Labels are known through the end of the latest ingested label date (None: no label loaded yet)."""
    latest = labels.agg(F.max(N.LABEL_DATE)).first()
    if latest is None or latest[0] is None:
        return None
    return datetime.combine(latest[0], datetime.min.time()) + timedelta(days=1)


def feed_covers(spark: SparkSession, fl_path: str, since: int, until: int, retain_hours: float) -> bool:
    """True when feature_logs recorded its change data for every version in (since, until] and none of
    those commits is older than the VACUUM retention (their files may be gone: then compare tables)."""
    if (table_property(spark, fl_path, "delta.enableChangeDataFeed") or "false").lower() != "true":
        return False
    history = DeltaTable.forPath(spark, fl_path).history()
    in_range = history.where((F.col("version") > since) & (F.col("version") <= until))
    # Other property commits (the privacy policy's tag, statistics columns) leave the feed alone.
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
    Deletions need nothing here: `forget` deletes from labeled_examples itself."""
    if until <= since:
        return spark.createDataFrame([], read_delta(spark, fl_path).select(*SERVED_COLUMNS).schema)
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", since + 1)
           .option("endingVersion", until).load(fl_path))
    latest = Window.partitionBy(N.REQUEST_ID).orderBy(F.desc("_commit_version"))
    return (cdf.where(F.col("_change_type").isin("insert", "update_postimage"))
            .withColumn("_latest", F.row_number().over(latest)).where(F.col("_latest") == 1)
            .select(*SERVED_COLUMNS))


def maturing_filter(prev_as_of: datetime | None, as_of: datetime, windows_days: Sequence[int]) -> Column:
    """Pending rows whose label window closed in (prev_as_of, as_of], with a partition filter so the
    scan reads only the event dates such a window can start on."""
    closed = (F.col(N.LABEL_STATE) == N.STATE_PENDING) & (F.col(N.WINDOW_END) <= F.lit(as_of).cast("timestamp"))
    if prev_as_of is None or not windows_days:
        return closed
    lo: date = (prev_as_of - timedelta(days=max(windows_days) + 1)).date()
    hi: date = (as_of - timedelta(days=min(windows_days) - 1)).date()
    return closed & (F.col(N.EVENT_DATE) >= F.lit(lo)) & (F.col(N.EVENT_DATE) <= F.lit(hi))


def open_from(first_observed: datetime | None, prev_as_of: datetime, windows_days: Sequence[int],
              first_new: date | None) -> date:
    """The first event date whose rows a run can change; earlier rows are final for it.

    A label counts only within [logged_at, logged_at + window], so the run's labels reach no row served
    more than the longest window before the earliest of them was observed; windows closing now opened
    less than the longest window before the last run's as_of; new served rows carry their own dates.
    The MERGE skips the files of earlier dates: the nightly cost follows the open label windows, not
    the length of the history."""
    longest = timedelta(days=max(windows_days) + 1)  # + 1 day: event dates are whole UTC days
    bounds = [(prev_as_of - longest).date()]
    if first_observed is not None:
        bounds.append((first_observed - longest).date())
    if first_new is not None:
        bounds.append(first_new)
    return min(bounds)


def affected_rows(examples: DataFrame, new: DataFrame, run_labels: DataFrame, maturing: Column) -> DataFrame:
    """Served rows (SERVED_COLUMNS and `_maturing`) a run can change, from one narrow scan of
    labeled_examples: those the run's labels name (a day's ids, broadcast) and those `maturing`
    selects; plus the new served rows, which supersede a stored copy of the same request."""
    named = F.broadcast(run_labels.select(N.REQUEST_ID).distinct().withColumn("_named", F.lit(True)))
    due = F.coalesce(maturing, F.lit(False))
    hit = (examples.join(named, on=N.REQUEST_ID, how="left").where(F.col("_named").isNotNull() | due)
           .select(*SERVED_COLUMNS, due.alias("_maturing")))
    return (hit.join(new.select(N.REQUEST_ID), on=N.REQUEST_ID, how="left_anti")
            .unionByName(new.select(*SERVED_COLUMNS, F.lit(False).alias("_maturing"))))
