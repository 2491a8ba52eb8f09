"""`labeled_examples` as readers see it: every served prediction with its label, derived at read time.

Every row of `feature_logs`, with the label its model's policy picks from the request's label events
in `labels` (`examples_from_events`: one pass over the served rows), and `pending` /
`matured_negative` / `matured_dropped` derived from each row's window end, its model's policy and the
label watermark, both taken from the state the labels job recorded with the `labels` version being
read (never from the current config), so a pinned pair of versions gives the same rows forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.access import tagged
from skewless.core.config import Config
from skewless.core.delta import is_table, last_commit, read_delta
from skewless.core.errors import TableNotFoundError
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path
from skewless.labels.state import LabelState, last_state
from skewless.labels.transforms import EXAMPLE_COLUMNS, POLICY_SCHEMA, SERVED_COLUMNS, examples_from_events


@dataclass(frozen=True)
class Pinned:
    """The versions a read of `labeled_examples` is computed from, and the state recorded with them."""

    feature_logs: int
    labels: int
    state: LabelState


def exists(spark: SparkSession, cfg: Config) -> bool:
    return all(is_table(spark, table_path(cfg.paths.warehouse, n)) for n in N.LABELED_EXAMPLES_SOURCES)


def pin(spark: SparkSession, cfg: Config, *, feature_logs: int | None = None, labels: int | None = None) -> Pinned:
    """The current versions (or the given ones) and the state the labels job recorded at or before
    that `labels` version. TableNotFoundError when no labels run has recorded one yet."""
    paths = {n: table_path(cfg.paths.warehouse, n) for n in N.LABELED_EXAMPLES_SOURCES}
    for name, path in paths.items():
        if not is_table(spark, path):
            raise TableNotFoundError(name, path)
    fl = feature_logs if feature_logs is not None else last_commit(spark, paths[N.FEATURE_LOGS])["version"]
    lv = labels if labels is not None else last_commit(spark, paths[N.LABELS])["version"]
    state = last_state(spark, paths[N.LABELS], lv)
    if state is None:
        raise TableNotFoundError(N.LABELS, f"{paths[N.LABELS]} (no labels run recorded in it)")
    return Pinned(fl, lv, state)


def labeled_examples(spark: SparkSession, cfg: Config, pinned: Pinned | None = None, *,
                     features: bool = False, as_of: datetime | None = None,
                     served_from: date | None = None) -> DataFrame:
    """EXAMPLE_COLUMNS for every served row (with `features`, the rest of its feature_logs row too), at
    the pinned versions (default: the current ones), with labels as known at the pinned watermark or at
    an earlier `as_of`; only rows served on or after `served_from`, if given. Columns carry their
    access tags."""
    p = pinned or pin(spark, cfg)
    logs = read_delta(spark, table_path(cfg.paths.warehouse, N.FEATURE_LOGS), version=p.feature_logs)
    labels = read_delta(spark, table_path(cfg.paths.warehouse, N.LABELS), version=p.labels)
    if served_from is not None:
        # A label joins a row only if observed after it was served, and a label date holds no event
        # observed after that date (the ingest quarantines them): older dates' events cannot join.
        logs = logs.where(F.col(N.EVENT_DATE) >= F.lit(served_from))
        labels = labels.where(F.col(N.LABEL_DATE) >= F.lit(served_from))
    policies = local_frame(spark, list(p.state.rules), POLICY_SCHEMA)
    served = logs if features else logs.select(*SERVED_COLUMNS)
    rows = examples_from_events(served, labels, policies, min(as_of or p.state.as_of, p.state.as_of),
                                features=features)
    if features:
        return rows
    return tagged(rows.select(*EXAMPLE_COLUMNS), N.LABELED_EXAMPLES, cfg.privacy_policy)
