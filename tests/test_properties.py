"""Property tests (hypothesis) for the pure logic the warehouse's promises rest on.

Spark-side properties batch many generated cases into one frame per example, so each example is one
Spark job: dedup (earliest wins, whatever the order), the label choice (point in time, corrections),
HMAC pseudonyms (deterministic, equal to Python's hmac), and the quarantine reason precedence.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.delta import conflict_name, deletion_vectors_possible, retry_conflicts
from skewless.core.errors import ConcurrentCommitError
from skewless.core.localframe import local_frame
from skewless.ingest.parse import first_true
from skewless.ingest.transforms import FeatureLimits, decide_features, duplicate_rows, id_counts, ids_in_table
from skewless.labels.transforms import POLICY_SCHEMA, examples_from_events, label_examples
from skewless.privacy.job import VACUUM_MARGIN, vacuum_can_delete
from skewless.privacy.transforms import pseudonym

from .conftest import KEY

SPARK = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
T0 = datetime(2026, 11, 25, 13)

# (request id, seconds after T0, file, line): several rows per id, ties included.
ROWS = st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 5), st.sampled_from(["f1", "f2"]),
                          st.integers(0, 50)), min_size=1, max_size=40, unique_by=lambda r: (r[2], r[3]))


@SPARK
@given(rows=ROWS, existing=st.lists(st.sampled_from("abcdefxy"), max_size=5), seed=st.integers(0, 1000),
       broadcast=st.booleans())
def test_dedup_keeps_the_earliest_row_of_each_id_whatever_the_order(
        spark: SparkSession, rows: list[tuple[str, int, str, int]], existing: list[str], seed: int,
        broadcast: bool) -> None:
    data = [(None, rid, T0 + timedelta(seconds=s), f, i * 100 + line) for i, (rid, s, f, line) in enumerate(rows)]
    frame = local_frame(spark, data, T.StructType([
        T.StructField(N.REASON, T.StringType()), T.StructField(N.REQUEST_ID, T.StringType()),
        T.StructField(N.LOGGED_AT, T.TimestampType()), T.StructField(N.SOURCE_FILE, T.StringType()),
        T.StructField(N.ROW_ID, T.LongType())]))
    known = local_frame(spark, [(e,) for e in existing], T.StructType([T.StructField(N.REQUEST_ID, T.StringType())]))
    shuffled = frame.repartition(3).orderBy(F.rand(seed))
    # The table may hold an id twice (two landing hours) or ids this run lacks: neither may change the answer.
    counts = id_counts(shuffled)
    found = ids_in_table(known, counts, broadcast_ids=broadcast)
    assert sorted(r[0] for r in found.collect()) == sorted(set(existing) & {r[0] for r in rows})
    dups = duplicate_rows(shuffled, counts, found, broadcast_ids=broadcast).collect()
    dropped = {r[N.ROW_ID]: r[N.DUP_KIND] for r in dups}
    assert len(dropped) == len(dups)
    # Python's answer: per id the earliest (logged_at, file, row id) survives, unless the table has the id.
    first: dict[str, tuple[datetime, str, int]] = {}
    for _, rid, at, f, row in data:
        first[rid] = min(first.get(rid, (at, f, row)), (at, f, row))
    want = {row: (N.DUP_IN_RUN if (at, f, row) != first[rid] else N.DUP_EXISTING)
            for _, rid, at, f, row in data if (at, f, row) != first[rid] or rid in existing}
    assert dropped == want


LABELS = st.lists(st.tuples(st.integers(-2, 40), st.sampled_from([0.0, 1.0]), st.sampled_from(["cb", "fix"])),
                  max_size=6, unique_by=lambda x: (x[0], x[1], x[2]))


SERVED_SCHEMA = T.StructType([
    T.StructField(N.REQUEST_ID, T.StringType()), T.StructField(N.LOGGED_AT, T.TimestampType()),
    T.StructField(N.MODEL, T.StructType([T.StructField("name", T.StringType()),
                                         T.StructField("version", T.StringType())])),
    T.StructField(N.SAMPLE_RATE, T.DoubleType()), T.StructField(N.EVENT_DATE, T.DateType()),
    T.StructField(N.EVENT_HOUR, T.IntegerType())])
LABEL_SCHEMA = T.StructType([
    T.StructField(N.REQUEST_ID, T.StringType()), T.StructField(N.LABEL, T.DoubleType()),
    T.StructField(N.OBSERVED_AT, T.TimestampType()), T.StructField(N.SOURCE, T.StringType())])


@SPARK
@given(events=st.lists(LABELS, min_size=1, max_size=6), as_of_day=st.integers(0, 45))
def test_the_label_is_the_latest_one_known_at_the_cutoff_inside_the_window(
        spark: SparkSession, events: list[list[tuple[int, float, str]]], as_of_day: int) -> None:
    # Through Arrow, not createDataFrame: no Python workers for 8 examples' worth of tiny frames.
    served = local_frame(spark, [(f"r{i}", T0, {"name": "fraud", "version": "v1"}, 0.1, T0.date(), T0.hour)
                                 for i in range(len(events))], SERVED_SCHEMA)
    labels = local_frame(spark, [(f"r{i}", label, T0 + timedelta(days=d), src) for i, evs in enumerate(events)
                                 for d, label, src in evs], LABEL_SCHEMA)
    policies = local_frame(spark, [("fraud", 30, "drop", "latest")], POLICY_SCHEMA)
    as_of = T0 + timedelta(days=as_of_day)
    got = {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in
           label_examples(served, labels, policies, as_of).collect()}
    # The one-pass pick (events gathered per request) answers the same.
    assert got == {r[N.REQUEST_ID]: (r[N.LABEL], r[N.LABEL_STATE]) for r in
                   examples_from_events(served, labels, policies, as_of).collect()}
    for i, evs in enumerate(events):
        known = sorted((T0 + timedelta(days=d), label, src) for d, label, src in evs
                       if 0 <= d <= 30 and T0 + timedelta(days=d) <= as_of)
        want: tuple[float | None, str]
        if known:
            want = (known[-1][1], N.STATE_LABELED)
        else:
            want = (None, N.STATE_PENDING if as_of < T0 + timedelta(days=30) else N.STATE_MATURED_DROPPED)
        assert got[f"r{i}"] == want, (evs, as_of_day)


@SPARK
@given(values=st.lists(st.text(max_size=30), min_size=1, max_size=30))
def test_pseudonyms_are_python_hmac_and_deterministic(spark: SparkSession, values: list[str]) -> None:
    frame = spark.createDataFrame([(v,) for v in values], "v string").repartition(2)
    got = frame.select("v", pseudonym(F.col("v"), KEY).alias("p")).collect()
    for row in got:
        digest = hmac.new(KEY.secret, row["v"].encode("utf-8"), hashlib.sha256).hexdigest()
        assert row["p"] == f"{KEY.version}:{digest}"


@SPARK
@given(flags=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=30))
def test_the_reason_is_the_first_rule_broken(spark: SparkSession, flags: list[list[bool]]) -> None:
    frame = spark.createDataFrame([(i, *f) for i, f in enumerate(flags)],
                                  "i int, a boolean, b boolean, c boolean, d boolean")
    reason = first_true([(F.col(c), c) for c in "abcd"])
    got = {r["i"]: r["r"] for r in frame.select("i", reason.alias("r")).collect()}
    assert got == {i: next((c for c, on in zip("abcd", f, strict=True) if on), None) for i, f in enumerate(flags)}


NAMES = st.text(alphabet="abAB_ ;1", min_size=1, max_size=6)


@given(seen=st.lists(st.tuples(NAMES, st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), max_size=12,
                     unique_by=lambda s: s[0]),
       existing=st.lists(NAMES, max_size=4, unique_by=str.lower), per_run=st.integers(0, 4))
def test_new_features_are_valid_distinct_and_within_limits(
        seen: list[tuple[str, int, int, int]], existing: list[str], per_run: int) -> None:
    sightings = [(n, a + b + c, a, b, c) for n, a, b, c in seen]
    new, rejected = decide_features(sightings, existing, FeatureLimits(new_per_run=per_run, per_table=10))
    assert len(new) <= per_run and not set(new) & set(rejected)
    names = [n.lower() for n in [*existing, *new]]
    assert len(names) == len(set(names))  # no two columns differ only in case
    assert all(n.replace("_", "a").isalnum() and not n[0].isdigit() for n in new)
    for name, values, *_ in sightings:  # every name is decided, except one only ever null
        assert name in new or name in rejected or values == 0


@given(failures=st.integers(0, 8), attempts=st.integers(1, 6))
def test_conflicts_are_retried_a_bounded_number_of_times(failures: int, attempts: int) -> None:
    calls: list[int] = []
    waits: list[float] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError("[DELTA_CONCURRENT_APPEND] Files were added to partition ...")
        return "committed"

    try:
        assert retry_conflicts(action, "test", attempts=attempts, sleep=waits.append) == "committed"
        assert failures < attempts and len(calls) == failures + 1
    except ConcurrentCommitError as exc:
        assert failures >= attempts and len(calls) == attempts and "DELTA_CONCURRENT_APPEND" in str(exc)
    # A wait after each lost attempt but the last; exponential backoff with up to 100% jitter.
    assert len(waits) == min(failures, attempts - 1)
    assert all(0.2 * 2**k <= w <= 0.4 * 2**k for k, w in enumerate(waits))
    assert conflict_name(ValueError("[DELTA_FILE_NOT_FOUND] gone")) is None


@given(age_h=st.floats(-10, 500, allow_nan=False), retain=st.integers(0, 400))
def test_vacuum_is_skipped_only_where_no_file_can_be_older_than_the_retention(age_h: float, retain: int) -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    created = now - timedelta(hours=age_h)
    can = vacuum_can_delete(int(created.timestamp() * 1000), now, retain)
    if not can:  # even a file written the whole margin before the first commit is inside the retention
        assert created - VACUUM_MARGIN >= now - timedelta(hours=retain)
    assert can or retain >= VACUUM_MARGIN.total_seconds() / 3600  # a retention under the margin always runs
    assert vacuum_can_delete(None, now, retain)  # creation unknown (log cleaned up): VACUUM
    assert vacuum_can_delete(int((now - timedelta(hours=retain + 1)).timestamp() * 1000), now, retain)


_DV = {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
       "writerFeatures": ["deletionVectors", "changeDataFeed"]}


@pytest.mark.parametrize(("crc", "possible"), [
    (None, True),  # no checksum: unknown, so the REORG runs
    ({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}, False),  # legacy protocol: no vectors exist
    ({"protocol": {"minReaderVersion": 1, "minWriterVersion": 7, "writerFeatures": ["changeDataFeed"]}}, False),
    ({"protocol": _DV, "numDeletionVectorsOpt": 0}, False),
    ({"protocol": _DV, "numDeletionVectorsOpt": 3}, True),
    ({"protocol": _DV}, True),  # count not recorded
    # The property switched off after deletes: the vectors written before are still there.
    ({"protocol": _DV, "numDeletionVectorsOpt": 2,
      "metadata": {"configuration": {"delta.enableDeletionVectors": "false"}}}, True),
])
def test_a_purge_skips_the_reorg_only_when_the_checksum_proves_no_deletion_vector(
        crc: dict[str, Any] | None, possible: bool) -> None:
    assert deletion_vectors_possible(crc) is possible
