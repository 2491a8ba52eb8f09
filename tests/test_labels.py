"""Delayed labels: windows, maturity, corrections, labels before the prediction, orphans, the state
recorded with each labels commit, idempotent reruns and as-of reproducibility."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run
from skewless.labels import view as examples_view
from skewless.labels.state import LabelState, last_state, latest_as_of_between, reach_from
from skewless.labels.transforms import (
    LABEL_LINE_COLUMNS,
    POLICY_SCHEMA,
    SERVED_COLUMNS,
    classify_labels,
    examples_from_events,
    label_examples,
    label_join_counts,
    policy_rows,
    with_features,
)

from .conftest import HOUR, KEY, ROOT, frozen, record, write_hour

POLICIES = [("fraud", 60, "negative", "latest")]
RUN_COLUMNS = (N.RUN_ID, N.INGESTED_AT)  # differ between any two runs by design


def _served(spark: SparkSession, rows: list[tuple[str, str, str]]) -> DataFrame:
    """(request_id, model name, logged_at) -> a frame with the served columns."""
    df = spark.createDataFrame(rows, "request_id string, model_name string, at string")
    return df.select(
        N.REQUEST_ID, F.to_timestamp("at").alias(N.LOGGED_AT),
        F.struct(F.col("model_name").alias("name"), F.lit("v1").alias("version")).alias(N.MODEL),
        F.lit(0.1).alias(N.SAMPLE_RATE), F.to_date("at").alias(N.EVENT_DATE),
        F.hour(F.to_timestamp("at")).alias(N.EVENT_HOUR),
    ).select(*SERVED_COLUMNS)


def _labels(spark: SparkSession, rows: list[tuple[str, float, str, str]]) -> DataFrame:
    df = spark.createDataFrame(rows, "request_id string, label double, at string, source string")
    return df.select(N.REQUEST_ID, N.LABEL, F.to_timestamp("at").alias(N.OBSERVED_AT), N.SOURCE)


@pytest.fixture()
def scenario(spark: SparkSession) -> tuple[DataFrame, DataFrame, DataFrame]:
    served = _served(spark, [
        ("r1", "fraud", "2026-11-01 10:00:00"),   # chargeback, then a won dispute corrects it
        ("r2", "fraud", "2026-11-01 10:00:00"),   # only a label from before the prediction: never joins
        ("r3", "ranker", "2026-11-01 10:00:00"),  # no policy: default (30 days, drop); label too late
        ("r4", "fraud", "2026-11-25 10:00:00"),   # window still open
    ])
    labels = _labels(spark, [
        ("r1", 1.0, "2026-11-10 00:00:00", "chargeback"), ("r1", 0.0, "2026-11-15 00:00:00", "dispute_won"),
        ("r2", 1.0, "2026-11-01 08:00:00", "chargeback"), ("r3", 1.0, "2026-12-15 00:00:00", "click"),
        ("zz", 1.0, "2026-11-05 00:00:00", "chargeback"),
    ])
    return served, labels, spark.createDataFrame(POLICIES, POLICY_SCHEMA)


def _examples(spark: SparkSession, cfg: Config) -> DataFrame:
    return examples_view.labeled_examples(spark, cfg)


def _states(df: DataFrame) -> DataFrame:
    return df.select(N.REQUEST_ID, N.LABEL, N.LABEL_STATE, N.LABEL_SOURCE)


def test_windows_maturity_corrections_and_policy(spark: SparkSession, scenario: tuple) -> None:
    served, labels, policies = scenario
    got = _states(label_examples(served, labels, policies, datetime(2027, 1, 1)))
    expected = spark.createDataFrame([
        ("r1", 0.0, "labeled", "dispute_won"), ("r2", 0.0, "matured_negative", None),
        ("r3", None, "matured_dropped", None), ("r4", None, "pending", None)], got.schema)
    assertDataFrameEqual(got, expected)


def test_as_of_sees_only_what_was_known(spark: SparkSession, scenario: tuple) -> None:
    served, labels, policies = scenario
    got = _states(label_examples(served, labels, policies, datetime(2026, 11, 12)))
    expected = spark.createDataFrame([
        ("r1", 1.0, "labeled", "chargeback"), ("r2", None, "pending", None),
        ("r3", None, "pending", None), ("r4", None, "pending", None)], got.schema)
    assertDataFrameEqual(got, expected)


@pytest.mark.parametrize(("conflict", "label", "source"), [("earliest", 1.0, "chargeback"), ("max", 1.0, "chargeback"),
                                                          ("latest", 0.0, "dispute_won")])
def test_conflict_policies(spark: SparkSession, scenario: tuple, conflict: str, label: float, source: str) -> None:
    served, labels, _ = scenario
    policies = spark.createDataFrame([("fraud", 60, "negative", conflict)], POLICY_SCHEMA)
    row = label_examples(served, labels, policies, datetime(2026, 12, 31)).where("request_id = 'r1'").first()
    assert row is not None and (row[N.LABEL], row[N.LABEL_SOURCE]) == (label, source)
    assert row[N.LABEL_DELAY_S] == pytest.approx(timedelta(days=8, hours=14).total_seconds() if conflict != "latest"
                                                 else timedelta(days=13, hours=14).total_seconds())


def test_orphans_and_labels_before_the_prediction_are_counted(spark: SparkSession, scenario: tuple) -> None:
    served, labels, _ = scenario
    counts = label_join_counts(labels, served).first()
    assert counts is not None and counts.asDict() == {"orphaned": 1, "before_prediction": 1, "joinable": 3,
                                                      "first_observed": datetime(2026, 11, 1, 8)}


def test_label_quarantine_reasons(spark: SparkSession) -> None:
    texts = ['{"request_id":"a","label":1,"observed_at":"2026-12-01T00:00:00Z"}', '{"request_id":"a",',
             '{"label":1,"observed_at":"2026-12-01T00:00:00Z"}',
             '{"request_id":"a","observed_at":"2026-12-01T00:00:00Z"}',
             '{"request_id":"a","label":"yes","observed_at":"2026-12-01T00:00:00Z"}', '{"request_id":"a","label":1}',
             '{"request_id":"a","label":1,"observed_at":"yesterday"}',
             '{"request_id":"a","label":1,"observed_at":"2026-12-01T23:59:59Z"}',  # the folder's last second
             '{"request_id":"a","label":1,"observed_at":"2026-12-02T00:00:00Z"}']  # after the folder's day
    lines = spark.createDataFrame([(t, "f", i, datetime(2026, 12, 1).date()) for i, t in enumerate(texts)],
                                  f"{N.RAW_VALUE} string, {N.SOURCE_FILE} string, {N.ROW_ID} long, {N.LABEL_DATE} date")
    assert tuple(lines.columns) == LABEL_LINE_COLUMNS
    reasons = [r[0] for r in classify_labels(lines).orderBy(N.ROW_ID).select(N.REASON).collect()]
    assert reasons == [None, "malformed_json", "missing_request_id", "missing_label", "type_mismatch:label",
                       "missing_observed_at", "bad_timestamp", None, "out_of_range_timestamp"]


@pytest.fixture(scope="module")
def three_served(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Landing and warehouse after one compacted hour of p1, p2 and p3, built once for the tests that
    start from it: each copies it (a Delta table's log names its files relative to its folder)."""
    root = tmp_path_factory.mktemp("three-served")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    write_hour(cfg.paths.landing, HOUR, "pod-0", [record("p1"), record("p2"), record("p3")])
    compact_run.compact_hour(spark, cfg, HOUR, Progress("test"), KEY)
    return root


