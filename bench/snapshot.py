"""Snapshot benchmark: `make bench` (or `python bench/snapshot.py [--rows N] [--features F]`).

Builds N labeled rows (default 2,000,000) with F numeric features (default 40) directly as the
`feature_logs` and `labels` tables (2% of the rows labeled, one label event each, with the watermark
and policies recorded in the `labels` commit as the labels job records them), then runs `snapshot
create` once to warm the JVM and once measured, in one Spark session. Reports the time to materialize
the version and the time of its Great Expectations validation (a suite of 2 expectations per feature
plus table-level ones), and their ratio (target: validation <= 0.5x materialization). It also times
the dataset's rows read through `labeled_examples` as every reader reads it (each label picked from
the events in the one scan of the served rows) against the layout before it, which stored the label
each labeled request's policy picked (`label_choices`, a table the bench writes; feature_logs left
join it), each written to a Delta table, alternating, best of two (target: <= 1.2), and against a
`labeled_examples` table materialized with one row per prediction and joined back to feature_logs
(the layout before that). An ad hoc query that reads no feature (rows by label state) is timed the
same way. The rows of every layout are checked equal. Results in bench/results/snapshot.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import publish  # noqa: E402 - needs the project root on sys.path first

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RESULTS = ROOT / "bench" / "results" / "snapshot.json"
START = datetime(2026, 9, 1)


def stored_choices_examples(spark: SparkSession, warehouse: str, choices: str,
                            rules: tuple[tuple[str, int, str, str], ...], as_of: datetime, *,
                            features: bool) -> DataFrame:
    """`labeled_examples` as the layout before this one read it: feature_logs left join a stored
    table of the label each labeled request's policy picked (`choices`), states derived at read time,
    the same expressions as the product's."""
    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.core.localframe import local_frame
    from skewless.core.paths import table_path
    from skewless.labels.transforms import (
        EXAMPLE_COLUMNS,
        POLICY_SCHEMA,
        SERVED_COLUMNS,
        _assemble,
        _training_order,
        _with_policy,
    )

    logs = spark.read.format("delta").load(table_path(warehouse, N.FEATURE_LOGS))
    extra = [c for c in logs.columns if c not in SERVED_COLUMNS] if features else []
    with_policy = _with_policy(logs.select(*SERVED_COLUMNS, *extra), local_frame(spark, list(rules), POLICY_SCHEMA),
                               None)
    chosen = spark.read.format("delta").load(choices).select(N.REQUEST_ID, N.EVENT_DATE, F.struct(
        F.col(N.LABEL).alias("label"), F.col(N.LABEL_OBSERVED_AT).alias("at"),
        F.col(N.LABEL_SOURCE).alias("src")).alias("_chosen"))
    out = _training_order(_assemble(with_policy.join(chosen, on=[N.REQUEST_ID, N.EVENT_DATE], how="left"), as_of,
                                    extra), extra)
    return out if features else out.select(*EXAMPLE_COLUMNS)


