"""Keep `label_choices` current: one MERGE of the requests a labels run can change, by request id.

`label_choices` holds a row only for a served request that has a label in its window (a few percent
of the served rows), partitioned by serving date. A day's run changes only the requests its labels
name, plus the new served rows whose labels came before them; new served rows without labels and
closing windows cost no write at all, because `pending` and `matured_*` are derived when
`labeled_examples` is read (`skewless.labels.view`). The nightly run reads:
- the day's label events (one label-date partition);
- `feature_logs`' request ids and serving times for the dates those labels can reach (the longest
  label window before the earliest of them), to find the served rows they name and count orphans;
- `feature_logs`' change feed since the last run's version, and the label ids of the dates the new
  rows can have labels on;
- the label events of the named requests, from the label dates they can have labels on;
- the `label_choices` partitions of the serving dates it changes (the MERGE's condition names them).
Nothing in it grows with the length of the history.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.access import tagged
from skewless.core.config import Config, LabelPolicy
from skewless.core.delta import (
    commit_metrics,
    ensure_table,
    is_table,
    last_commit,
    read_delta,
    read_table,
    retry_conflicts,
    session_conf,
)
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.labels.sync import (
    SyncState,
    feed_covers,
    label_dates_since,
    labels_as_of_watermark,
    last_state,
    policies_digest,
    reach_from,
    served_changes,
)
from skewless.labels.transforms import (
    CHOICE_COLUMNS,
    POLICY_SCHEMA,
    SERVED_COLUMNS,
    label_choices,
    label_join_counts,
    policy_rows,
)

# Deletion vectors: a MERGE that changes a few rows of a file marks them instead of rewriting it.
CHOICE_PROPERTIES = {"delta.enableDeletionVectors": "true"}
AS_OF_PROPERTY = "skewless.labels.as_of"
_CHANGED = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in (N.LABEL, N.LABEL_OBSERVED_AT, N.LABEL_SOURCE))
ZERO = {"joinable": 0, "orphaned": 0, "before_prediction": 0, "updated": 0, "inserted": 0, "deleted": 0,
        "choices_files_read": 0, "choices_files_written": 0, "feature_logs_files_read": 0}


def update_choices(spark: SparkSession, cfg: Config, days: list[datetime], *, full: bool, progress: Progress,
                   ingested: bool = False, first_observed: datetime | None = None) -> dict[str, int]:
    """Bring `label_choices` to the labels loaded through `days`: a MERGE, or a recompute on the first
    run, with `full`, after a change of label policies, or when the change feed does not cover the range.
    `ingested`: this process has just loaded `days`, whose earliest event was observed at
    `first_observed` (None: no event); otherwise that is read from `labels`."""
    fl_path = table_path(cfg.paths.warehouse, N.FEATURE_LOGS)
    if not is_table(spark, fl_path):
        progress.step("no feature_logs yet: labels ingested, nothing to join")
        return dict(ZERO)
    labels = read_table(spark, cfg.paths.warehouse, N.LABELS)
    labels_version = last_commit(spark, table_path(cfg.paths.warehouse, N.LABELS))["version"]
    path = table_path(cfg.paths.warehouse, N.LABEL_CHOICES)
    prev = None if not is_table(spark, path) else last_state(spark, path)
    dates = _run_dates(spark, cfg, days, prev, labels_version, full=full, progress=progress)
    # Labels are known through the last ingested date, also when that day brought no label; a rerun of
    # an older date never moves the watermark back. Merging from a state, the dates loaded since are
    # known from the log; otherwise from the labels themselves (an aggregate over the table).
    through = max(dates or days) + timedelta(days=1)
    as_of = max(through, prev.as_of if prev is not None else datetime.min)
    if dates is None or full or prev is None or prev.labels_version is None:
        as_of = max(as_of, labels_as_of_watermark(labels) or datetime.min)
    if dates is None:
        prev = None
    rows = tuple(policy_rows(cfg.models))
    state = SyncState(last_commit(spark, fl_path)["version"], as_of, policies_digest(rows), rows, labels_version)
    run_labels = labels.where(F.col(N.LABEL_DATE).isin(*sorted(d.date() for d in (dates or days))))
    # The run's earliest label: known from the ingest unless the run takes a killed run's dates too.
    first = first_observed if ingested and set(dates or days) == set(days) else _first_observed(run_labels)
    if prev is not None and prev.policies != state.policies:
        progress.step("label policies changed since the last run: recomputing label_choices")
        prev = None
    retain = cfg.privacy_policy.retention.vacuum_retain_hours
    if prev is not None and not full and not feed_covers(spark, fl_path, prev.feature_logs_version,
                                                         state.feature_logs_version, retain):
        progress.step("feature_logs' change feed does not cover the range (off, or older than the VACUUM "
                      "retention): recomputing label_choices")
        prev = None
    if prev is None or full:
        return _recompute(spark, cfg, fl_path, path, labels, run_labels, first, state, progress)
    return _merge_changes(spark, cfg, fl_path, path, labels, run_labels, first, state, prev, progress)


def _run_dates(spark: SparkSession, cfg: Config, days: list[datetime], prev: SyncState | None, labels_version: int,
               *, full: bool, progress: Progress) -> set[datetime] | None:
    """The label dates this run must absorb: its own, and those of a run killed after its `labels`
    commit (named in the commits since the last state's, by a run that wrote no audit row: the audit
    row comes after label_choices). None: recompute (no usable state)."""
    if prev is None or full or prev.labels_version is None:  # None: a state recorded before it was kept
        return None if prev is None else set(days)
    runs = label_dates_since(spark, table_path(cfg.paths.warehouse, N.LABELS), prev.labels_version, labels_version)
    if runs is None:
        progress.step("labels' log does not tell which dates changed since the last run: recomputing label_choices")
        return None
    own = {d.date() for d in days}
    others = {run: extra for run, dates in runs.items() if (extra := dates - own)}
    finished = _audited_runs(spark, cfg, list(others)) if others else set()
    left = sorted({d for run, dates in others.items() if run not in finished for d in dates})
    if left:
        progress.step(f"also absorbing label dates a killed run loaded but did not join: "
                      f"{', '.join(f'{d:%Y-%m-%d}' for d in left)}")
    return set(days) | {datetime.combine(d, datetime.min.time()) for d in left}


def _audited_runs(spark: SparkSession, cfg: Config, runs: list[str]) -> set[str]:
    """The runs among `runs` that wrote their audit row (they finished their label_choices step)."""
    path = table_path(cfg.paths.warehouse, N.INGESTION_AUDIT)
    if not is_table(spark, path):
        return set()
    rows = read_delta(spark, path).where(F.col(N.RUN_ID).isin(*runs)).select(N.RUN_ID).distinct().collect()
    return {str(r[0]) for r in rows}


def label_windows(cfg: Config) -> list[int]:
    """Every label window in days: the models' and the default policy's (for unknown models)."""
    return [m.labels.window_days for m in cfg.models] + [LabelPolicy().window_days]


def _first_observed(run_labels: DataFrame) -> datetime | None:
    row = run_labels.agg(F.min(N.OBSERVED_AT)).first()
    return row[0] if row is not None else None


def _reachable(served: DataFrame, first: datetime | None, cfg: Config) -> DataFrame | None:
    """The served rows labels observed from `first` on can belong to (from the longest window before
    it on); None when the run loaded no label."""
    return served.where(F.col(N.EVENT_DATE) >= F.lit(reach_from(first, label_windows(cfg)))) if first else None


def _named(reachable: DataFrame | None, run_labels: DataFrame, served: DataFrame) -> DataFrame:
    """The reachable served rows the run's labels name (no broadcast hint: a day's ids are few here,
    millions at the design's volume, and Spark sizes the join)."""
    if reachable is None:
        return served.limit(0)
    return reachable.join(run_labels.select(N.REQUEST_ID).distinct(), on=N.REQUEST_ID, how="left_semi")