def _start_from(base: Path, cfg: Config) -> None:
    shutil.copytree(base / "landing", cfg.paths.landing)
    shutil.copytree(base / "warehouse", cfg.paths.warehouse)


def _write_labels(landing: str, day: str, events: list[dict | str]) -> None:
    folder = Path(landing) / "labels" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels-pod-0.jsonl").write_text(
        "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")


def test_labels_job_loads_dates_and_reruns_change_nothing(
        spark: SparkSession, warehouse: Config, three_served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    landing = warehouse.paths.landing
    _start_from(three_served, warehouse)
    _write_labels(landing, "2026-12-01", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"},
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"},
        {"request_id": "ghost", "label": 1, "observed_at": "2026-12-01T09:00:00Z"}, "{broken"])
    _write_labels(landing, "2026-12-05", [
        {"request_id": "p1", "label": 0, "observed_at": "2026-12-05T09:00:00Z", "source": "dispute_won"}])

    def run(day: str) -> None:
        assert labels_run.run(spark, warehouse, argparse.Namespace(date=day, through=None)) == 0

    run("2026-12-01")
    as_known_dec2 = frozen(spark, labels_run.examples_as_of(spark, warehouse, datetime(2026, 12, 2))
                           .drop(N.LABELS_AS_OF))
    p1 = as_known_dec2.where("request_id = 'p1'").first()
    assert p1 is not None and p1[N.LABEL] == 1.0 and p1[N.FEATURES]["amount"] == 12.5  # features joined back
    capsys.readouterr()
    run("2026-12-05")
    # The run wrote the one file of its label date and read the one hour of served rows it can reach.
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (merged["labels_files_written"], merged["feature_logs_files_read"]) == (1, 1), merged
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "p1": (0.0, "labeled"), "p2": (None, "pending"), "p3": (None, "pending")}
    audit = read_table(spark, warehouse.paths.warehouse, N.INGESTION_AUDIT).where("job = 'labels'")
    first = audit.orderBy("started_at").first()
    assert first is not None and (first["records_read"], first["loaded"], first["duplicates"],
                                  first["quarantined"]) == (4, 2, 1, 1)
    assert first["details"]["orphaned"] == 1
    assert [r["status"] for r in audit.collect()] == ["succeeded", "succeeded"]
    before = frozen(spark, ex)
    events = frozen(spark, read_table(spark, warehouse.paths.warehouse, N.LABELS).drop(*RUN_COLUMNS))
    history = f"DESCRIBE HISTORY delta.`{warehouse.paths.warehouse}/{N.LABELS}`"
    version = spark.sql(history).first()

    run("2026-12-05")  # the rerun: the date replaced by the same events, the same answer

    last = read_table(spark, warehouse.paths.warehouse, N.INGESTION_AUDIT).orderBy(F.desc("started_at")).first()
    assert last is not None and last["job"] == "labels", last
    assert (last["loaded"], last["duplicates"], last["details"]["joinable"]) == (1, 0, 1)
    assertDataFrameEqual(_examples(spark, warehouse), before)
    assertDataFrameEqual(read_table(spark, warehouse.paths.warehouse, N.LABELS).drop(*RUN_COLUMNS), events)
    _write_labels(landing, "2026-12-06", ["   "])
    capsys.readouterr()
    run("2026-12-06")  # a quiet day: no label, so the replace of the date writes nothing
    quiet = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (quiet["loaded"], quiet["labels_files_written"], quiet["feature_logs_files_read"]) == (0, 0, 0), quiet
    last_commit = spark.sql(history).first()
    # One commit that adds no file: the new watermark the states are derived from.
    assert version is not None and last_commit is not None and last_commit["version"] == version["version"] + 2
    assert last_commit["operation"] == "SET TBLPROPERTIES", last_commit
    recorded = last_state(spark, f"{warehouse.paths.warehouse}/{N.LABELS}")
    assert recorded is not None and recorded.as_of == datetime(2026, 12, 7)
    # As of Dec 2 the chargeback stands, even though a correction arrived since.
    assertDataFrameEqual(labels_run.examples_as_of(spark, warehouse, datetime(2026, 12, 2)).drop(N.LABELS_AS_OF),
                         as_known_dec2)

    # The broken line of Dec 1, fixed at the source, and the date rerun: its quarantined row goes. (The
    # dates that never quarantined a line have no folder in the quarantine: the run asks storage first.)
    q_path = f"{warehouse.paths.warehouse}/{N.LABELS_QUARANTINE}"
    assert {p.name for p in Path(q_path).glob(f"{N.LABEL_DATE}=*")} == {f"{N.LABEL_DATE}=2026-12-01",
                                                                          f"{N.LABEL_DATE}=2026-12-06"}

    def quarantined() -> dict[str, str]:
        rows = read_table(spark, warehouse.paths.warehouse, N.LABELS_QUARANTINE).collect()
        return {f"{r[N.LABEL_DATE]}": r[N.REASON] for r in rows}

    assert quarantined() == {"2026-12-01": "malformed_json", "2026-12-06": "empty_record"}
    _write_labels(landing, "2026-12-01", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"}])
    run("2026-12-01")
    assert quarantined() == {"2026-12-06": "empty_record"}


def test_new_served_rows_and_closing_windows_cost_no_write_and_policies_apply_from_the_next_run(
        spark: SparkSession, warehouse: Config, capsys: pytest.CaptureFixture[str]) -> None:
    landing, tables = warehouse.paths.landing, warehouse.paths.warehouse
    write_hour(landing, HOUR, "pod-0", [record("p1"), record("p2")])
    compact_run.compact_hour(spark, warehouse, HOUR, Progress("test"), KEY)
    _write_labels(landing, "2026-12-01", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"}])
    for day in ("2026-12-02", "2027-02-01"):
        _write_labels(landing, day, [])

    def run(day: str, wh: Config = warehouse) -> dict[str, object]:
        assert labels_run.run(spark, wh, argparse.Namespace(date=day, through=None)) == 0
        return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))

    def state() -> LabelState | None:
        return last_state(spark, f"{tables}/{N.LABELS}")

    run("2026-12-01")  # the state rides in the commit of the date's events
    first = state()
    assert first is not None and first.as_of == datetime(2026, 12, 2)
    assert first.rules == tuple(policy_rows(warehouse.models))

    # Compaction adds served rows: a new row without labels costs the labels run nothing.
    hour2 = HOUR + timedelta(hours=1)
    write_hour(landing, hour2, "pod-0", [record("p3", logged_at="2026-11-25T14:05:00Z")])
    compact_run.compact_hour(spark, warehouse, hour2, Progress("test"), KEY)
    out = run("2026-12-02")
    assert (out["loaded"], out["labels_files_written"]) == (0, 0)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: r[N.LABEL_STATE] for r in ex.collect()} == {
        "p1": "labeled", "p2": "pending", "p3": "pending"}

    # Two months on, the 60-day windows of p2 and p3 have closed: both mature as negatives, at read
    # time: the run writes no row for them, only the new watermark.
    out = run("2027-02-01")
    assert (out["loaded"], out["labels_files_written"]) == (0, 0)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "p1": (1.0, "labeled"), "p2": (0.0, "matured_negative"), "p3": (0.0, "matured_negative")}

    # A different label window changes every row's answer: readers take it from the next run's state,
    # never from the config they run with.
    models = tuple(dataclasses.replace(m, labels=dataclasses.replace(m.labels, window_days=7))
                   for m in warehouse.models)
    changed = dataclasses.replace(warehouse, models=models)
    assert {r[N.WINDOW_END] - r[N.LOGGED_AT] for r in _examples(spark, changed).collect()} == {timedelta(days=60)}
    run("2027-02-01", changed)
    recorded = state()
    assert recorded is not None and recorded.rules == tuple(policy_rows(models))
    assert {r[1] for r in recorded.rules} == {7}
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: r[N.LABEL_STATE] for r in ex.collect()} == {  # p1's label came 6 days on
        "p1": "labeled", "p2": "matured_negative", "p3": "matured_negative"}
    assert {r[N.WINDOW_END] - r[N.LOGGED_AT] for r in ex.collect()} == {timedelta(days=7)}


