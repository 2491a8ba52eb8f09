"""Delayed labels: ingest label events, and join them to served predictions point-in-time correct.

    skewless labels --date 2026-12-06
    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/labels.py --date 2026-12-06

`labels` keeps every label event (corrections are new events, nothing is overwritten), so "labels as
known at T" is `observed_at <= T` and stays reproducible. No choice is stored: `labeled_examples`,
one row per served prediction with its label state, picks each request's label from its events when it
is read (`examples_from_events`), so a labels run writes only the day's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.config import LabelPolicy, ModelConfig
from skewless.core.frames import require_columns
from skewless.core.jsonrules import NON_FINITE, has_duplicate_key
from skewless.serving.logformat import SPARK_RFC3339

LABEL_LINE_COLUMNS = (N.RAW_VALUE, N.SOURCE_FILE, N.ROW_ID, N.LABEL_DATE)
LABEL_QUARANTINE_COLUMNS = (N.LABEL_DATE, N.SOURCE_FILE, N.REASON, N.REQUEST_ID, N.RAW_TEXT, N.RUN_ID,
                            N.INGESTED_AT)
# The served row's columns a label pick and its state need; features stay in feature_logs (read in the
# same scan when the training view wants them).
SERVED_COLUMNS = (N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.SAMPLE_RATE, N.EVENT_DATE, N.EVENT_HOUR)
EXAMPLE_COLUMNS = (*SERVED_COLUMNS, N.LABEL, N.LABEL_OBSERVED_AT, N.LABEL_SOURCE, N.LABEL_DELAY_S,
                   N.LABEL_STATE, N.WINDOW_END, N.LABELS_AS_OF)
POLICY_SCHEMA = T.StructType([
    T.StructField("model_name", T.StringType()), T.StructField("window_days", T.IntegerType()),
    T.StructField("unlabeled", T.StringType()), T.StructField("conflict", T.StringType()),
])


LABEL_FIELDS = (N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE)
BINARY_LABELS = (0.0, 1.0)


def classify_labels(lines: DataFrame, max_record_bytes: int = 1 << 20,
                    label_values: tuple[float, ...] = BINARY_LABELS) -> DataFrame:
    """Label lines -> rows with `reason` (null when loadable), typed label and observed_at.

    Strict JSON types as in `ingest.parse` (parsed once as VARIANT): a label given as a string is a
    type mismatch, a label outside `label_values` is `label_out_of_range`."""
    require_columns(lines, LABEL_LINE_COLUMNS, "classify_labels")
    value = F.col(N.RAW_VALUE)
    parseable = (F.octet_length(value) <= max_record_bytes) & F.is_valid_utf8(value)
    top = F.when(parseable, F.try_variant_get(F.try_parse_json(value), "$", "map<string,variant>"))
    parsed = lines.select(*LABEL_LINE_COLUMNS, top.alias(N.PARSED))
    c = F.col(N.PARSED)
    t = {k: F.coalesce(F.schema_of_variant(c[k]), F.lit("VOID")) for k in LABEL_FIELDS}
    label = F.try_variant_get(c[N.LABEL], "$", "double")
    observed = F.try_to_timestamp(F.try_variant_get(c[N.OBSERVED_AT], "$", "string"), F.lit(SPARK_RFC3339))
    request_id = F.try_variant_get(c[N.REQUEST_ID], "$", "string")
    unknown = F.array_except(F.map_keys(c), F.array(*map(F.lit, LABEL_FIELDS)))
    is_num = t[N.LABEL].isin("BIGINT", "DOUBLE") | t[N.LABEL].startswith("DECIMAL")
    whole = F.try_parse_json(value)
    reason = (F.when(F.octet_length(value) > max_record_bytes, N.RECORD_TOO_LARGE)
              .when(~F.is_valid_utf8(value), N.INVALID_UTF8)
              .when(F.btrim(value, F.lit(" \t\r")) == "", N.EMPTY_RECORD)
              .when(c.isNull() & value.rlike(NON_FINITE), N.NON_FINITE_NUMBER)
              .when(c.isNull() & whole.isNull() & has_duplicate_key(value, ()), N.DUPLICATE_KEY)
              .when(c.isNull() & whole.isNull(), N.MALFORMED_JSON)
              .when(c.isNull(), N.NOT_AN_OBJECT)
              .when(F.size(unknown) > 0, F.concat(F.lit(f"{N.UNKNOWN_FIELD}:"), F.get(unknown, 0)))
              .when(t[N.REQUEST_ID] == "VOID", N.MISSING_REQUEST_ID)
              .when(t[N.REQUEST_ID] != "STRING", f"{N.TYPE_MISMATCH}:{N.REQUEST_ID}")
              .when(F.trim(request_id) == "", N.MISSING_REQUEST_ID)
              .when(t[N.LABEL] == "VOID", N.MISSING_LABEL)
              .when(~is_num, f"{N.TYPE_MISMATCH}:{N.LABEL}")
              .when(~label.isin(*label_values), N.LABEL_OUT_OF_RANGE)
              .when(t[N.OBSERVED_AT] == "VOID", N.MISSING_OBSERVED_AT)
              .when(t[N.OBSERVED_AT] != "STRING", f"{N.TYPE_MISMATCH}:{N.OBSERVED_AT}")
              .when(observed.isNull(), N.BAD_TIMESTAMP)
              .when(~t[N.SOURCE].isin("STRING", "VOID"), f"{N.TYPE_MISMATCH}:{N.SOURCE}")
              # After its folder's day: the run for that day could not know it, and readers that read
              # only the label dates from a served date on (`served_from`) rely on none being there.
              .when(observed >= F.date_add(N.LABEL_DATE, 1).cast("timestamp"), N.OUT_OF_RANGE_TIMESTAMP))
    typed = parsed.select(
        reason.alias(N.REASON), F.make_valid_utf8(value).alias(N.RAW_TEXT), request_id.alias(N.REQUEST_ID),
        label.alias(N.LABEL), observed.alias(N.OBSERVED_AT),
        F.try_variant_get(c[N.SOURCE], "$", "string").alias(N.SOURCE),
        N.LABEL_DATE, N.SOURCE_FILE, N.ROW_ID, (F.octet_length(value) + 1).alias(N.LINE_BYTES))
    return typed.withColumn(N.RAW_TEXT, F.when(F.col(N.REASON).isNotNull(), F.col(N.RAW_TEXT)))


def dedup_label_events(classified: DataFrame) -> DataFrame:
    """Loadable label events with `_dup` true for repeats of the same (request, label, observed_at, source)."""
    require_columns(classified, (N.REASON, N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE, N.ROW_ID), "dedup")
    key = Window.partitionBy(N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE).orderBy(N.SOURCE_FILE, N.ROW_ID)
    return classified.where(F.col(N.REASON).isNull()).withColumn("_dup", F.row_number().over(key) > 1)


def to_labels(events: DataFrame, run_id: str, ingested_at: datetime) -> DataFrame:
    return events.where(~F.col("_dup")).select(
        N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE, N.LABEL_DATE, N.SOURCE_FILE,
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT))


def to_label_quarantine(classified: DataFrame, run_id: str, ingested_at: datetime) -> DataFrame:
    return classified.where(F.col(N.REASON).isNotNull()).select(
        N.LABEL_DATE, N.SOURCE_FILE, N.REASON, N.REQUEST_ID, N.RAW_TEXT,
        F.lit(run_id).alias(N.RUN_ID), F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT))


def files_to_label_quarantine(files: DataFrame, run_id: str, ingested_at: datetime) -> DataFrame:
    """Unread label files (source_file, reason) -> label quarantine rows: the file named, no text."""
    require_columns(files, (N.SOURCE_FILE, N.REASON), "files_to_label_quarantine")
    day = F.to_date(F.regexp_extract(F.col(N.SOURCE_FILE), r"date=(\d{4}-\d{2}-\d{2})", 1))
    return files.select(
        day.alias(N.LABEL_DATE), N.SOURCE_FILE, N.REASON, F.lit(None).cast("string").alias(N.REQUEST_ID),
        F.lit(None).cast("string").alias(N.RAW_TEXT), F.lit(run_id).alias(N.RUN_ID),
        F.lit(ingested_at).cast("timestamp").alias(N.INGESTED_AT))


def policy_rows(models: Sequence[ModelConfig]) -> list[tuple[str, int, str, str]]:
    return [(m.name, m.labels.window_days, m.labels.unlabeled, m.labels.conflict) for m in models]


def _with_policy(served: DataFrame, policies: DataFrame, default: LabelPolicy | None) -> DataFrame:
    """Served rows with their model's window, unlabeled rule and conflict rule, and `window_end`."""
    d = default or LabelPolicy()
    pol = F.broadcast(policies).alias("pol")
    return served.join(pol, served[N.MODEL]["name"] == F.col("pol.model_name"), how="left").select(
        *served.columns,
        F.coalesce("pol.window_days", F.lit(d.window_days)).alias("_window_days"),
        F.coalesce("pol.unlabeled", F.lit(d.unlabeled)).alias("_unlabeled"),
        F.coalesce("pol.conflict", F.lit(d.conflict)).alias("_conflict"),
    ).withColumn(N.WINDOW_END, F.col(N.LOGGED_AT) + F.make_interval(days=F.col("_window_days")))


