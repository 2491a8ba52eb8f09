"""Fit a pipeline spec in Spark ML, stage by stage, into one `PipelineModel` and the package's stages.

Every skewless stage writes new physical columns (`<stage>__<name>`), never overwriting one, so the
fitted Spark pipeline keeps each stage's output: the skew test compares them stage by stage. The
parameters each Spark model fitted are copied into the manifest, for the serving engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml import Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (
    Bucketizer,
    FeatureHasher,
    Imputer,
    OneHotEncoder,
    QuantileDiscretizer,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from skewless.model.custom import EntryPointTransformer
from skewless.model.spec import PipelineSpec, StageSpec

SCORE = "score"
PROBABILITY = "score__probability"  # Spark's probability vector; the score is its slot 1


def phys(stage: str, name: str) -> str:
    return f"{stage}__{name}"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _num(x: float) -> float | str:
    """JSON has no infinities: they are kept as "inf"/"-inf" (float() reads them back)."""
    return x if math.isfinite(x) else str(x)


@dataclass
class Fitter:
    """Fits stages in order on `df`, tracking each logical name's current physical column."""

    df: DataFrame
    columns: dict[str, tuple[str, tuple[str, ...] | None]] = field(default_factory=dict)  # name -> (col, slots)
    spark_stages: list[Transformer] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, kind: str, inputs: list[str], outputs: list[tuple[str, tuple[str, ...] | None]],
            stages: list[Any], params: Callable[[list[Any]], dict[str, Any]], *, raw: bool = False) -> None:
        model = Pipeline(stages=stages).fit(self.df)
        self.df = model.transform(self.df)
        self.spark_stages.extend(model.stages)
        in_cols = inputs if raw else [self.columns[i][0] for i in inputs]
        outs = [{"name": o, "column": phys(name, o), "slots": None if s is None else list(s)} for o, s in outputs]
        self.manifest.append({"name": name, "kind": kind, "inputs": in_cols, "input_names": inputs,
                              "outputs": outs, "params": params(model.stages)})
        for o, s in outputs:
            self.columns[o] = (phys(name, o), s)

    def col(self, name: str) -> str:
        return self.columns[name][0]

    def slots(self, name: str) -> tuple[str, ...]:
        return self.columns[name][1] or (name,)


def _inputs(f: Fitter, spec: PipelineSpec) -> None:
    exprs = []
    for name, t in spec.features.items():
        src = _q(name)
        if t == "categorical":
            e = f"CAST({src} AS STRING)"
        elif t == "timestamp":
            e = f"CAST(unix_micros({src}) AS DOUBLE)"
        else:  # null and NaN are both "missing": NaN from here on, as in the serving engine
            e = f"coalesce(CAST({src} AS DOUBLE), double('NaN'))"
        exprs.append(f"{e} AS {_q(phys('inputs', name))}")
    sql = SQLTransformer(statement=f"SELECT *, {', '.join(exprs)} FROM __THIS__")
    names = list(spec.features)
    f.add("inputs", "inputs", names, [(n, None) for n in names], [sql],
          lambda _: {"types": dict(spec.features)}, raw=True)


def _sql_stage(f: Fitter, st: StageSpec, exprs: list[str], outs: list[str], params: dict[str, Any]) -> None:
    sql = SQLTransformer(statement="SELECT *, " + ", ".join(
        f"{e} AS {_q(phys(st.name, o))}" for e, o in zip(exprs, outs, strict=True)) + " FROM __THIS__")
    f.add(st.name, st.kind, list(st.inputs), [(o, None) for o in outs], [sql], lambda _: params)