def test_a_run_killed_after_its_label_commit_left_nothing_undone(
        spark: SparkSession, warehouse: Config, three_served: Path) -> None:
    landing, tables = warehouse.paths.landing, warehouse.paths.warehouse
    _start_from(three_served, warehouse)
    _write_labels(landing, "2026-12-01", [])
    _write_labels(landing, "2026-12-02", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-02T09:00:00Z", "source": "chargeback"}])
    _write_labels(landing, "2026-12-03", [
        {"request_id": "p2", "label": 1, "observed_at": "2026-12-03T09:00:00Z", "source": "chargeback"}])
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-01", through=None)) == 0
    # The run of Dec 2 dies after its label commit, before its audit row. A forget of p3 (a MERGE that
    # only deletes) lands after it.
    labels_run.ingest(spark, warehouse, [datetime(2026, 12, 2)], "labels-killed", datetime(2026, 12, 3),
                      Progress("test"))
    (DeltaTable.forPath(spark, f"{tables}/{N.LABELS}").alias("t")
     .merge(spark.createDataFrame([("p3",)], "request_id string").alias("s"), "t.request_id = s.request_id")
     .whenMatchedDelete().execute())
    # Its events and watermark are in already: readers see them, through the forget's later version.
    recorded = last_state(spark, f"{tables}/{N.LABELS}")
    assert recorded is not None and recorded.as_of == datetime(2026, 12, 3)
    assert {r[N.REQUEST_ID]: r[N.LABEL_STATE] for r in _examples(spark, warehouse).collect()} == {
        "p1": "labeled", "p2": "pending", "p3": "pending"}
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-03", through=None)) == 0
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "p1": (1.0, "labeled"), "p2": (1.0, "labeled"), "p3": (None, "pending")}
    recorded = last_state(spark, f"{tables}/{N.LABELS}")
    assert recorded is not None and recorded.as_of == datetime(2026, 12, 4)
    # The killed date rerun, and a backfill of every date: the same rows.
    before = frozen(spark, ex)
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-02", through=None)) == 0
    assert labels_run.run(spark, warehouse, argparse.Namespace(date=None, through="2026-12-03")) == 0
    assertDataFrameEqual(_examples(spark, warehouse), before)


