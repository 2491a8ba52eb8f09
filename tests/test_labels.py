"""Delayed labels: windows, maturity, corrections, labels before the prediction, orphans, the MERGE
path, idempotent reruns and as-of reproducibility."""

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
from skewless.labels.sync import SyncState, _feed_covers_by_history, feed_covers, last_state, reach_from
from skewless.labels.transforms import (
    LABEL_LINE_COLUMNS,
    POLICY_SCHEMA,
    SERVED_COLUMNS,
    classify_labels,
    examples_from_choices,
    examples_from_events,
    label_choices,
    label_examples,
    label_join_counts,
)

from .conftest import HOUR, KEY, ROOT, frozen, record, write_hour

POLICIES = [("fraud", 60, "negative", "latest")]


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


def test_labels_job_merges_incrementally_and_reruns_change_nothing(
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
        assert labels_run.run(spark, warehouse, argparse.Namespace(date=day, through=None, full=False)) == 0

    run("2026-12-01")
    as_known_dec2 = frozen(spark, labels_run.examples_as_of(spark, warehouse, datetime(2026, 12, 2))
                           .drop(N.LABELS_AS_OF))
    p1 = as_known_dec2.where("request_id = 'p1'").first()
    assert p1 is not None and p1[N.LABEL] == 1.0 and p1[N.FEATURES]["amount"] == 12.5  # features joined back
    capsys.readouterr()
    run("2026-12-05")
    # The MERGE read the one file of the serving date it names, and the one hour of served rows.
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (merged["updated"], merged["choices_files_read"], merged["feature_logs_files_read"]) == (1, 1, 1), merged
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
    history = f"DESCRIBE HISTORY delta.`{warehouse.paths.warehouse}/{N.LABEL_CHOICES}`"
    version = spark.sql(history).first()

    run("2026-12-05")  # the rerun: same labels, same answer, no row updated

    last = read_table(spark, warehouse.paths.warehouse, N.INGESTION_AUDIT).orderBy(F.desc("started_at")).first()
    assert last is not None and last["job"] == "labels", last
    assert last["details"]["updated"] == 0 and last["details"]["inserted"] == 0
    assertDataFrameEqual(_examples(spark, warehouse), before)
    rerun = spark.sql(history).first()
    assert version is not None and rerun is not None and rerun["version"] == version["version"]  # no commit
    _write_labels(landing, "2026-12-06", ["   "])
    capsys.readouterr()
    run("2026-12-06")  # a quiet day: no label, no new served row: no MERGE, no file written
    err = capsys.readouterr().err
    assert "] 0 requests to re-choose" in err, err
    quiet = spark.sql(history).first()
    # One commit that adds no file: the new watermark the states are derived from.
    assert quiet is not None and quiet["version"] == version["version"] + 1
    assert quiet["operation"] == "SET TBLPROPERTIES", quiet
    recorded = last_state(spark, f"{warehouse.paths.warehouse}/{N.LABEL_CHOICES}")
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


def test_later_runs_read_only_new_served_rows_and_recompute_on_policy_change(
        spark: SparkSession, warehouse: Config, capsys: pytest.CaptureFixture[str]) -> None:
    landing, tables = warehouse.paths.landing, warehouse.paths.warehouse
    write_hour(landing, HOUR, "pod-0", [record("p1"), record("p2")])
    compact_run.compact_hour(spark, warehouse, HOUR, Progress("test"), KEY)
    _write_labels(landing, "2026-12-01", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-01T09:00:00Z", "source": "chargeback"}])
    for day in ("2026-12-02", "2027-02-01"):
        _write_labels(landing, day, [])

    def run(day: str, wh: Config = warehouse) -> dict[str, object]:
        assert labels_run.run(spark, wh, argparse.Namespace(date=day, through=None, full=False)) == 0
        return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))

    def state() -> SyncState | None:
        return last_state(spark, f"{tables}/{N.LABEL_CHOICES}")

    run("2026-12-01")  # the first run computes the table from scratch and records what it read
    first = state()
    fl_version = spark.sql(f"DESCRIBE HISTORY delta.`{tables}/{N.FEATURE_LOGS}`").first()
    assert first is not None and fl_version is not None
    assert first.feature_logs_version == fl_version["version"] and first.as_of == datetime(2026, 12, 2)

    # Compaction adds served rows: the next run reads them from feature_logs' change feed (only to see
    # whether labels came before them); a new row without labels costs no write.
    hour2 = HOUR + timedelta(hours=1)
    write_hour(landing, hour2, "pod-0", [record("p3", logged_at="2026-11-25T14:05:00Z")])
    compact_run.compact_hour(spark, warehouse, hour2, Progress("test"), KEY)
    out = run("2026-12-02")
    assert (out["inserted"], out["updated"], out["deleted"]) == (0, 0, 0)
    assert "recomputing" not in capsys.readouterr().err
    second = state()
    assert second is not None and second.feature_logs_version == first.feature_logs_version + 1
    fl_path = f"{tables}/{N.FEATURE_LOGS}"
    assert feed_covers(spark, fl_path, first.feature_logs_version, second.feature_logs_version, 168)
    # Change files older than the VACUUM retention may be gone: then the run compares whole tables.
    assert not feed_covers(spark, fl_path, first.feature_logs_version, second.feature_logs_version, 0)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: r[N.LABEL_STATE] for r in ex.collect()} == {
        "p1": "labeled", "p2": "pending", "p3": "pending"}

    # Two months on, the 60-day windows of p2 and p3 have closed: both mature as negatives, at read
    # time: the run writes no row for them.
    out = run("2027-02-01")
    assert (out["inserted"], out["updated"], out["choices_files_written"]) == (0, 0, 0)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "p1": (1.0, "labeled"), "p2": (0.0, "matured_negative"), "p3": (0.0, "matured_negative")}

    # A different label window changes every row's answer: the run recomputes instead of merging.
    models = tuple(dataclasses.replace(m, labels=dataclasses.replace(m.labels, window_days=7))
                   for m in warehouse.models)
    changed = dataclasses.replace(warehouse, models=models)
    out = run("2027-02-01", changed)
    assert out["inserted"] == 1  # p1, whose label is still inside its 7-day window
    last = spark.sql(f"DESCRIBE HISTORY delta.`{tables}/{N.LABEL_CHOICES}`").first()
    assert last is not None and last["operation"] == "WRITE"
    ex = _examples(spark, changed)
    assert {r[N.REQUEST_ID]: r[N.LABEL_STATE] for r in ex.collect()} == {  # p1's label came 6 days on
        "p1": "labeled", "p2": "matured_negative", "p3": "matured_negative"}
    assert {r[N.WINDOW_END] - r[N.LOGGED_AT] for r in ex.collect()} == {timedelta(days=7)}