def _chosen(with_policy: DataFrame, labels: DataFrame, as_of: datetime) -> DataFrame:
    """(request_id, _chosen struct<label, at, src>) for the served rows with a label in their window."""
    t = F.lit(as_of).cast("timestamp")
    keys = with_policy.select(N.REQUEST_ID, N.LOGGED_AT, N.WINDOW_END, "_conflict")
    known = labels.where(F.col(N.OBSERVED_AT) <= t).join(keys, on=N.REQUEST_ID, how="inner").where(
        (F.col(N.OBSERVED_AT) >= F.col(N.LOGGED_AT)) & (F.col(N.OBSERVED_AT) <= F.col(N.WINDOW_END)))
    payload = F.struct(F.col(N.LABEL).alias("label"), F.col(N.OBSERVED_AT).alias("at"), F.col(N.SOURCE).alias("src"))
    by_time = F.struct(N.OBSERVED_AT, N.LABEL, N.SOURCE)  # total order: ties never pick at random
    return known.groupBy(N.REQUEST_ID, "_conflict").agg(
        F.max_by(payload, by_time).alias("latest"), F.min_by(payload, by_time).alias("earliest"),
        F.max_by(payload, F.struct(N.LABEL, N.OBSERVED_AT, N.SOURCE)).alias("max"),
    ).select(N.REQUEST_ID, F.when(F.col("_conflict") == "earliest", F.col("earliest"))
             .when(F.col("_conflict") == "max", F.col("max")).otherwise(F.col("latest")).alias("_chosen"))