def test_a_watermark_overtaken_by_a_concurrent_run_is_settled_forward(spark: SparkSession, tmp_path: Path) -> None:
    """Delta commits two labels runs of different dates in either order without replaying them: the
    run that commits last with the earlier watermark records the later one again."""
    path = str(tmp_path / "labels")
    rules = (("fraud", 60, "negative", "latest"),)
    spark.range(1).write.format("delta").save(path)  # v0
    for as_of in (datetime(2026, 12, 4), datetime(2026, 12, 3)):  # v1: the later date's run; v2: the other
        meta = LabelState(as_of, "d", rules).to_metadata()
        spark.range(1).write.format("delta").mode("append").option("userMetadata", meta).save(path)
    assert latest_as_of_between(spark, path, 0, 2) == datetime(2026, 12, 4)
    assert latest_as_of_between(spark, path, 1, 2) is None
    labels_run._settle_state(spark, path, LabelState(datetime(2026, 12, 3), "d", rules), 0,
                             {"operation": "WRITE", "version": 2})
    assert last_state(spark, path) == LabelState(datetime(2026, 12, 4), "d", rules)
    # A quiet run of the earlier date (its replace made no commit) leaves the later watermark alone.
    version = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").first()
    labels_run._settle_state(spark, path, LabelState(datetime(2026, 12, 3), "d", rules), 1,
                             {"operation": None, "version": 3})
    assert last_state(spark, path) == LabelState(datetime(2026, 12, 4), "d", rules)
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").first() == version  # nothing to record


