"""`labeled_examples` as readers see it: every served prediction with its label, derived at read time.

The view is `feature_logs` left-joined with `label_choices` on (request id, serving date), with
`pending` / `matured_negative` / `matured_dropped` derived from each row's window end, its model's
policy and the label watermark, both taken from the `label_choices` commit being read (never from the
current config), so a pinned pair of versions gives the same rows forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from skewless.core import names as N
from skewless.core.access import tagged
from skewless.core.config import Config
from skewless.core.delta import is_table, last_commit, read_delta
from skewless.core.errors import TableNotFoundError
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path
from skewless.labels.sync import SyncState, last_state
from skewless.labels.transforms import EXAMPLE_COLUMNS, POLICY_SCHEMA, examples_from_choices


@dataclass(frozen=True)
class Pinned:
    """The versions a read of `labeled_examples` is computed from, and the state recorded with them."""

    feature_logs: int
    label_choices: int
    state: SyncState


def exists(spark: SparkSession, cfg: Config) -> bool:
    return all(is_table(spark, table_path(cfg.paths.warehouse, n)) for n in N.LABELED_EXAMPLES_SOURCES)


def pin(spark: SparkSession, cfg: Config, *, feature_logs: int | None = None,
        label_choices: int | None = None) -> Pinned:
    """The current versions (or the given ones) and the labels state of that `label_choices` version.
    TableNotFoundError when no labels run has written `label_choices` yet."""
    paths = {n: table_path(cfg.paths.warehouse, n) for n in N.LABELED_EXAMPLES_SOURCES}
    for name, path in paths.items():
        if not is_table(spark, path):
            raise TableNotFoundError(name, path)
    fl = feature_logs if feature_logs is not None else last_commit(spark, paths[N.FEATURE_LOGS])["version"]
    ch = label_choices if label_choices is not None else last_commit(spark, paths[N.LABEL_CHOICES])["version"]
    state = last_state(spark, paths[N.LABEL_CHOICES], ch)
    if state is None:
        raise TableNotFoundError(N.LABEL_CHOICES, f"{paths[N.LABEL_CHOICES]} (no labels run recorded in it)")
    return Pinned(fl, ch, state)


def labeled_examples(spark: SparkSession, cfg: Config, pinned: Pinned | None = None, *,
                     features: bool = False) -> DataFrame:
    """EXAMPLE_COLUMNS for every served row (with `features`, the rest of its feature_logs row too), at
    the pinned versions (default: the current ones). Columns carry their access tags."""
    p = pinned or pin(spark, cfg)
    logs = read_delta(spark, table_path(cfg.paths.warehouse, N.FEATURE_LOGS), version=p.feature_logs)
    choices = read_delta(spark, table_path(cfg.paths.warehouse, N.LABEL_CHOICES), version=p.label_choices)
    policies = local_frame(spark, list(p.state.rules), POLICY_SCHEMA)
    rows = examples_from_choices(logs, choices, policies, p.state.as_of, features=features)
    if features:
        return rows
    return tagged(rows.select(*EXAMPLE_COLUMNS), N.LABELED_EXAMPLES, cfg.privacy_policy)