def _assemble(joined: DataFrame, as_of: datetime, extra: Sequence[str] = ()) -> DataFrame:
    """Policy-annotated served rows with `_chosen` (null: no label) -> EXAMPLE_COLUMNS (+ `extra`)."""
    t = F.lit(as_of).cast("timestamp")
    has_label = F.col("_chosen").isNotNull()
    closed = F.col(N.WINDOW_END) <= t
    state: Column = (F.when(has_label, N.STATE_LABELED).when(~closed, N.STATE_PENDING)
                     .when(F.col("_unlabeled") == "negative", N.STATE_MATURED_NEGATIVE)
                     .otherwise(N.STATE_MATURED_DROPPED))
    return joined.select(
        *SERVED_COLUMNS,
        F.when(has_label, F.col("_chosen.label")).when(state == N.STATE_MATURED_NEGATIVE, F.lit(0.0))
        .alias(N.LABEL),
        F.col("_chosen.at").alias(N.LABEL_OBSERVED_AT), F.col("_chosen.src").alias(N.LABEL_SOURCE),
        (F.unix_micros(F.col("_chosen.at")) - F.unix_micros(N.LOGGED_AT)).cast("double").__truediv__(1e6)
        .alias(N.LABEL_DELAY_S),
        state.alias(N.LABEL_STATE), N.WINDOW_END, t.alias(N.LABELS_AS_OF), *extra,
    )


def label_examples(served: DataFrame, labels: DataFrame, policies: DataFrame, as_of: datetime,
                   default: LabelPolicy | None = None) -> DataFrame:
    """One row per served prediction with the label known at `as_of`, chosen by its model's policy.

    A label counts when observed_at is within [logged_at, logged_at + window] and <= as_of; labels
    observed before the prediction never join. No label: `pending` while the window is open, then
    `matured_negative` (label 0) or `matured_dropped` (label null) as the policy says.
    """
    require_columns(served, SERVED_COLUMNS, "label_examples(served)")
    require_columns(labels, (N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE), "label_examples(labels)")
    with_policy = _with_policy(served.select(*SERVED_COLUMNS), policies, default)
    joined = with_policy.join(_chosen(with_policy, labels, as_of), on=N.REQUEST_ID, how="left")
    return _assemble(joined, as_of)