def test_rows_no_label_of_the_run_can_reach_are_not_read_but_late_deliveries_still_land(
        spark: SparkSession, warehouse: Config, capsys: pytest.CaptureFixture[str]) -> None:
    landing = warehouse.paths.landing
    # Served on three dates, uploaded in one hour: a lateness tolerance that admits them (the labels
    # below only see event dates; one compaction instead of three).
    write_hour(landing, HOUR, "pod-0", [record("o3", logged_at="2026-06-01T10:05:00Z"),
                                        record("o1", logged_at="2026-09-01T10:05:00Z"),
                                        record("o2", logged_at="2026-09-01T10:06:00Z"), record("p1")])
    late = dataclasses.replace(warehouse.compaction, late_tolerance_hours=24 * 200)
    compact_run.compact_hour(spark, dataclasses.replace(warehouse, compaction=late), HOUR, Progress("test"), KEY)
    _write_labels(landing, "2026-11-30", [])
    _write_labels(landing, "2026-12-01", [
        {"request_id": "o3", "label": 1, "observed_at": "2026-11-20T09:00:00Z"},  # 172 days on: too late
        {"request_id": "o1", "label": 1, "observed_at": "2026-11-20T09:00:00Z"},  # 80 days on: too late
        # In its window (44 days on) but delivered six weeks after it was observed: it must still land.
        {"request_id": "o2", "label": 1, "observed_at": "2026-10-15T09:00:00Z"},
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z"}])
    for day in ("2026-11-30", "2026-12-01"):
        assert labels_run.run(spark, warehouse, argparse.Namespace(date=day, through=None)) == 0
    out, _ = capsys.readouterr()

    # Rows served before 2026-08-15 (o2's observation less the 60-day window and a day) cannot take any
    # of these labels: feature_logs is read from that date on, so o3's label, whose row was served
    # before it, counts as orphaned (no served row it can label), and o1's as joinable (outside its window).
    counted = json.loads(out.strip().splitlines()[-1])
    assert (counted["joinable"], counted["orphaned"]) == (3, 1)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "o3": (0.0, "matured_negative"), "o1": (0.0, "matured_negative"), "o2": (1.0, "labeled"),
        "p1": (1.0, "labeled")}
    # A read of the rows served from a date on reads only the label dates from then on: the same rows.
    whole = frozen(spark, ex)
    for since in (date(2026, 9, 1), date(2026, 11, 25)):
        assertDataFrameEqual(examples_view.labeled_examples(spark, warehouse, served_from=since),
                             whole.where(F.col(N.EVENT_DATE) >= F.lit(since)))


def test_reach_from_is_the_first_serving_date_a_label_can_belong_to() -> None:
    assert reach_from(datetime(2026, 10, 15, 9), [30, 60]) == date(2026, 8, 15)
    assert reach_from(datetime(2026, 12, 1), [7]) == date(2026, 11, 23)


def test_label_state_round_trips_and_ignores_foreign_metadata() -> None:
    s = LabelState(datetime(2026, 12, 2), "abc", (("fraud", 60, "negative", "latest"),))
    assert LabelState.from_metadata(s.to_metadata()) == s
    assert LabelState.from_metadata('{"skewless.access.policy": "v1"}') is None
    assert LabelState.from_metadata(None) is None and LabelState.from_metadata("not json") is None


@pytest.mark.parametrize(("conflict", "tie_label"), [("latest", 1.0), ("earliest", 0.0), ("max", 1.0)])
def test_examples_chosen_from_events_in_one_pass_equal_the_join(spark: SparkSession, scenario: tuple,
                                                                conflict: str, tie_label: float) -> None:
    """The one-pass pick (each request's label events gathered, chosen on its served row) gives exactly
    the point-in-time join, for each conflict rule and watermark, ties included."""
    served, labels, _ = scenario
    policies = spark.createDataFrame([("fraud", 60, "negative", conflict)], POLICY_SCHEMA)
    # Two events of r4 at the same instant: both orders break the tie on the label.
    tied = labels.unionByName(_labels(spark, [("r4", 1.0, "2026-11-26 00:00:00", "chargeback"),
                                              ("r4", 0.0, "2026-11-26 00:00:00", "chargeback")]))
    for as_of in (datetime(2026, 11, 12), datetime(2026, 12, 31), datetime(2027, 1, 1)):
        got = frozen(spark, examples_from_events(served, tied, policies, as_of))
        assertDataFrameEqual(got, label_examples(served, tied, policies, as_of))
    r4 = got.where(F.col(N.REQUEST_ID) == "r4").first()
    assert r4 is not None and (r4[N.LABEL], r4[N.LABEL_STATE]) == (tie_label, N.STATE_LABELED)


def test_examples_from_events_carry_the_logged_row_as_the_join_then_the_features(spark: SparkSession,
                                                                                 scenario: tuple) -> None:
    """With `features`, the one-pass pick gives the training view's rows and column order, exactly as
    the point-in-time join with the logged rows joined back: the labels, then the row's other columns."""
    served, labels, policies = scenario
    logged = served.withColumn(N.FEATURES, F.struct((F.length(N.REQUEST_ID) * 1.5).alias("f0")))
    as_of = datetime(2026, 12, 31)
    got = frozen(spark, examples_from_events(logged, labels, policies, as_of, features=True))
    assert got.columns[-1] == N.FEATURES and got.columns[:2] == [N.REQUEST_ID, N.EVENT_DATE]
    assertDataFrameEqual(got, with_features(label_examples(served, labels, policies, as_of), logged),
                         checkRowOrder=False)


def test_last_state_is_the_latest_labels_commit_at_or_before_a_version(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "labels")
    a = LabelState(datetime(2026, 12, 2), "aaa", (("fraud", 60, "negative", "latest"),))
    b = LabelState(datetime(2026, 12, 3), "bbb", (("fraud", 30, "drop", "latest"),))
    spark.range(1).write.format("delta").save(path)  # v0: no state
    for meta in (a.to_metadata(), '{"skewless.privacy.policy": "v1"}', b.to_metadata()):  # v1, v2, v3
        spark.range(1).write.format("delta").mode("append").option("userMetadata", meta).save(path)
    assert last_state(spark, path) == b
    assert [last_state(spark, path, v) for v in range(4)] == [None, a, a, b]
    assert last_state(spark, str(tmp_path / "nothing")) is None