def check_input(spark: SparkSession, warehouse: str, choices: str, rows: int) -> None:
    """The bench's own input, checked before anything is timed: every served row, a feature's null
    share of about 2%, about 2% of the rows labeled, and one label event per stored choice."""
    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.core.paths import table_path

    def read(name: str) -> DataFrame:
        return spark.read.format("delta").load(table_path(warehouse, name))
    logs = read(N.FEATURE_LOGS).agg(F.count(F.lit(1)).alias("n"),
                                    F.avg(F.col(f"{N.FEATURES}.f00").isNull().cast("double")).alias("nulls")).first()
    stored, events = spark.read.format("delta").load(choices).count(), read(N.LABELS).count()
    assert logs is not None and logs["n"] == rows and 0.015 <= logs["nulls"] <= 0.025, logs
    assert 0.015 * rows <= stored <= 0.025 * rows and events == stored, (stored, events)
    print(json.dumps({"input": {"served_rows": logs["n"], "f00_null_share": round(logs["nulls"], 4),
                               "stored_choices": stored, "label_events": events}}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "snapshot")
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from skewless.core import names as N
    from skewless.core.config import load
    from skewless.core.paths import table_path
    from skewless.core.progress import Progress
    from skewless.core.session import build_session
    from skewless.datasets.snapshot_job import create
    from skewless.datasets.spec import DatasetConfig, Split, Window
    from skewless.datasets.transforms import select_examples
    from skewless.labels import view as examples_view
    from skewless.labels.state import LabelState, policies_digest
    from skewless.labels.transforms import EXAMPLE_COLUMNS, policy_rows, with_features

    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(args.work / "landing"), str(args.work / "warehouse"))
    spark = build_session(cfg.spark)
    names = [f"f{i:02d}" for i in range(args.features)]
    ids = spark.range(args.rows).select(
        F.col("id"), F.format_string("r%09d", "id").alias(N.REQUEST_ID),
        (F.lit(START).cast("timestamp") + F.make_interval(secs=(F.col("id") % (30 * 86400)).cast("int")))
        .alias(N.LOGGED_AT))
    served = ids.select(
        "id", N.REQUEST_ID, N.LOGGED_AT, F.struct(F.lit("fraud").alias("name"), F.lit("v1").alias("version"))
        .alias(N.MODEL), F.lit(0.1).alias(N.SAMPLE_RATE), F.to_date(N.LOGGED_AT).alias(N.EVENT_DATE),
        F.hour(N.LOGGED_AT).alias(N.EVENT_HOUR))
    features = F.struct(*[F.when(F.rand(i) < 0.02, None).otherwise(F.rand(100 + i)).alias(n)
                          for i, n in enumerate(names)])
    logs = served.select(*[c for c in served.columns if c != "id"],
                         F.struct(F.format_string("k1:%064x", F.col("id") % 50_000).alias("user_id")).alias(N.ENTITY),
                         features.alias(N.FEATURES))
    logs.write.format("delta").mode("overwrite").partitionBy(N.EVENT_DATE, N.EVENT_HOUR).save(
        table_path(cfg.paths.warehouse, N.FEATURE_LOGS))
    cutoff = datetime(2027, 3, 1)
    labeled = served.select(
        *[c for c in served.columns if c != "id"], (F.rand(7) < 0.02).cast("double").alias(N.LABEL),
        F.lit(None).cast("timestamp").alias(N.LABEL_OBSERVED_AT), F.lit(None).cast("string").alias(N.LABEL_SOURCE),
        F.lit(None).cast("double").alias(N.LABEL_DELAY_S), F.lit(N.STATE_MATURED_NEGATIVE).alias(N.LABEL_STATE),
        (F.col(N.LOGGED_AT) + F.expr("INTERVAL 60 DAYS")).alias(N.WINDOW_END),
        F.lit(cutoff).cast("timestamp").alias(N.LABELS_AS_OF)).select(*EXAMPLE_COLUMNS)
    materialized = str(args.work / "labeled-examples-materialized")
    labeled.write.format("delta").mode("overwrite").partitionBy(N.EVENT_DATE).save(materialized)
    rules = tuple(policy_rows(cfg.models))
    state = LabelState(cutoff, policies_digest(rules), rules)
    # The label events (one per labeled request), with the state in their commit as the labels job
    # writes it; and, for the layout before, the choices they give, stored.
    (labeled.where(F.col(N.LABEL) == 1.0)
     .select(N.REQUEST_ID, N.LABEL, F.col(N.LOGGED_AT).alias(N.OBSERVED_AT), F.lit("chargeback").alias(N.SOURCE),
             F.to_date(N.LOGGED_AT).alias(N.LABEL_DATE))
     .write.format("delta").mode("overwrite").partitionBy(N.LABEL_DATE).option("userMetadata", state.to_metadata())
     .save(table_path(cfg.paths.warehouse, N.LABELS)))
    choices = str(args.work / "label-choices-stored")
    (labeled.where(F.col(N.LABEL) == 1.0)
     .select(N.REQUEST_ID, N.EVENT_DATE, N.LABEL, F.col(N.LOGGED_AT).alias(N.LABEL_OBSERVED_AT),
             F.lit("chargeback").alias(N.LABEL_SOURCE))
     .write.format("delta").mode("overwrite").partitionBy(N.EVENT_DATE).save(choices))

    check_input(spark, cfg.paths.warehouse, choices, args.rows)

    ds = DatasetConfig(name="bench", window=Window(start="2026-08-01", end="2027-01-01"), models=("fraud",),
                       features=tuple(names), split=Split(key="entity.user_id", seed="bench"))
    expectations = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "request_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "request_id"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0.0, 1.0]}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "label", "min_value": 0.0, "max_value": 0.1}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "weight", "min_value": 0,
                                                                   "strict_min": True}},
    ]
    for n in names:
        expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": n, "mostly": 0.9}})
        expectations.append({"type": "expect_column_values_to_be_between",
                             "kwargs": {"column": n, "min_value": 0, "max_value": 1}})
    suite = {"name": "bench", "expectations": expectations}
    as_of = date(2027, 3, 1)
    create(spark, cfg, ds, suite, as_of, Progress("bench-warmup"))
    started = time.perf_counter()
    record = create(spark, cfg, ds, {**suite, "name": "bench-measured"}, as_of, Progress("bench"))
    total = time.perf_counter() - started
    assert record["rows"] == args.rows, record["rows"]  # every served row is in the window, labeled or matured
    start, end = ds.window_bounds(as_of)

    def rows_via(layout: str) -> float:
        began = time.perf_counter()
        logs = spark.read.format("delta").load(table_path(cfg.paths.warehouse, N.FEATURE_LOGS))
        if layout == "view":
            examples = examples_view.labeled_examples(spark, cfg, features=True)
        elif layout == "stored":
            examples = stored_choices_examples(spark, cfg.paths.warehouse, choices, rules, cutoff, features=True)
        else:
            examples = with_features(spark.read.format("delta").load(materialized), logs)
        out = select_examples(examples, ds, start, end, cutoff)
        out.write.format("delta").mode("overwrite").save(str(args.work / f"rows-{layout}"))
        return time.perf_counter() - began

    layouts: dict[str, list[float]] = {"view": [], "stored": [], "table": []}
    for _ in range(2):
        for layout in layouts:
            layouts[layout].append(rows_via(layout))
    # An ad hoc query that reads no feature (labels by state): what every analyst's read would pay.
    queries: dict[str, list[float]] = {"view": [], "stored": []}
    answers: dict[str, list[tuple[str, int]]] = {}
    for _ in range(2):
        for layout in queries:
            began = time.perf_counter()
            examples = (examples_view.labeled_examples(spark, cfg) if layout == "view" else
                        stored_choices_examples(spark, cfg.paths.warehouse, choices, rules, cutoff, features=False))
            answers[layout] = sorted((r[0], int(r[1])) for r in examples.groupBy(N.LABEL_STATE).count().collect())
            queries[layout].append(time.perf_counter() - began)
    assert answers["view"] == answers["stored"], answers
    assert sum(n for _, n in answers["view"]) == args.rows, answers
    view_rows = examples_view.labeled_examples(spark, cfg).select(*EXAMPLE_COLUMNS)
    stored_rows = stored_choices_examples(spark, cfg.paths.warehouse, choices, rules, cutoff, features=False)
    assert view_rows.exceptAll(stored_rows).count() == 0 and stored_rows.exceptAll(view_rows).count() == 0
    same = spark.read.format("delta").load(str(args.work / "rows-view"))
    for other in ("stored", "table"):
        rows = spark.read.format("delta").load(str(args.work / f"rows-{other}"))
        assert same.count() == rows.count() and same.exceptAll(rows).count() == 0, other
    spark.stop()
    result = {
        "benchmark": "snapshot", "when": datetime.now(UTC).isoformat(timespec="seconds"), "rows": record["rows"],
        "features": args.features, "expectations": len(expectations), "status": record["status"],
        "materialize_seconds": record["materialize_s"], "validate_seconds": record["validate_s"],
        "validate_over_materialize": round(record["validate_s"] / record["materialize_s"], 3),
        "target_validate_over_materialize": 0.5, "create_total_seconds": round(total, 3),
        "rows_via_view_seconds": [round(t, 3) for t in layouts["view"]],
        "rows_via_stored_choices_seconds": [round(t, 3) for t in layouts["stored"]],
        "view_over_stored_choices": round(min(layouts["view"]) / min(layouts["stored"]), 3),
        "target_view_over_stored_choices": 1.2,
        "rows_via_materialized_table_seconds": [round(t, 3) for t in layouts["table"]],
        "view_over_materialized_table": round(min(layouts["view"]) / min(layouts["table"]), 3),
        "states_query_via_view_seconds": [round(t, 3) for t in queries["view"]],
        "states_query_via_stored_choices_seconds": [round(t, 3) for t in queries["stored"]],
        "states_query_view_over_stored_choices": round(min(queries["view"]) / min(queries["stored"]), 3),
    }
    publish(RESULTS, result, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
