"""Known training/serving skew bugs, each a serving-side stage implementation a team could ship.

Each is injected into the serving engine only (`ServingModel(..., overrides={stage: fn})`); the offline
Spark pipeline is untouched. The skew test must name the stage and the feature.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from skewless.serving.stages import KINDS, Columns, Stage, StageFn


def _with_params(kind: str, **params: object) -> StageFn:
    def fn(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
        return KINDS[kind](dataclasses.replace(stage, params={**stage.params, **params}), cols)
    return fn


def population_std(stage_params: Mapping[str, object], rows: int) -> StageFn:
    """std with ddof=0 (numpy's default) where Spark's StandardScaler uses the sample std (ddof=1)."""
    std = [float(s) * math.sqrt((rows - 1) / rows) for s in stage_params["std"]]  # type: ignore[attr-defined]
    return _with_params("standard_scaler", std=std)


def exact_median(surrogates: list[float]) -> StageFn:
    """The imputer's medians recomputed exactly (np.median) where Spark's Imputer uses approxQuantile."""
    return _with_params("imputer", surrogates=surrogates)


def float32_inputs(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    """The served vector held in a float32 tensor (timestamps as float32 epoch seconds)."""
    out = KINDS["inputs"](stage, cols)
    for o in stage.outputs:
        if out[o.column].dtype != object:
            kind = stage.params["types"][stage.inputs[[p.column for p in stage.outputs].index(o.column)]]
            v = out[o.column]
            out[o.column] = ((v / 1e6).astype(np.float32).astype(np.float64) * 1e6 if kind == "timestamp"
                             else v.astype(np.float32).astype(np.float64))
    return out


def missing_as_zero(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    return {o.column: np.where(np.isnan(cols[i]), 0.0, cols[i])
            for i, o in zip(stage.inputs, stage.outputs, strict=True)}


def right_closed_buckets(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
    """Buckets (a, b] where Spark's Bucketizer uses [a, b)."""
    out = {}
    for i, o, splits in zip(stage.inputs, stage.outputs, stage.params["splits"], strict=True):
        s = np.array([float(v) for v in splits])
        idx = np.clip(np.searchsorted(s, cols[i], side="left") - 1, 0, len(s) - 2).astype(np.float64)
        out[o.column] = np.where(np.isnan(cols[i]), len(s) - 1, idx)
    return out


one_hot_keeps_last: StageFn = _with_params("one_hot", drop_last=False)


def local_hour(zone: str = "America/New_York") -> Callable[[Stage, Columns], dict[str, np.ndarray]]:
    """Hour of day in the serving host's local time where the offline pipeline uses UTC."""
    tz = ZoneInfo(zone)

    def fn(stage: Stage, cols: Columns) -> dict[str, np.ndarray]:
        return {o.column: np.array([np.nan if np.isnan(x) else float(datetime.fromtimestamp(x / 1e6, UTC)
                                                                      .astimezone(tz).hour) for x in cols[i]])
                for i, o in zip(stage.inputs, stage.outputs, strict=True)}
    return fn