def _training_order(out: DataFrame, extra: Sequence[str]) -> DataFrame:
    """Without `extra`, EXAMPLE_COLUMNS as assembled; with it, the training view's order: keys, the
    label columns, then the rest of the logged row (as `with_features`)."""
    if not extra:
        return out
    rest = [c for c in EXAMPLE_COLUMNS if c not in (N.REQUEST_ID, N.EVENT_DATE)]
    return out.select(N.REQUEST_ID, N.EVENT_DATE, *rest, *extra)


def examples_from_events(served: DataFrame, labels: DataFrame, policies: DataFrame, as_of: datetime,
                         default: LabelPolicy | None = None, *, features: bool = False) -> DataFrame:
    """`label_examples` of the same inputs, in one pass over `served`: each request's label events
    known at `as_of` are gathered into one array (a grouping of the label side only), joined to every
    served row, and the policy's pick is made on the row's own array, in `_chosen`'s orders (ties
    included): `labeled_examples` as every reader sees it. With `features`, `served` is feature_logs
    and the rest of its row follows the example's columns (the training view), read in the same scan
    instead of joined back."""
    require_columns(served, SERVED_COLUMNS, "examples_from_events(served)")
    require_columns(labels, (N.REQUEST_ID, N.LABEL, N.OBSERVED_AT, N.SOURCE), "examples_from_events(labels)")
    t = F.lit(as_of).cast("timestamp")
    events = labels.where(F.col(N.OBSERVED_AT) <= t).groupBy(N.REQUEST_ID).agg(F.collect_list(F.struct(
        F.col(N.OBSERVED_AT).alias("at"), F.col(N.LABEL).alias("label"), F.col(N.SOURCE).alias("src"))).alias("_ev"))
    extra = [c for c in served.columns if c not in SERVED_COLUMNS] if features else []
    rows = _with_policy(served.select(*SERVED_COLUMNS, *extra), policies, default).join(
        events, on=N.REQUEST_ID, how="left")
    inside = F.filter("_ev", lambda e: (e["at"] >= F.col(N.LOGGED_AT)) & (e["at"] <= F.col(N.WINDOW_END)))
    chosen = (F.when(F.col("_conflict") == "earliest", _payload(F.array_min(inside)))
              .when(F.col("_conflict") == "max", F.array_max(F.transform(inside, _payload)))
              .otherwise(_payload(F.array_max(inside))))
    return _training_order(_assemble(rows.withColumn("_chosen", F.when(F.size(inside) > 0, chosen)), as_of, extra),
                           extra)


def _payload(event: Column) -> Column:
    """An event struct<at, label, src> as the pick's struct<label, at, src> (which orders `max`)."""
    return F.struct(event["label"].alias("label"), event["at"].alias("at"), event["src"].alias("src"))


def label_join_counts(run_labels: DataFrame, served: DataFrame) -> DataFrame:
    """For this run's label events: how many join a served row, arrive before it, or match none, and
    when the earliest of them was observed. An inner join rather than a left one, so that Spark may
    broadcast the day's labels (the small side) into the scan of the served rows instead of shuffling
    those; a label matches at most one served row (request ids are unique in feature_logs), so the
    orphans are the labels it does not match."""
    events = run_labels.select(N.REQUEST_ID, N.OBSERVED_AT)
    matched = events.join(served.select(N.REQUEST_ID, N.LOGGED_AT), on=N.REQUEST_ID, how="inner").agg(
        F.count_if(F.col(N.OBSERVED_AT) < F.col(N.LOGGED_AT)).alias("before_prediction"),
        F.count_if(F.col(N.OBSERVED_AT) >= F.col(N.LOGGED_AT)).alias("joinable"))
    total = events.agg(F.count(F.lit(1)).alias("_events"), F.min(N.OBSERVED_AT).alias("first_observed"))
    return total.crossJoin(matched).select(
        (F.col("_events") - F.col("before_prediction") - F.col("joinable")).alias("orphaned"),
        "before_prediction", "joinable", "first_observed")


def with_features(examples: DataFrame, feature_logs: DataFrame) -> DataFrame:
    """Labeled examples joined back to the served feature vectors (the training view)."""
    served = feature_logs.drop(*[c for c in SERVED_COLUMNS if c not in (N.REQUEST_ID, N.EVENT_DATE)])
    return examples.join(served, on=[N.REQUEST_ID, N.EVENT_DATE], how="inner")