def fit_stage(f: Fitter, st: StageSpec) -> None:  # noqa: C901 - one branch per stage kind, each short
    ins = list(st.inputs)
    cols = [f.col(i) for i in ins]
    outs = [phys(st.name, i) for i in ins]
    if st.kind == "imputer":
        imp = Imputer(inputCols=cols, outputCols=outs, strategy=st.strategy, relativeError=st.relative_error)
        f.add(st.name, st.kind, ins, [(i, None) for i in ins], [imp], lambda m: {
            "strategy": st.strategy, "relative_error": st.relative_error,
            "surrogates": [float(m[0].surrogateDF.first()[c]) for c in cols]})
    elif st.kind == "clip":
        def bound(e: str, fn: str, v: float | None) -> str:
            return e if v is None else f"{fn}({e}, CAST({v!r} AS DOUBLE))"
        _sql_stage(f, st, [bound(bound(_q(c), "greatest", st.lower), "least", st.upper) for c in cols], ins,
                   {"lower": st.lower, "upper": st.upper})
    elif st.kind == "log1p":
        _sql_stage(f, st, [f"log1p({_q(c)})" for c in cols], ins, {})
    elif st.kind == "hour_of_day":  # in the session's time zone, which skewless pins to UTC
        _sql_stage(f, st, [f"CAST(hour(timestamp_micros(CAST({_q(c)} AS BIGINT))) AS DOUBLE)" for c in cols],
                   list(st.outputs or st.inputs), {"time_zone": "UTC"})
    elif st.kind == "bucketize":
        est: Any = (QuantileDiscretizer(inputCols=cols, outputCols=outs, numBucketsArray=[st.quantiles] * len(cols),
                                        relativeError=st.relative_error, handleInvalid="keep") if st.quantiles else
                    Bucketizer(inputCols=cols, outputCols=outs, splitsArray=[list(st.splits)] * len(cols),
                               handleInvalid="keep"))
        f.add(st.name, st.kind, ins, [(i, None) for i in ins], [est],
              lambda m: {"splits": [[_num(x) for x in s] for s in m[0].getSplitsArray()]})
    elif st.kind == "standard_scaler":
        out = st.output or st.name
        tmp = phys(st.name, "assembled")
        asm = VectorAssembler(inputCols=cols, outputCol=tmp, handleInvalid="keep")
        sc = StandardScaler(inputCol=tmp, outputCol=phys(st.name, out), withMean=st.with_mean, withStd=st.with_std)
        f.add(st.name, st.kind, ins, [(out, tuple(f"{out}[{i}]" for i in ins))], [asm, sc], lambda m: {
            "with_mean": st.with_mean, "with_std": st.with_std,
            "mean": m[1].mean.toArray().tolist(), "std": m[1].std.toArray().tolist()})
    elif st.kind == "one_hot":
        idx = [phys(st.name, f"{i}_index") for i in ins]
        si = StringIndexer(inputCols=cols, outputCols=idx, handleInvalid="keep", stringOrderType="frequencyDesc")
        oh = OneHotEncoder(inputCols=idx, outputCols=outs, dropLast=st.drop_last)
        fitted = si.fit(f.df)
        labels = [list(x) for x in fitted.labelsArray]
        per_input: list[tuple[str, tuple[str, ...] | None]] = [
            (i, tuple(f"{i}={v}" for v in lab) + (() if st.drop_last else (f"{i}=<other>",)))
            for i, lab in zip(ins, labels, strict=True)]
        f.add(st.name, st.kind, ins, per_input, [fitted, oh],
              lambda _: {"labels": labels, "drop_last": st.drop_last, "order": "frequencyDesc"})
    elif st.kind == "feature_hasher":
        out = st.output or st.name
        fh = FeatureHasher(inputCols=cols, categoricalCols=cols, outputCol=phys(st.name, out),
                           numFeatures=st.num_features)
        f.add(st.name, st.kind, ins, [(out, tuple(f"{out}[{k}]" for k in range(st.num_features)))], [fh],
              lambda _: {"num_features": st.num_features, "hashed_names": cols, "hash": "murmur3_x86_32 seed 42"})
    elif st.kind == "assemble":
        out = st.output or st.name
        slots = tuple(s for i in ins for s in f.slots(i))
        va = VectorAssembler(inputCols=cols, outputCol=phys(st.name, out), handleInvalid="keep")
        f.add(st.name, st.kind, ins, [(out, slots)], [va], lambda _: {})
    elif st.kind == "custom":
        names = list(st.outputs or st.inputs)
        tr = EntryPointTransformer.of(st.spark, dict(zip(ins, cols, strict=True)),
                                      {o: phys(st.name, o) for o in names}, dict(st.options))
        f.add(st.name, st.kind, ins, [(o, None) for o in names], [tr],
              lambda _: {"serving": st.serving, "spark": st.spark, "options": dict(st.options)})


def fit_pipeline(train: DataFrame, spec: PipelineSpec) -> tuple[PipelineModel, list[dict[str, Any]], int]:
    """Fit every stage and the scorer on `train`; the Spark pipeline, the manifest's stages, the rows."""
    f = Fitter(train.cache())
    rows = train.count()
    _inputs(f, spec)
    for st in spec.stages:
        fit_stage(f, st)
    sc = spec.scorer
    lr = LogisticRegression(featuresCol=f.col(sc.input), labelCol=spec.label, regParam=sc.reg_param,
                            elasticNetParam=sc.elastic_net, maxIter=sc.max_iter, standardization=sc.standardization,
                            family="binomial", probabilityCol=PROBABILITY, rawPredictionCol="score__raw",
                            predictionCol="score__prediction")
    if spec.weight:
        lr.setWeightCol(spec.weight)
    model = lr.fit(f.df)
    f.spark_stages.append(model)
    f.manifest.append({
        "name": SCORE, "kind": sc.kind, "inputs": [f.col(sc.input)], "input_names": [sc.input],
        "outputs": [{"name": SCORE, "column": SCORE, "slots": None}],
        "params": {"coefficients": model.coefficients.toArray().tolist(), "intercept": float(model.intercept),
                   "reg_param": sc.reg_param, "elastic_net": sc.elastic_net,
                   "iterations": model.summary.totalIterations,
                   "spark_probability_column": PROBABILITY}})
    train.unpersist()
    return PipelineModel(stages=f.spark_stages), f.manifest, rows
