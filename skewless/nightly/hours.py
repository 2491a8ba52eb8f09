"""Which landing hours the nightly compacts: every hour of the date with files, and every earlier hour
(within `nightly.late_lookback_days`) that received files after its last compaction started.

The audit says when each hour was last compacted; the landing folders are only listed (names and
modification times), never read. A file whose time is after the last compaction's start may have been
missed by it, so the hour is compacted again: a rerun converges, so erring this way costs time only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta
from skewless.core.paths import AVRO_SUFFIX, LANDING_SUFFIXES, predictions_date, predictions_hour, table_path
from skewless.core.storage import list_subfolders, newest_file_ms

COMPACTED = ("succeeded", "incomplete")  # a run that reconciled: its hour is done until new files land


@dataclass(frozen=True)
class HourToRun:
    hour: datetime
    why: str   # new | late_upload | never_compacted | forced


def last_compactions(spark: SparkSession, cfg: Config, since: datetime) -> dict[datetime, datetime]:
    """landing hour -> the start of its latest reconciled compaction, for hours from `since`."""
    path = table_path(cfg.paths.warehouse, N.INGESTION_AUDIT)
    if not is_table(spark, path):
        return {}
    rows = (read_delta(spark, path)
            .where((F.col("job") == "compact") & (F.col(N.LANDING_HOUR) >= F.lit(since))
                   & F.col("status").isin(*COMPACTED))
            .groupBy(N.LANDING_HOUR).agg(F.max("started_at").alias("started_at")).collect())
    return {r[N.LANDING_HOUR]: r["started_at"] for r in rows}


def decide(hour: datetime, day: date, newest_ms: int | None, last_started: datetime | None,
           force: bool) -> str | None:
    """Why `hour` is compacted tonight, or None (pure: the listing and the audit decide)."""
    if newest_ms is None:
        return None
    if force and hour.date() == day:
        return "forced"
    if last_started is None:
        return "new" if hour.date() == day else "never_compacted"
    newest = datetime.fromtimestamp(newest_ms / 1000, UTC).replace(tzinfo=None)
    if newest >= last_started:
        return "new" if hour.date() == day else "late_upload"
    return None


def hours_to_compact(spark: SparkSession, cfg: Config, day: date, force: bool) -> tuple[list[HourToRun], int]:
    """(hours to compact in order, hours with files that are already compacted)."""
    start = datetime.combine(day - timedelta(days=cfg.nightly.late_lookback_days), datetime.min.time())
    last = last_compactions(spark, cfg, start)
    out, done = [], 0
    for offset in range(cfg.nightly.late_lookback_days, -1, -1):
        folder_day = datetime.combine(day - timedelta(days=offset), datetime.min.time())
        for name in list_subfolders(spark, predictions_date(cfg.paths.landing, folder_day), "hour="):
            hour = folder_day.replace(hour=int(name.split("=")[1]))
            newest = newest_file_ms(spark, predictions_hour(cfg.paths.landing, hour), (*LANDING_SUFFIXES, AVRO_SUFFIX))
            why = decide(hour, day, newest, last.get(hour), force)
            if why is not None:
                out.append(HourToRun(hour, why))
            elif newest is not None:
                done += 1
    return out, done