def _policies(spark: SparkSession, state: SyncState) -> DataFrame:
    return local_frame(spark, list(state.rules), POLICY_SCHEMA)


def _join_counts(run_labels: DataFrame, served: DataFrame, as_of: datetime, progress: Progress) -> dict[str, int]:
    """How this run's labels join `served`, which holds every served row they can label."""
    jc = label_join_counts(run_labels, served).first()
    assert jc is not None
    counts = {k: int(jc[k]) for k in ("joinable", "orphaned", "before_prediction")}
    progress.step(f"labels as of {as_of:%Y-%m-%d}: joinable={counts['joinable']} "
                  f"orphaned={counts['orphaned']} before_prediction={counts['before_prediction']}")
    return counts


def _recompute(spark: SparkSession, cfg: Config, fl_path: str, path: str, labels: DataFrame, run_labels: DataFrame,
               first: datetime | None, state: SyncState, progress: Progress) -> dict[str, int]:
    served = read_delta(spark, fl_path, version=state.feature_logs_version).select(*SERVED_COLUMNS)
    named = _named(_reachable(served, first, cfg), run_labels, served)
    counts = dict(ZERO) | _join_counts(run_labels, named, state.as_of, progress)
    # Only served rows some label names can have a choice: the rest never enter the aggregation.
    labeled = served.join(labels.select(N.REQUEST_ID).distinct(), on=N.REQUEST_ID, how="left_semi")
    rows = tagged(label_choices(labeled, labels, _policies(spark, state), state.as_of).select(*CHOICE_COLUMNS),
                  N.LABEL_CHOICES, cfg.privacy_policy)
    ensure_table(spark, path, rows.schema, (N.EVENT_DATE,), CHOICE_PROPERTIES)
    before = last_commit(spark, path)["version"]

    def write() -> None:
        (rows.repartition(N.EVENT_DATE).write.format("delta").mode("overwrite").option("overwriteSchema", "true")
         .option("userMetadata", state.to_metadata()).partitionBy(N.EVENT_DATE).save(path))
    retry_conflicts(write, f"recompute {path}")
    commit = last_commit(spark, path)
    if commit["version"] == before:  # Delta skips a write that changes nothing: record the state anyway
        _set_state(spark, path, state)
    metrics = commit["metrics"] if commit["version"] != before else {}
    counts.update(inserted=int(metrics.get("numOutputRows", 0)),
                  choices_files_written=int(metrics.get("numFiles", 0)))
    progress.step(f"label_choices recomputed as of {state.as_of:%Y-%m-%d}: {counts['inserted']} labeled requests")
    return counts


