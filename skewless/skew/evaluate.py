"""The skew test's verdict from collected examples: no Spark here, so the comparison, the localization
and the injected-bug tests run on one collected table as often as needed.

The offline table holds, per example, the raw served values, every stage's output as the Spark
pipeline computed it, and what production logged (model version, score).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from skewless.core import names as N
from skewless.serving.engine import ServingModel
from skewless.serving.stages import StageFn
from skewless.skew.compare import Localizer, score_stats, worst

SERVED_SCORE = "_served_score"
SERVED_VERSION = "_served_model_version"


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as the engine's arrays: numbers float64 (null -> NaN), timestamps as float64
    microseconds, strings and booleans as objects (None kept), arrays as a 2-D float64 matrix."""
    t = column.type
    if pa.types.is_timestamp(t):
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).cast(pa.float64())
        return micros.fill_null(np.nan).to_numpy()
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return column.cast(pa.float64()).fill_null(np.nan).to_numpy()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        rows = column.to_pylist()
        width = max((len(r) for r in rows if r is not None), default=0)
        return np.array([r if r is not None else [np.nan] * width for r in rows], dtype=np.float64).reshape(-1, width)
    return np.array(column.to_pylist(), dtype=object)


def columns_of(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: to_numpy(table.column(name)) for name in table.column_names}


def evaluate(manifest: Mapping[str, Any], offline: Mapping[str, np.ndarray], *, tolerance: float, source: str,
             package: str, examples_requested: int, overrides: Mapping[str, StageFn] | None = None) -> dict[str, Any]:
    """Serving engine vs the offline columns, per example; localized when any example is over tolerance."""
    engine = ServingModel(manifest, overrides)
    raw = {f: offline[f] for f in manifest["features"]}
    ids = [str(x) for x in offline[N.REQUEST_ID]]
    n = len(ids)
    try:
        serving, serving_error = engine.score(raw), None
    except Exception as exc:  # noqa: BLE001 - a serving engine that raises fails every example, and says why
        serving, serving_error = np.full(n, np.nan), f"{type(exc).__name__}: {exc}"
    expected = offline[engine.score_column]
    stats = score_stats(expected, serving, tolerance)
    served = _served(offline, serving, str(manifest["model"]["version"]), tolerance)
    report: dict[str, Any] = {
        "job": "skew_test", "run_id": uuid.uuid4().hex, "tested_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "package": package, "package_hash": manifest["content_hash"], "model": dict(manifest["model"]),
        "dataset": manifest["dataset"]["ref"], "source": source, "examples_requested": examples_requested,
        "tolerance": tolerance, **stats.as_dict(), "serving_error": serving_error,
        "worst": worst(ids, expected, serving), "served": served, "localization": None,
        "passed": stats.over_tolerance == 0 and not served["over_tolerance"],
    }
    if stats.over_tolerance:
        loc = Localizer(engine, offline, raw, tolerance)
        report["localization"] = loc.describe(loc.first_divergent_stage(stats.failing), stats.failing, ids)
    return report


def _served(offline: Mapping[str, np.ndarray], serving: np.ndarray, version: str, tol: float) -> dict[str, Any]:
    """Where production served this package's model version, its logged score against the engine's."""
    mine = np.array([v == version for v in offline[SERVED_VERSION]], dtype=bool) & ~np.isnan(offline[SERVED_SCORE])
    if not mine.any():
        return {"compared": 0, "max_abs_diff": None, "over_tolerance": 0}
    s = score_stats(offline[SERVED_SCORE][mine], serving[mine], tol)
    return {"compared": s.examples, "max_abs_diff": s.max_abs_diff, "over_tolerance": s.over_tolerance}
