"""Drift's Spark side: every feature's histogram in one pass over a slice, quantile cuts in one more.

Pure transforms (DataFrame in, DataFrame out). The shape of the work is fixed by design: one
`percentile_approx` aggregation computes every numeric feature's cut points at once (reference only),
and one exploded `groupBy` counts every feature's cells at once (each side). No Spark job per
feature; what comes back is small: at most `cap` categories per feature, cells per numeric feature.

Numeric cells. With K distinct cuts g_1 < ... < g_K, a value falls in one of 2K+1 ordered cells:
the open interval below g_1, the point g_1, the open interval (g_1, g_2), ..., the point g_K, the
interval above it. Cell key = 2L + interior, L = #cuts <= v (one Bucketizer), interior decided by a
second Bucketizer on -v (#cuts >= v): a value is a cut exactly when the two counts overlap. Points
make the KS statistic exact at every cut (ties included) and bound its error by the mass strictly
inside the intervals. Null values have key 0; a categorical value key 1; a feature_status entry -1.
"""

from __future__ import annotations

from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.errors import UsageError
from skewless.drift.features import ALL, CATEGORY_KEY, NULL_KEY, STATUS_KEY, TAIL, FeatureSet

SEGMENT = "_segment"
STATUS = "_status"
_INF = float("inf")


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


def features_frame(df: DataFrame, fs: FeatureSet, segment: Column | None = None) -> DataFrame:
    """The slice as the profile reads it: a segment, numeric features as doubles, categorical ones as
    strings (a boolean is "true"/"false"), and the feature_status map when the slice has one."""
    status = (F.col(N.FEATURE_STATUS) if N.FEATURE_STATUS in df.columns
              else F.lit(None).cast("map<string,string>"))
    return df.select(
        (segment.cast("string") if segment is not None else F.lit(ALL)).alias(SEGMENT),
        *[_feature(df, n).cast("double").alias(_num(i)) for i, n in enumerate(fs.numeric)],
        *[_feature(df, n).cast("string").alias(_cat(i)) for i, n in enumerate(fs.categorical)],
        status.alias(STATUS),
    )


def quantile_cuts(frame: DataFrame, fs: FeatureSet, grid: int, accuracy: int) -> DataFrame:
    """One row: for each numeric feature, its approximate quantiles at 1/grid .. (grid-1)/grid
    (rank error <= 1/accuracy), plus its non-null count. One aggregation for all features."""
    probs = [j / grid for j in range(1, grid)]
    aggs = [F.percentile_approx(_num(i), probs, accuracy).alias(_num(i)) for i in range(len(fs.numeric))]
    return frame.agg(F.count(F.lit(1)).alias("_rows"), *aggs) if aggs else frame.agg(F.count(F.lit(1)).alias("_rows"))


def distinct_cuts(quantiles: list[float] | None) -> list[float]:
    """Sorted distinct cut points; [0.0] when a side had no values (the Bucketizer needs one)."""
    cuts = sorted({float(q) for q in quantiles or []})
    return cuts or [0.0]


def cell_counts(frame: DataFrame, fs: FeatureSet, cuts: list[list[float]], cap: int = 10_000) -> DataFrame:
    """(segment, f, k, s, n): every feature's cell counts (numeric: key per cell; categorical: key 1
    and the value; nulls key 0; feature_status entries key -1 and the status), one exploded groupBy.
    Past `cap` categories per feature and segment, the rest are summed under TAIL."""
    if len(cuts) != len(fs.numeric):
        raise ValueError(f"cuts for {len(cuts)} numeric features, expected {len(fs.numeric)}")
    nn = len(fs.numeric)
    binned = frame
    if nn:
        binned = frame.select("*", *[(-F.col(_num(i))).alias(f"_m{i}") for i in range(nn)])
        left = Bucketizer(inputCols=[_num(i) for i in range(nn)], outputCols=[f"_l{i}" for i in range(nn)],
                          splitsArray=[[-_INF, *c, _INF] for c in cuts])
        right = Bucketizer(inputCols=[f"_m{i}" for i in range(nn)], outputCols=[f"_r{i}" for i in range(nn)],
                           splitsArray=[[-_INF, *sorted(-x for x in c), _INF] for c in cuts])
        binned = right.transform(left.transform(binned))
    elems = []
    for i, c in enumerate(cuts):
        lo, hi = F.col(f"_l{i}").cast("int"), F.col(f"_r{i}").cast("int")
        key = F.when(F.col(_num(i)).isNull(), F.lit(NULL_KEY)).otherwise(
            2 * lo + F.when(lo + hi == F.lit(len(c)), 1).otherwise(0))
        elems.append(F.struct(F.lit(i).alias("f"), key.alias("k"), F.lit(None).cast("string").alias("s")))
    for j in range(len(fs.categorical)):
        v = F.col(_cat(j))
        elems.append(F.struct(F.lit(nn + j).alias("f"), F.when(v.isNull(), F.lit(NULL_KEY))
                              .otherwise(F.lit(CATEGORY_KEY)).alias("k"), v.alias("s")))
    index = F.create_map(*[x for name, i in fs.index().items() for x in (F.lit(name), F.lit(i))])
    statuses = F.filter(
        F.transform(F.coalesce(F.map_entries(F.col(STATUS)), F.array().cast("array<struct<key:string,value:string>>")),
                    lambda e: F.struct(F.try_element_at(index, e["key"]).alias("f"), F.lit(STATUS_KEY).alias("k"),
                                       e["value"].alias("s"))),
        lambda x: x["f"].isNotNull() & x["s"].isNotNull())
    cells = (binned.select(SEGMENT, F.explode(F.concat(F.array(*elems), statuses)).alias("_e"))
             .groupBy(SEGMENT, F.col("_e.f").alias("f"), F.col("_e.k").alias("k"), F.col("_e.s").alias("s"))
             .agg(F.count(F.lit(1)).alias("n")))
    return _capped(cells, cap, nn)


def _capped(cells: DataFrame, cap: int, nn: int) -> DataFrame:
    """Keep every numeric cell and status; the `cap` largest categories per (segment, feature)."""
    is_cat = (F.col("f") >= F.lit(nn)) & (F.col("k") == F.lit(CATEGORY_KEY))
    rank = F.row_number().over(Window.partitionBy(SEGMENT, "f", "k").orderBy(F.desc("n"), F.asc("s")))
    ranked = cells.withColumn("_rank", F.when(is_cat, rank).otherwise(F.lit(1)))
    kept = ranked.where(F.col("_rank") <= cap).drop("_rank")
    tail = (ranked.where(F.col("_rank") > cap).groupBy(SEGMENT, "f", "k")
            .agg(F.lit(TAIL).alias("s"), F.sum("n").alias("n")))
    return kept.unionByName(tail)


def with_statuses(rows: DataFrame, logs: DataFrame, first_day: object, last_day: object) -> DataFrame:
    """A dataset's rows with the feature_status each request was served with (datasets keep values,
    not statuses): a left join on request_id within the rows' event dates."""
    statuses = (logs.where((F.col(N.EVENT_DATE) >= F.lit(first_day)) & (F.col(N.EVENT_DATE) <= F.lit(last_day)))
                .select(N.REQUEST_ID, F.col(N.FEATURE_STATUS).alias("_served_status")))
    return (rows.join(statuses, on=N.REQUEST_ID, how="left")
            .withColumn(N.FEATURE_STATUS, F.col("_served_status")).drop("_served_status"))
