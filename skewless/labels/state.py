"""The label watermark and policies, recorded in the labels job's own commits to `labels`.

Each commit the labels job makes to `labels` carries, in its Delta `userMetadata`, the label watermark
(`as_of`: labels are known through the end of the latest ingested label date) and the label policies
(their rows and a digest). Readers derive `labeled_examples` from a version of `labels` and the state
recorded at or before it (`skewless.labels.view`), so a pinned pair of versions gives the same rows
forever. No label choice is stored: nothing has to be kept in step with the label events, and a run
killed after its commit has nothing left to do. The state lives in the same commit as the events it
describes, so a crash can never separate them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config, LabelPolicy
from skewless.core.delta import retry_conflicts, session_conf
from skewless.core.deltalog import commit_at, latest_version

STATE_KEY = "skewless.labels"
AS_OF_PROPERTY = "skewless.labels.as_of"


@dataclass(frozen=True)
class LabelState:
    """What readers derive label states with: the watermark and the policies' rules."""

    as_of: datetime
    policies: str
    rules: tuple[tuple[str, int, str, str], ...] = ()  # policy_rows()

    def to_dict(self) -> dict[str, Any]:
        return {STATE_KEY: {"as_of": self.as_of.isoformat(), "policies": self.policies,
                            "rules": [list(r) for r in self.rules]}}

    def to_metadata(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_metadata(cls, text: str | None) -> LabelState | None:
        try:
            raw = json.loads(text or "")[STATE_KEY]
            rules = tuple((str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in raw.get("rules", []))
            return cls(datetime.fromisoformat(raw["as_of"]), str(raw["policies"]), rules)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not ours (a forget, an OPTIMIZE) or unreadable: look further back


def policies_digest(rows: Sequence[tuple[object, ...]]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows), default=str).encode()).hexdigest()[:16]


_WALK = 200  # commits read as files, newest first, before the lookup falls back to Delta's history()


def last_state(spark: SparkSession, path: str, version: int | None = None) -> LabelState | None:
    """The state recorded by the latest labels commit to `labels` (at or before `version`). Read from
    the log's commit files, newest first (each a small file read, no Spark job); Delta's history()
    answers when the walk meets a cleaned-up entry or goes past `_WALK` commits."""
    top = latest_version(spark, path) if version is None else version
    if top is None:
        return None
    for v in range(top, max(top - _WALK, -1), -1):
        commit = commit_at(spark, path, v)
        if commit is None:
            break
        if STATE_KEY in (commit.user_metadata or ""):
            return LabelState.from_metadata(commit.user_metadata)
    else:
        if top < _WALK:
            return None  # every commit down to version 0 was read
    history = DeltaTable.forPath(spark, path).history().where(F.col("userMetadata").contains(STATE_KEY))
    commits = history.where(F.col("version") <= top).orderBy(F.desc("version")).select("userMetadata").limit(1)
    rows = commits.collect()
    return LabelState.from_metadata(rows[0][0]) if rows else None


def latest_as_of_between(spark: SparkSession, path: str, since: int, until: int) -> datetime | None:
    """The latest watermark recorded by the commits (since, until): what concurrent labels runs
    committed between this run's read of the state and its own commit (None: none of them did)."""
    found = [s.as_of for v in range(since + 1, until) if (c := commit_at(spark, path, v)) is not None
             and (s := LabelState.from_metadata(c.user_metadata)) is not None]
    return max(found) if found else None


def set_state(spark: SparkSession, path: str, state: LabelState) -> None:
    """Record `state` in a commit that adds no file (a table property): for a run whose replace made
    no commit (an empty date), or whose state a concurrent run overtook."""
    prop = f"'{AS_OF_PROPERTY}' = '{state.as_of.isoformat()}'"

    def commit() -> None:
        with session_conf(spark, "spark.databricks.delta.commitInfo.userMetadata", state.to_metadata()):
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({prop})")
    retry_conflicts(commit, f"record the label watermark in {path}")


def labels_as_of_watermark(labels: DataFrame) -> datetime | None:
    """Labels are known through the end of the latest ingested label date (None: no label loaded yet)."""
    latest = labels.agg(F.max(N.LABEL_DATE)).first()
    if latest is None or latest[0] is None:
        return None
    return datetime.combine(latest[0], datetime.min.time()) + timedelta(days=1)


def label_windows(cfg: Config) -> list[int]:
    """Every label window in days: the models' and the default policy's (for unknown models)."""
    return [m.labels.window_days for m in cfg.models] + [LabelPolicy().window_days]


def reach_from(first_observed: datetime, windows_days: Sequence[int]) -> date:
    """The first event date a label observed at `first_observed` can belong to: a label counts only
    within [logged_at, logged_at + window], so no row served more than the longest window before it
    can take it (+ 1 day: event dates are whole UTC days)."""
    return (first_observed - timedelta(days=max(windows_days) + 1)).date()