def test_a_run_killed_after_its_label_commit_is_absorbed_by_the_next_run_of_any_date(
        spark: SparkSession, warehouse: Config, three_served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    landing, tables = warehouse.paths.landing, warehouse.paths.warehouse
    _start_from(three_served, warehouse)
    _write_labels(landing, "2026-12-01", [])
    _write_labels(landing, "2026-12-02", [
        {"request_id": "p1", "label": 1, "observed_at": "2026-12-02T09:00:00Z", "source": "chargeback"}])
    _write_labels(landing, "2026-12-03", [
        {"request_id": "p2", "label": 1, "observed_at": "2026-12-03T09:00:00Z", "source": "chargeback"}])
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-01", through=None, full=False)) == 0
    # The run of Dec 2 dies after its label commit and before label_choices': its labels are only in
    # `labels`. A forget of p3 (a MERGE that only deletes) lands in between.
    labels_run.ingest(spark, warehouse, [datetime(2026, 12, 2)], "labels-killed", datetime(2026, 12, 3),
                      Progress("test"))
    (DeltaTable.forPath(spark, f"{tables}/{N.LABELS}").alias("t")
     .merge(spark.createDataFrame([("p3",)], "request_id string").alias("s"), "t.request_id = s.request_id")
     .whenMatchedDelete().execute())
    capsys.readouterr()
    # The next run is of a later date: it takes the killed run's date with its own.
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-03", through=None, full=False)) == 0
    assert "recomputing" not in capsys.readouterr().err
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "p1": (1.0, "labeled"), "p2": (1.0, "labeled"), "p3": (None, "pending")}
    recorded = last_state(spark, f"{tables}/{N.LABEL_CHOICES}")
    assert recorded is not None and recorded.as_of == datetime(2026, 12, 4)
    merged = frozen(spark, read_table(spark, tables, N.LABEL_CHOICES))
    assert labels_run.run(spark, warehouse, argparse.Namespace(date="2026-12-03", through=None, full=True)) == 0
    assertDataFrameEqual(read_table(spark, tables, N.LABEL_CHOICES), merged)


