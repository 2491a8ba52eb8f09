"""Per-example comparison of the offline pipeline's columns with the serving engine's, and localization.

Pure numpy over collected examples (at most --examples rows). A difference is |offline - serving|;
two missing values (NaN) agree, one missing is an infinite difference; categories agree only if equal.

Localization is a binary search over the stage list. The predicate for stage k is "some column written
by stages 0..k differs on the failing examples". Every stage writes new columns and the comparison
covers all of them, so once a column differs every later predicate is true: the predicate is monotone
and the search finds the first differing stage in ceil(log2(stages)) comparisons, whatever later stages
do to the difference (a clip that hides it downstream hides it from the score, not from the search).
The stage found is then run alone on the offline side's own inputs (the isolated check): if it still
differs, the stage itself disagrees; if not, it amplified a difference within tolerance upstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skewless.serving.engine import ServingModel
from skewless.serving.stages import Output, Stage


def abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row x slot differences (n, width); widths that differ make the extra slots infinite."""
    if a.dtype == object or b.dtype == object:
        same = np.array([x == y for x, y in zip(a, b, strict=True)], dtype=bool)
        return np.where(same, 0.0, np.inf).reshape(-1, 1)
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    width = max(a2.shape[1], b2.shape[1])
    out = np.full((len(a2), width), np.inf)
    w = min(a2.shape[1], b2.shape[1])
    with np.errstate(invalid="ignore"):
        d = np.abs(a2[:, :w] - b2[:, :w])
    both_nan = np.isnan(a2[:, :w]) & np.isnan(b2[:, :w])
    same_inf = np.isinf(a2[:, :w]) & (a2[:, :w] == b2[:, :w])
    d = np.where(both_nan | same_inf, 0.0, d)
    out[:, :w] = np.where(np.isnan(d), np.inf, d)
    return out


@dataclass(frozen=True)
class ScoreStats:
    examples: int
    max_abs_diff: float
    p99_abs_diff: float
    mean_abs_diff: float
    over_tolerance: int
    failing: np.ndarray  # row indexes over tolerance

    def as_dict(self) -> dict[str, Any]:
        return {"examples": self.examples, "max_abs_diff": self.max_abs_diff, "p99_abs_diff": self.p99_abs_diff,
                "mean_abs_diff": self.mean_abs_diff, "over_tolerance": self.over_tolerance}


def score_stats(offline: np.ndarray, serving: np.ndarray, tolerance: float) -> ScoreStats:
    d = abs_diff(offline, serving)[:, 0] if len(offline) else np.zeros(0)
    if not len(d):
        return ScoreStats(0, 0.0, 0.0, 0.0, 0, np.zeros(0, dtype=int))
    failing = np.nonzero(d > tolerance)[0]
    return ScoreStats(len(d), float(d.max()), float(np.quantile(d, 0.99, method="higher")),
                      float(d.mean()), len(failing), failing)


def worst(ids: Sequence[str], offline: np.ndarray, serving: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    d = abs_diff(offline, serving)[:, 0]
    order = np.argsort(-d, kind="stable")[:k]
    return [{"request_id": ids[i], "offline": _f(offline[i]), "serving": _f(serving[i]), "abs_diff": _f(d[i])}
            for i in order]


def _f(x: Any) -> float | str | None:
    if x is None or isinstance(x, str):
        return x
    v = float(x)
    return v if np.isfinite(v) else str(v)


def _rows(cols: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return {k: (v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows]) for k, v in cols.items()}


@dataclass
class Localizer:
    """Bisection over `engine`'s stages on the failing rows, against the offline columns."""

    engine: ServingModel
    offline: Mapping[str, np.ndarray]   # every physical column the Spark pipeline wrote, plus the raw inputs
    raw: Mapping[str, Any]              # raw served values, as the serving engine receives them
    tolerance: float
    comparisons: int = 0

    def _serving_upto(self, k: int, rows: np.ndarray) -> tuple[dict[str, np.ndarray] | None, str]:
        try:
            return self.engine.run(_rows(self.raw, rows), upto=k), ""
        except Exception as exc:  # noqa: BLE001 - a serving stage that raises differs, and says how
            return None, f"{type(exc).__name__}: {exc}"

    def diverges(self, k: int, rows: np.ndarray) -> bool:
        self.comparisons += 1
        got, _ = self._serving_upto(k, rows)
        if got is None:
            return True
        return any(_over(self.offline[o.column][rows], got[o.column], self.tolerance)
                   for st in self.engine.stages[:k + 1] for o in st.outputs)

    def first_divergent_stage(self, rows: np.ndarray) -> int:
        lo, hi = 0, len(self.engine.stages) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.diverges(mid, rows):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def describe(self, k: int, rows: np.ndarray, ids: Sequence[str], samples: int = 5) -> dict[str, Any]:
        """Which outputs (features, vector slots) of stage k differ, with sample ids and both values;
        and the isolated check: stage k alone on the offline side's inputs."""
        stage = self.engine.stages[k]
        got, error = self._serving_upto(k, rows)
        found = [] if got is None else [d for o in stage.outputs for d in _slots(
            o, self.offline[o.column][rows], got[o.column], self.tolerance, [ids[i] for i in rows], samples)]
        iso_cols = _rows(self.offline, rows)
        try:
            alone = self.engine.run_stage(k, iso_cols)
            iso = max(float(abs_diff(iso_cols[o.column], alone[o.column]).max(initial=0.0)) for o in stage.outputs)
            isolated: dict[str, Any] = {"differs": iso > self.tolerance, "max_abs_diff": _f(iso)}
        except Exception as exc:  # noqa: BLE001
            isolated = {"differs": True, "error": f"{type(exc).__name__}: {exc}"}
        return {"stage": stage.name, "stage_index": k, "kind": stage.kind, "stages": len(self.engine.stages),
                "comparisons": self.comparisons, "serving_error": error or None, "differing": found,
                "isolated": isolated}


def _over(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool((abs_diff(a, b) > tol).any())


def _slots(o: Output, a: np.ndarray, b: np.ndarray, tol: float, ids: list[str], samples: int) -> list[dict[str, Any]]:
    d = abs_diff(a, b)
    a2 = a.reshape(len(a), -1) if a.dtype != object else a.reshape(-1, 1)
    b2 = b.reshape(len(b), -1) if b.dtype != object else b.reshape(-1, 1)
    out = []
    for j in np.nonzero((d > tol).any(axis=0))[0]:
        name = (o.slots[j] if o.slots and j < len(o.slots) else o.name if o.slots is None
                else f"{o.name}[{j}] (serving only)" if j >= a2.shape[1] else f"{o.name}[{j}]")
        bad = np.nonzero(d[:, j] > tol)[0]
        out.append({"output": o.name, "slot": name, "rows_differing": len(bad), "max_abs_diff": _f(d[:, j].max()),
                    "width": {"offline": a2.shape[1], "serving": b2.shape[1]},
                    "examples": [{"request_id": ids[i], "offline": _f(a2[i, j]) if j < a2.shape[1] else None,
                                  "serving": _f(b2[i, j]) if j < b2.shape[1] else None} for i in bad[:samples]]})
    return out


def stage_outputs(stages: Sequence[Stage]) -> list[str]:
    return [o.column for s in stages for o in s.outputs]
