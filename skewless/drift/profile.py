"""Drift's Spark side: every feature's histogram in one pass over a slice, quantile cuts in one more.

Pure transforms (DataFrame in, DataFrame out). The shape of the work is fixed by design: one
`percentile_approx` aggregation computes every numeric feature's cut points at once (reference only,
on a bounded sample of a large slice), and one aggregation counts every feature's cells at once (each
side). No Spark job per feature; what comes back is small: at most `cap` categories per feature,
2K+2 cells per numeric feature of K cuts.

Numeric cells. With K distinct cuts g_1 < ... < g_K, a value falls in one of 2K+1 ordered cells:
the open interval below g_1, the point g_1, the open interval (g_1, g_2), ..., the point g_K, the
interval above it. Cell key = 2L + (0 if v == g_L else 1), L = #cuts <= v. Points make the KS
statistic exact at every cut (ties included) and bound its error by the mass strictly inside the
intervals. Null values have key 0; a categorical value key 1; a feature_status entry key -1, under
feature -1, as "feature" SEP "status" (features.py holds the keys; CellCounts.java counts them).
"""

from __future__ import annotations

import hashlib
import json

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.errors import UsageError
from skewless.drift.features import ALL, FeatureSet

SEGMENT = "_segment"
STATUS = "_status"
WEIGHT = "_w"


def _num(i: int) -> str:
    return f"_n{i}"


def _cat(i: int) -> str:
    return f"_c{i}"


def _feature(df: DataFrame, name: str) -> Column:
    """A feature from the table's top level (dataset versions) or its `features` struct (feature_logs)."""
    if name in df.columns:
        return F.col(name)
    struct = df.schema[N.FEATURES].dataType if N.FEATURES in df.columns else T.StructType()
    if isinstance(struct, T.StructType) and name in struct.fieldNames():
        return F.col(N.FEATURES)[name]
    raise UsageError(f"feature {name!r} is neither a column nor in `features` (columns: {df.columns})")


def features_frame(df: DataFrame, fs: FeatureSet, segment: Column | None = None,
                   weight: Column | None = None) -> DataFrame:
    """The slice as the profile reads it: a segment, numeric features as doubles, categorical ones as
    strings (a boolean is "true"/"false"), the feature_status map when the slice has one, and each
    row's weight (1.0 when `weight` is None)."""
    status = (F.col(N.FEATURE_STATUS) if N.FEATURE_STATUS in df.columns
              else F.lit(None).cast("map<string,string>"))
    return df.select(
        (segment.cast("string") if segment is not None else F.lit(ALL)).alias(SEGMENT),
        # NaN (never in feature_logs: quarantined as non_finite_number) is counted as missing.
        *[F.nanvl(_feature(df, n).cast("double"), F.lit(None).cast("double")).alias(_num(i))
          for i, n in enumerate(fs.numeric)],
        *[_feature(df, n).cast("string").alias(_cat(i)) for i, n in enumerate(fs.categorical)],
        status.alias(STATUS),
        (weight.cast("double") if weight is not None else F.lit(1.0)).alias(WEIGHT),
    )


def quantile_cuts(frame: DataFrame, fs: FeatureSet, grid: int, accuracy: int, sample: int = 0) -> DataFrame:
    """One row: `_rows`, the slice's row count, and for each numeric feature its approximate quantiles
    at 1/grid .. (grid-1)/grid (rank error <= 1/accuracy of the rows they are computed from). One
    aggregation for all features.

    With `sample` > 0 and a slice larger than that, the quantiles are those of a Bernoulli sample of
    about `sample` rows (fixed seed): a cut's rank in the slice is then off by about
    sqrt(p(1-p)/sample) more (0.0011 at the median of 200,000). Cuts only place cell boundaries: the
    cells are counted over every row, so PSI and KS stay exact for the cuts chosen."""
    rows = frame.count()
    if sample and rows > sample:
        frame = frame.sample(fraction=sample / rows, seed=17)
    probs = [j / grid for j in range(1, grid)]
    aggs = [F.percentile_approx(_num(i), probs, accuracy).alias(_num(i)) for i in range(len(fs.numeric))]
    return frame.agg(F.lit(rows).alias("_rows"), *aggs)


def distinct_cuts(quantiles: list[float] | None) -> list[float]:
    """Sorted distinct cut points; [0.0] when a side had no values (the Bucketizer needs one)."""
    cuts = sorted({float(q) for q in quantiles or []})
    return cuts or [0.0]


def cell_counts(frame: DataFrame, fs: FeatureSet, cuts: list[list[float]], cap: int = 10_000,
                weighted: bool = False) -> DataFrame:
    """(segment, f, k, s, n, w): every feature's cell counts n and weight sums w (numeric: key per
    cell; categorical: key 1 and the value; nulls key 0; feature_status entries key -1 and the
    status; key -2: a feature's non-missing rows and the sum of their squared weights). One
    aggregation: the JVM aggregate `io.skewless.drift.CellCounts` counts every cell of a row in place
    (no exploded row per value, no shuffle of values), one small buffer per segment and task. Past
    `cap` categories per feature and segment, the rest are summed under TAIL. Unweighted, the frame's
    weights are ignored and w = n."""
    if len(cuts) != len(fs.numeric):
        raise ValueError(f"cuts for {len(cuts)} numeric features, expected {len(fs.numeric)}")
    spark = frame.sparkSession
    jvm = spark._jvm
    assert jvm is not None
    # Cuts travel as one JSON string (a py4j call per double would cost seconds at 80 x 100 cuts);
    # the function's name is a hash of what it counts, so a session may hold several side by side.
    cuts_json = json.dumps(cuts)
    spec = f"{cuts_json}|{len(fs.categorical)}|{cap}|{weighted}"
    name = "skewless_drift_cells_" + hashlib.sha256(spec.encode()).hexdigest()[:16]
    order = jvm.io.skewless.drift.CellCounts.register(spark._jsparkSession, name, cuts_json, len(fs.categorical),
                                                      cap, weighted)
    nan = F.lit(float("nan"))
    # A missing numeric value travels as NaN (a primitive double[] has no null; features_frame has
    # already made NaN values null, so NaN here means missing only).
    args = {"num": F.array(*[F.coalesce(F.col(_num(i)), nan) for i in range(len(fs.numeric))]).cast("array<double>"),
            "cat": F.array(*[F.col(_cat(j)) for j in range(len(fs.categorical))]).cast("array<string>"),
            "status": F.col(STATUS), "w": F.coalesce(F.col(WEIGHT), nan)}
    counted = frame.groupBy(SEGMENT).agg(F.call_function(name, *[args[a] for a in order]).alias("_p"))
    cells = counted.select(SEGMENT, F.inline(F.arrays_zip("_p.f", "_p.k", "_p.s", "_p.n", "_p.w")))
    return cells.toDF(SEGMENT, "f", "k", "s", "n", "w")


def with_statuses(rows: DataFrame, logs: DataFrame, first_day: object, last_day: object) -> DataFrame:
    """A dataset's rows with the feature_status each request was served with (datasets keep values,
    not statuses): a left join on request_id within the rows' event dates."""
    statuses = (logs.where((F.col(N.EVENT_DATE) >= F.lit(first_day)) & (F.col(N.EVENT_DATE) <= F.lit(last_day)))
                .select(N.REQUEST_ID, F.col(N.FEATURE_STATUS).alias("_served_status")))
    return (rows.join(statuses, on=N.REQUEST_ID, how="left")
            .withColumn(N.FEATURE_STATUS, F.col("_served_status")).drop("_served_status"))