def test_merge_skips_rows_no_label_of_the_run_can_reach_but_late_deliveries_still_land(
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
    for day in ("2026-11-30", "2026-12-01"):  # the first run computes the table, the second MERGEs
        assert labels_run.run(spark, warehouse, argparse.Namespace(date=day, through=None, full=False)) == 0
    out, err = capsys.readouterr()

    # Rows served before 2026-08-15 (o2's observation less the 60-day window and a day) cannot take any
    # of these labels: feature_logs is read from that date on, so o3's label, whose row was served
    # before it, counts as orphaned (no served row it can label), and o1's as joinable, re-chosen to none.
    assert "] 3 requests to re-choose, served on 2 dates" in err, err
    counted = json.loads(out.strip().splitlines()[-1])
    assert (counted["joinable"], counted["orphaned"]) == (3, 1)
    ex = _examples(spark, warehouse)
    assert {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in ex.collect()} == {
        "o3": (0.0, "matured_negative"), "o1": (0.0, "matured_negative"), "o2": (1.0, "labeled"),
        "p1": (1.0, "labeled")}


def test_reach_from_is_the_first_serving_date_a_label_can_belong_to() -> None:
    assert reach_from(datetime(2026, 10, 15, 9), [30, 60]) == date(2026, 8, 15)
    assert reach_from(datetime(2026, 12, 1), [7]) == date(2026, 11, 23)


def test_sync_state_round_trips_and_ignores_foreign_metadata() -> None:
    s = SyncState(7, datetime(2026, 12, 2), "abc", (("fraud", 60, "negative", "latest"),))
    assert SyncState.from_metadata(s.to_metadata()) == s
    assert SyncState.from_metadata('{"skewless.access.policy": "v1"}') is None
    assert SyncState.from_metadata(None) is None and SyncState.from_metadata("not json") is None


@pytest.mark.parametrize("as_of", [datetime(2026, 11, 12), datetime(2026, 12, 31), datetime(2027, 1, 1)])
def test_examples_derived_from_stored_choices_equal_the_join(spark: SparkSession, scenario: tuple,
                                                           as_of: datetime) -> None:
    """The read-time view of the stored choices gives exactly the point-in-time join, at any watermark:
    windows, maturity, corrections, labels before the prediction and defaults all follow."""
    served, labels, policies = scenario
    choices = frozen(spark, label_choices(served, labels, policies, as_of))
    assert {r[N.REQUEST_ID] for r in choices.collect()} <= {"r1"}  # only labeled requests are stored
    assertDataFrameEqual(examples_from_choices(served, choices, policies, as_of),
                         label_examples(served, labels, policies, as_of))


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


def test_examples_from_events_carry_the_logged_row_as_the_stored_choices_view(spark: SparkSession,
                                                                             scenario: tuple) -> None:
    """With `features`, the one-pass pick gives the training view's rows and column order, exactly as
    the view of stored choices does: the same labels, and the logged row's other columns after them."""
    served, labels, policies = scenario
    logged = served.withColumn(N.FEATURES, F.struct((F.length(N.REQUEST_ID) * 1.5).alias("f0")))
    as_of = datetime(2026, 12, 31)
    choices = frozen(spark, label_choices(served, labels, policies, as_of))
    got = frozen(spark, examples_from_events(logged, labels, policies, as_of, features=True))
    assert got.columns[-1] == N.FEATURES and got.columns[:2] == [N.REQUEST_ID, N.EVENT_DATE]
    assertDataFrameEqual(got, examples_from_choices(logged, choices, policies, as_of, features=True),
                         checkRowOrder=False)


def test_feed_covers_only_ranges_where_the_feed_stayed_on(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "logs")
    spark.range(3).write.format("delta").option("delta.enableChangeDataFeed", "true").save(path)  # v0
    spark.range(3, 5).write.format("delta").mode("append").save(path)  # v1
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('skewless.privacy.policy' = 'v2')")  # v2
    assert feed_covers(spark, path, 0, 2, 168)  # another property changed: the feed stayed on
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'false')")  # v3
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')")  # v4
    spark.range(5, 6).write.format("delta").mode("append").save(path)  # v5
    assert not feed_covers(spark, path, 2, 5, 168)  # off for v3..v4: some changes were not recorded
    assert feed_covers(spark, path, 4, 5, 168)
    # The answer read from the log's files is Delta history()'s, on every range and retention.
    for since, until, hours in [(0, 2, 168), (2, 5, 168), (4, 5, 168), (0, 1, 0), (5, 5, 168), (1, 3, 168)]:
        assert feed_covers(spark, path, since, until, hours) == _feed_covers_by_history(
            spark, path, since, until, hours), (since, until, hours)


def test_last_state_is_the_latest_labels_commit_at_or_before_a_version(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "choices")
    a = SyncState(3, datetime(2026, 12, 2), "aaa", (("fraud", 60, "negative", "latest"),))
    b = SyncState(5, datetime(2026, 12, 3), "bbb", (("fraud", 30, "drop", "latest"),))
    spark.range(1).write.format("delta").save(path)  # v0: no state
    for meta in (a.to_metadata(), '{"skewless.privacy.policy": "v1"}', b.to_metadata()):  # v1, v2, v3
        spark.range(1).write.format("delta").mode("append").option("userMetadata", meta).save(path)
    assert last_state(spark, path) == b
    assert [last_state(spark, path, v) for v in range(4)] == [None, a, a, b]
    assert last_state(spark, str(tmp_path / "nothing")) is None
