"""Drift's Spark side: every feature's histogram in one pass over a slice, quantile cuts in one more.

Pure transforms (DataFrame in, DataFrame out). The shape of the work is fixed by design: one
`percentile_approx` aggregation computes every numeric feature's cut points at once (reference only),
and one exploded `groupBy` counts every feature's cells at once (each side). No Spark job per
feature; what comes back is small: at most `cap` categories per feature, cells per numeric feature.

Numeric cells. With K distinct cuts g_1 < ... < g_K, a value falls in one of 2K+1 ordered cells:
the open interval below g_1, the point g_1, the open interval (g_1, g_2), ..., the point g_K, the
interval above it. Cell key = 2L + (0 if v == g_L else 1), L = #cuts <= v (one Bucketizer for all
features). Points make the KS statistic exact at every cut (ties included) and bound its error by the
mass strictly inside the intervals. Null values have key 0; a categorical value key 1; a
feature_status entry key -1, under feature -1, as "feature" SEP "status".
"""

from __future__ import annotations

import json

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.errors import UsageError
from skewless.drift.features import ALL, CATEGORY_KEY, NULL_KEY, SEP, STATUS_FEATURE, STATUS_KEY, TAIL, FeatureSet

SEGMENT = "_segment"
STATUS = "_status"


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
        # NaN (never in feature_logs: quarantined as non_finite_number) is counted as missing.
        *[F.nanvl(_feature(df, n).cast("double"), F.lit(None).cast("double")).alias(_num(i))
          for i, n in enumerate(fs.numeric)],
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
    binned = _bucketize(frame, [_num(i) for i in range(nn)], [f"_l{i}" for i in range(nn)], cuts) if nn else frame
    # Built as one SQL expression (one parse in the JVM), not a Column per literal (a py4j call each).
    elems = [_numeric_cell(i, c) for i, c in enumerate(cuts)] + [
        f"named_struct('f', {nn + j}, 'k', CASE WHEN {_cat(j)} IS NULL THEN {NULL_KEY} ELSE {CATEGORY_KEY} END, "
        f"'s', {_cat(j)})" for j in range(len(fs.categorical))]
    # A feature_status entry travels as "feature\x00status" under f = -1: no per-row lookup of the
    # feature's index (the driver maps names, and drops statuses of features it does not monitor).
    entries = F.coalesce(F.map_entries(F.col(STATUS)), F.array().cast("array<struct<key:string,value:string>>"))
    statuses = F.transform(entries, lambda e: F.struct(F.lit(STATUS_FEATURE).alias("f"), F.lit(STATUS_KEY).alias("k"),
                                                      F.concat(e["key"], F.lit(SEP), e["value"]).alias("s")))
    cells = (binned.select(SEGMENT, F.explode(F.concat(F.expr(f"array({', '.join(elems)})"), statuses)).alias("_e"))
             .groupBy(SEGMENT, F.col("_e.f").alias("f"), F.col("_e.k").alias("k"), F.col("_e.s").alias("s"))
             .agg(F.count(F.lit(1)).alias("n")))
    return _capped(cells, cap, nn)


def _numeric_cell(i: int, cuts: list[float]) -> str:
    """Feature i's cell as SQL: L = #cuts <= v (the Bucketizer's output); v is the cut point g_L itself
    (cell 2L) or strictly inside (g_L, g_L+1) (cell 2L + 1); null is cell 0 (NULL_KEY). The cuts are a
    literal array (folded once, not built per row); repr() round-trips every double exactly."""
    values = ", ".join(f"CAST('{c!r}' AS DOUBLE)" for c in cuts)
    lo = f"CAST(_l{i} AS INT)"
    point = f"({lo} >= 1 AND element_at(array({values}), greatest({lo}, 1)) = {_num(i)})"
    return (f"named_struct('f', {i}, 'k', CASE WHEN {_num(i)} IS NULL THEN {NULL_KEY} "
            f"ELSE 2 * {lo} + CASE WHEN {point} THEN 0 ELSE 1 END END, 's', CAST(NULL AS STRING))")


def _bucketize(df: DataFrame, inputs: list[str], outputs: list[str], cuts: list[list[float]]) -> DataFrame:
    """Spark ML's Bucketizer (a binary search in the JVM) over many columns, splits (-inf, cuts, +inf).

    Its parameters go to the JVM as one JSON string each: PySpark's own transfer makes a py4j call per
    split, 16,000 of them for 80 features of 100 cuts, seconds of planning for every check."""
    jvm = df.sparkSession._jvm
    assert jvm is not None
    jb = jvm.org.apache.spark.ml.feature.Bucketizer()
    jb.setInputCols(jb.inputCols().jsonDecode(json.dumps(inputs)))
    jb.setOutputCols(jb.outputCols().jsonDecode(json.dumps(outputs)))
    jb.setSplitsArray(jb.splitsArray().jsonDecode(json.dumps([["-Inf", *c, "Inf"] for c in cuts])))
    return DataFrame(jb.transform(df._jdf), df.sparkSession)


def _capped(cells: DataFrame, cap: int, nn: int) -> DataFrame:
    """Keep every numeric cell and status; the `cap` largest categories per (segment, feature), the rest
    summed under TAIL. One pass over the grouped counts: a window, then a small re-aggregation (a union
    of kept and tail would run the explode and its groupBy twice)."""
    is_cat = (F.col("f") >= F.lit(nn)) & (F.col("k") == F.lit(CATEGORY_KEY))
    rank = F.row_number().over(Window.partitionBy(SEGMENT, "f", "k").orderBy(F.desc("n"), F.asc("s")))
    label = F.when(is_cat & (rank > F.lit(cap)), F.lit(TAIL)).otherwise(F.col("s"))
    return cells.select(SEGMENT, "f", "k", label.alias("s"), "n").groupBy(SEGMENT, "f", "k", "s").agg(
        F.sum("n").alias("n"))


def with_statuses(rows: DataFrame, logs: DataFrame, first_day: object, last_day: object) -> DataFrame:
    """A dataset's rows with the feature_status each request was served with (datasets keep values,
    not statuses): a left join on request_id within the rows' event dates."""
    statuses = (logs.where((F.col(N.EVENT_DATE) >= F.lit(first_day)) & (F.col(N.EVENT_DATE) <= F.lit(last_day)))
                .select(N.REQUEST_ID, F.col(N.FEATURE_STATUS).alias("_served_status")))
    return (rows.join(statuses, on=N.REQUEST_ID, how="left")
            .withColumn(N.FEATURE_STATUS, F.col("_served_status")).drop("_served_status"))