def _merge_changes(spark: SparkSession, cfg: Config, fl_path: str, path: str, labels: DataFrame,
                   run_labels: DataFrame, first: datetime | None, state: SyncState, prev: SyncState,
                   progress: Progress) -> dict[str, int]:
    """MERGE the choices of the requests this run can change: those its labels name, and new served
    rows that already have label events. Unchanged choices are not rewritten; nothing else is read
    beyond the dates these can reach."""
    pinned = read_delta(spark, fl_path, version=state.feature_logs_version).select(*SERVED_COLUMNS)
    held: list[DataFrame] = []
    try:
        reachable = _reachable(pinned, first, cfg)
        named = _named(reachable, run_labels, pinned)
        # The served rows compacted since the last run (the day's, plus late hours), read once.
        new = served_changes(spark, fl_path, prev.feature_logs_version, state.feature_logs_version).localCheckpoint(
            eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        held.append(new)
        # A label is observed on or after its prediction: only label dates from the new rows' first
        # serving date on can hold labels that came before them.
        first_new = new.agg(F.min(N.EVENT_DATE)).first()
        early = (new.join(labels.where(F.col(N.LABEL_DATE) >= F.lit(first_new[0])).select(N.REQUEST_ID).distinct(),
                          on=N.REQUEST_ID, how="left_semi")
                 if first_new is not None and first_new[0] is not None else pinned.limit(0))
        affected = (named.join(early.select(N.REQUEST_ID), on=N.REQUEST_ID, how="left_anti").unionByName(early)
                    .localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK))
        held.append(affected)
        counts = dict(ZERO) | _join_counts(run_labels, affected, state.as_of, progress)
        size = affected.agg(F.count(F.lit(1)).alias("n"), F.collect_set(N.EVENT_DATE).alias("dates")).first()
        assert size is not None
        dates = sorted(size["dates"])  # at most the window's days
        progress.step(f"{size['n']} requests to re-choose, served on {len(dates)} dates")
        # Files the reachable rows' read touches, from the Delta log (partition pruning only: request
        # ids are random, so file statistics skip nothing within a date).
        counts["feature_logs_files_read"] = len(reachable.inputFiles()) if reachable is not None else 0
        if not dates:
            _record_state(spark, path, state, prev)
            return counts
        # The files the MERGE scans: those of the dates its condition names (the commit's metrics
        # count only the files it rewrites or marks).
        counts["choices_files_read"] = len(read_delta(spark, path).where(F.col(N.EVENT_DATE).isin(*dates)).inputFiles())
        first_label = labels.where(F.col(N.LABEL_DATE) >= F.lit(dates[0]))
        fresh = label_choices(affected, first_label.join(affected.select(N.REQUEST_ID), on=N.REQUEST_ID,
                                                         how="left_semi"), _policies(spark, state), state.as_of)
        # Every affected request, with its new choice or none (a choice it had is then deleted).
        source = (affected.select(N.REQUEST_ID, N.EVENT_DATE).join(fresh, on=[N.REQUEST_ID, N.EVENT_DATE], how="left")
                  .select(*CHOICE_COLUMNS).localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK))
        held.append(source)
        m = commit_metrics(spark, path, lambda: _merge(spark, path, source, dates, state))
    finally:
        for df in held:
            df.unpersist()
    counts.update(updated=int(m.get("numTargetRowsUpdated", 0)), inserted=int(m.get("numTargetRowsInserted", 0)),
                  deleted=int(m.get("numTargetRowsDeleted", 0)),
                  choices_files_written=int(m.get("numTargetFilesAdded", 0))
                  + int(m.get("numTargetDeletionVectorsAdded", 0)))
    progress.step(f"label_choices merged as of {state.as_of:%Y-%m-%d}: updated={counts['updated']} "
                  f"inserted={counts['inserted']} deleted={counts['deleted']}; files read "
                  f"{counts['choices_files_read']} of label_choices and {counts['feature_logs_files_read']} of "
                  f"feature_logs, written {counts['choices_files_written']} (scan {m.get('scanTimeMs', '-')} ms, "
                  f"rewrite {m.get('rewriteTimeMs', '-')} ms)")
    return counts


