"""Versioned training snapshots: select, weight and split labeled examples; hash their content.

    skewless snapshot create fraud_daily [--as-of 2026-12-31]
    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/snapshot.py create fraud_daily

Pure transforms here; `snapshot_run` materializes a version, validates it with its Great Expectations
suite and records it in `dataset_versions`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.errors import ConfigError
from skewless.core.frames import require_columns
from skewless.datasets.spec import DatasetConfig, Split

SPLIT = "split"
WEIGHT = "weight"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
SPLIT_KEY = "split_key"
SPLITS = ("train", "validation", "test")
_BUCKETS = 10_000


def split_of(key: Column, split: Split) -> Column:
    """train / validation / test from a stable hash of the key: the same key, the same split, forever."""
    bucket = F.pmod(F.xxhash64(F.lit(split.seed), key), F.lit(_BUCKETS)) / _BUCKETS
    return (F.when(bucket < split.train, "train").when(bucket < split.train + split.validation, "validation")
            .otherwise("test"))


def row_weight(rule: str) -> Column:
    """A served row's weight under a dataset's `weight` rule: 1 / sample_rate (a 10%-sampled row
    stands for 10 predictions) or 1. Drift weights the current slice with the same rule."""
    return (F.lit(1.0) / F.col(N.SAMPLE_RATE)) if rule == "inverse_sample_rate" else F.lit(1.0)


def select_examples(examples: DataFrame, ds: DatasetConfig, start: datetime, end: datetime,
                    label_cutoff: datetime) -> DataFrame:
    """Labeled examples with features -> the dataset's rows: its models, window, maturity and filters;
    flat feature columns, label, weight (1 / sample_rate: sampled logs train unbiased) and split."""
    require_columns(examples, (N.REQUEST_ID, N.LOGGED_AT, N.MODEL, N.SAMPLE_RATE, N.FEATURES, N.LABEL,
                               N.WINDOW_END, N.EVENT_DATE), "select_examples")
    struct = examples.schema[N.FEATURES].dataType
    assert isinstance(struct, T.StructType)
    available = [f.name for f in struct.fields]
    wanted = list(ds.features) or available
    missing = [f for f in wanted if f not in available]
    if missing:
        raise ConfigError(ds.source_file, "features", f"not in feature_logs: {missing} (available: {available})")
    rows = examples.where((F.col(N.LOGGED_AT) >= F.lit(start)) & (F.col(N.LOGGED_AT) < F.lit(end))
                          & (F.col(N.EVENT_DATE) >= F.lit(start.date())) & (F.col(N.EVENT_DATE) <= F.lit(end.date())))
    if ds.models:
        rows = rows.where(F.col(N.MODEL)["name"].isin(*ds.models))
    if ds.maturity == "closed":
        rows = rows.where((F.col(N.WINDOW_END) <= F.lit(label_cutoff)) & F.col(N.LABEL).isNotNull())
    for condition in ds.filters:
        rows = rows.where(F.expr(condition))
    key = F.coalesce(F.col(ds.split.key).cast("string"), F.col(N.REQUEST_ID))
    weight = row_weight(ds.weight)
    return rows.select(
        N.REQUEST_ID, N.LOGGED_AT, F.col(N.MODEL)["name"].alias(MODEL_NAME),
        F.col(N.MODEL)["version"].alias(MODEL_VERSION), key.alias(SPLIT_KEY),
        *[F.col(N.FEATURES)[f].alias(f) for f in wanted],
        F.col(ds.label).cast("double").alias(N.LABEL), weight.alias(WEIGHT), split_of(key, ds.split).alias(SPLIT),
    )


def content_sums(rows: DataFrame, by: str | None = None) -> DataFrame:
    """The count and two order-independent sums of per-row hashes over every column (per `by` value
    when given; the sums add up across groups). Equal content gives equal sums whatever the file
    layout, partitioning or row order."""
    cols = [F.col(c) for c in rows.columns]
    grouped = rows.groupBy(by) if by else rows.groupBy()
    return grouped.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h1"),
        F.sum(F.hash(*cols).cast("decimal(38,0)")).alias("h2"),
    )


def content_hash(rows: int, h1: object, h2: object, schema: T.StructType) -> str:
    """sha256 over the schema and the content sums (computed in Spark, never by collecting rows)."""
    text = f"{schema.simpleString()}|{rows}|{h1 or 0}|{h2 or 0}"
    return hashlib.sha256(text.encode()).hexdigest()
