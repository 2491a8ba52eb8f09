"""The serving side of each pipeline stage kind, in numpy, matching Spark ML's arithmetic.

Each function takes a stage (its fitted parameters) and the columns computed so far, and returns the
stage's output columns. A missing number is NaN (Spark: null and NaN, made NaN by the `inputs` stage); a
missing category is None. Where Spark's semantics are surprising they are copied, and said so:
`StandardScaler` multiplies by 1/std (0 where std is 0); `least(NaN, hi)` is `hi` (NaN sorts last);
`log1p(x <= -1)` is null; `Bucketizer` buckets are [a, b) except the last, [a, b].
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from skewless.serving.murmur import hashed_slot

Columns = Mapping[str, np.ndarray]
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Output:
    name: str                          # logical name (a feature, or a vector's name)
    column: str                        # physical column, unique in the pipeline
    slots: tuple[str, ...] | None      # a vector's slot names; None for a scalar


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    inputs: tuple[str, ...]            # physical columns read (raw feature names for `inputs`)
    input_names: tuple[str, ...]       # their logical names
    outputs: tuple[Output, ...]
    params: Mapping[str, Any]

    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> Stage:
        outs = tuple(Output(o["name"], o["column"], None if o.get("slots") is None else tuple(o["slots"]))
                     for o in d["outputs"])
        return cls(d["name"], d["kind"], tuple(d["inputs"]), tuple(d["input_names"]), outs, d.get("params", {}))


StageFn = Callable[[Stage, Columns], dict[str, np.ndarray]]


def _micros(v: Any) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, datetime):
        return float(round((v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp() * 1e6))
    if isinstance(v, str):
        return _micros(datetime.fromisoformat(v.replace("Z", "+00:00")))
    return float(v)


def as_numbers(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def inputs(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    """Raw served values -> canonical columns: numbers and booleans as float64 (missing NaN), categories
    as str or None, timestamps as float64 microseconds since the epoch (UTC)."""
    types = stage.params["types"]
    out: dict[str, np.ndarray] = {}
    for raw, o in zip(stage.inputs, stage.outputs, strict=True):
        values = cols[raw]
        kind = types[raw]
        if kind == "categorical":
            out[o.column] = np.array([None if v is None else str(v) for v in values], dtype=object)
        elif kind == "timestamp":
            out[o.column] = (values.astype(np.float64) if isinstance(values, np.ndarray) and values.dtype.kind == "f"
                             else np.array([_micros(v) for v in values], dtype=np.float64))
        else:
            out[o.column] = as_numbers(values)
    return out


def imputer(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    return {o.column: np.where(np.isnan(cols[i]), s, cols[i])
            for i, o, s in zip(stage.inputs, stage.outputs, stage.params["surrogates"], strict=True)}


def clip(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    lo, hi = stage.params.get("lower"), stage.params.get("upper")
    out = {}
    for i, o in zip(stage.inputs, stage.outputs, strict=True):
        y = cols[i]
        if lo is not None:
            y = np.where(np.isnan(y), np.nan, np.maximum(y, lo))   # greatest(NaN, lo) = NaN
        if hi is not None:
            y = np.where(np.isnan(y), hi, np.minimum(y, hi))       # least(NaN, hi) = hi
        out[o.column] = y
    return out


def log1p(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {o.column: np.where(cols[i] <= -1.0, np.nan, np.log1p(cols[i]))
                for i, o in zip(stage.inputs, stage.outputs, strict=True)}


def hour_of_day(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    """The UTC hour of a timestamp (integer arithmetic on microseconds: no rounding at the hour)."""
    out = {}
    for i, o in zip(stage.inputs, stage.outputs, strict=True):
        x = cols[i]
        ok = np.isfinite(x)
        hours = (np.where(ok, x, 0).astype(np.int64) // HOUR_US) % 24
        out[o.column] = np.where(ok, hours.astype(np.float64), np.nan)
    return out


def bucketize(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    out = {}
    for i, o, splits in zip(stage.inputs, stage.outputs, stage.params["splits"], strict=True):
        s = np.array([float(v) for v in splits])
        x = cols[i]
        idx = (np.searchsorted(s, x, side="right") - 1).astype(np.float64)
        idx = np.where(x == s[-1], len(s) - 2, idx)
        out[o.column] = np.where(np.isnan(x), len(s) - 1, idx)  # handleInvalid=keep: NaN has its own bucket
    return out


def standard_scaler(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    x = np.column_stack([cols[i] for i in stage.inputs])
    p = stage.params
    std = np.array(p["std"], dtype=np.float64)
    scale = np.where(std == 0.0, 0.0, 1.0 / np.where(std == 0.0, 1.0, std))
    if p["with_mean"]:
        x = x - np.array(p["mean"], dtype=np.float64)
    if p["with_std"]:
        x = x * scale
    return {stage.outputs[0].column: x}


def one_hot(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    out = {}
    for i, o, labels in zip(stage.inputs, stage.outputs, stage.params["labels"], strict=True):
        index = {v: k for k, v in enumerate(labels)}
        width = len(labels) + (0 if stage.params["drop_last"] else 1)
        codes = np.array([index.get(v, len(labels)) if v is not None else len(labels) for v in cols[i]])
        m = np.zeros((len(codes), width))
        rows = np.nonzero(codes < width)[0]
        m[rows, codes[rows]] = 1.0
        out[o.column] = m
    return out


def feature_hasher(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    n = int(stage.params["num_features"])
    names = stage.params["hashed_names"]
    size = len(cols[stage.inputs[0]])
    m = np.zeros((size, n))
    for i, name in zip(stage.inputs, names, strict=True):
        slot_of: dict[str, int] = {}
        for r, v in enumerate(cols[i]):
            if v is not None:
                slot = slot_of.get(v)
                if slot is None:
                    slot = slot_of[v] = hashed_slot(name, str(v), n)
                m[r, slot] += 1.0
    return {stage.outputs[0].column: m}


def assemble(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    parts = [cols[i] if cols[i].ndim == 2 else cols[i].reshape(-1, 1) for i in stage.inputs]
    return {stage.outputs[0].column: np.hstack(parts).astype(np.float64, copy=False)}


def logistic_regression(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    x = cols[stage.inputs[0]]
    margin = x @ np.array(stage.params["coefficients"], dtype=np.float64) + float(stage.params["intercept"])
    with np.errstate(over="ignore"):
        return {stage.outputs[0].column: 1.0 / (1.0 + np.exp(-margin))}


def custom(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    """A team's own stage: `params.serving` = "module:function", called with {logical name: column}
    and `params.options`; it returns {output name: column}."""
    module, _, attr = str(stage.params["serving"]).partition(":")
    fn = getattr(importlib.import_module(module), attr)
    got = fn({n: cols[i] for n, i in zip(stage.input_names, stage.inputs, strict=True)}, dict(stage.params["options"]))
    return {o.column: np.asarray(got[o.name], dtype=np.float64) for o in stage.outputs}


KINDS: dict[str, StageFn] = {
    "inputs": inputs, "imputer": imputer, "clip": clip, "log1p": log1p, "hour_of_day": hour_of_day,
    "bucketize": bucketize, "standard_scaler": standard_scaler, "one_hot": one_hot,
    "feature_hasher": feature_hasher, "assemble": assemble, "logistic_regression": logistic_regression,
    "custom": custom,
}