def _merge(spark: SparkSession, path: str, source: DataFrame, dates: list[date], state: SyncState) -> None:
    listed = ", ".join(f"DATE'{d:%Y-%m-%d}'" for d in dates)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(
        source.select(*[F.col(c).alias(c) for c in CHOICE_COLUMNS]).alias("s"),
        # The partitions of the serving dates the source names: the only target files scanned.
        f"t.{N.EVENT_DATE} IN ({listed}) AND t.{N.REQUEST_ID} = s.{N.REQUEST_ID} "
        f"AND t.{N.EVENT_DATE} = s.{N.EVENT_DATE}",
    ).whenMatchedDelete(condition=f"s.{N.LABEL_OBSERVED_AT} IS NULL").whenMatchedUpdateAll(
        condition=_CHANGED).whenNotMatchedInsertAll(condition=f"s.{N.LABEL_OBSERVED_AT} IS NOT NULL")
    # The API has no per-call userMetadata option: the commit takes it from the session. The source
    # is a checkpoint (fixed rows): Delta need not copy it once more before its two passes.
    with session_conf(spark, "spark.databricks.delta.commitInfo.userMetadata", state.to_metadata()), \
            session_conf(spark, "spark.databricks.delta.merge.materializeSource", "none"):
        merge.execute()


def _record_state(spark: SparkSession, path: str, state: SyncState, prev: SyncState) -> None:
    """No choice changes: record the new watermark (states derive from it) in a commit that adds no
    file (a table property; Delta skips an empty append); none at all when nothing moved (a rerun)."""
    if (state.as_of, state.feature_logs_version) != (prev.as_of, prev.feature_logs_version):
        _set_state(spark, path, state)


def _set_state(spark: SparkSession, path: str, state: SyncState) -> None:
    def commit() -> None:
        with session_conf(spark, "spark.databricks.delta.commitInfo.userMetadata", state.to_metadata()):
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES "
                      f"('{AS_OF_PROPERTY}' = '{state.as_of.isoformat()}')")
    retry_conflicts(commit, f"record the label watermark in {path}")
