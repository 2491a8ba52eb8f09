"""From counts to verdicts: every feature's metrics, their status, and what the report draws.

Pure Python + numpy over the small histograms `profile` collected. A feature's status is its worst
metric's; distribution metrics on fewer than `min_rows` non-null rows on either side are
`insufficient_data` (never an alarm), as are share metrics on fewer than `min_rows` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skewless.drift import metrics as M
from skewless.drift.features import CATEGORY_KEY, NULL_KEY, SEP, SQUARES_KEY, STATUS_KEY, TAIL, FeatureSet
from skewless.drift.settings import SEVERITY, Defaults, Status, Thresholds

Cell = tuple[int, int, str | None, int, float]  # (f, k, s, n, w): profile's rows, collected


@dataclass(frozen=True)
class Side:
    """One feature on one side. `rows` and `nulls` are row counts (`min_rows` is about evidence);
    everything compared is weighted: `weight` (all rows), `null_weight`, the statuses' weights, the
    cells' or categories' weights, and `squares` (the non-missing rows' squared weights, for Kish's
    effective size). Unweighted, every weight is the matching count."""

    rows: int
    nulls: int
    statuses: Mapping[str, float]
    cells: np.ndarray | None = None
    categories: Mapping[str, float] | None = None
    weight: float = 0.0
    null_weight: float = 0.0
    squares: float = 0.0

    @property
    def present(self) -> int:
        return self.rows - self.nulls

    @property
    def effective(self) -> float:
        """Kish's effective sample size of the non-missing rows: (sum w)^2 / sum w^2 (= present unweighted)."""
        w = self.weight - self.null_weight
        return w * w / self.squares if self.squares > 0 else 0.0


def sides(cells: Iterable[Cell], fs: FeatureSet, cuts: list[list[float]]) -> dict[str, Side]:
    """The collected (f, k, s, n, w) rows of one segment as a Side per feature."""
    nn = len(fs.numeric)
    index = fs.index()
    nulls, null_w, squares = [0] * len(fs.names), [0.0] * len(fs.names), [0.0] * len(fs.names)
    present = [0] * len(fs.names)
    stat: list[dict[str, float]] = [{} for _ in fs.names]
    num = [np.zeros(2 * len(c) + 1) for c in cuts]
    cats: list[dict[str, float]] = [{} for _ in fs.categorical]
    for f, k, s, n, w in cells:
        if k == NULL_KEY:
            nulls[f] += n
            null_w[f] += w
        elif k == SQUARES_KEY:
            present[f] += n
            squares[f] += w
        elif k == STATUS_KEY:  # "feature\x00status" (profile.SEP); statuses of unmonitored features dropped
            name, _, value = str(s).partition(SEP)
            if (i := index.get(name)) is not None and value:
                stat[i][value] = stat[i].get(value, 0) + w
        elif f < nn:
            num[f][k - 1] += w
        elif k == CATEGORY_KEY:
            cats[f - nn][str(s)] = cats[f - nn].get(str(s), 0) + w
    out = {}
    for i, name in enumerate(fs.names):
        values = float(num[i].sum()) if i < nn else float(sum(cats[i - nn].values()))
        out[name] = Side(nulls[i] + present[i], nulls[i], stat[i], cells=num[i] if i < nn else None,
                         categories=None if i < nn else cats[i - nn], weight=null_w[i] + values,
                         null_weight=null_w[i], squares=squares[i])
    return out


def per_feature(cells: Iterable[Cell], fs: FeatureSet) -> list[Cell]:
    """The profile's cells with each feature_status entry moved under its feature (plain status in `s`):
    the form `drift_references` stores. Statuses of features not monitored are dropped."""
    index = fs.index()
    out: list[Cell] = []
    for f, k, s, n, w in cells:
        if k == STATUS_KEY:
            name, _, value = str(s).partition(SEP)
            if name in index and value:
                out.append((index[name], k, value, n, w))
        else:
            out.append((f, k, s, n, w))
    return out


def merged(parts: Iterable[Side]) -> Side:
    """Segments summed into one side (the `all` segment)."""
    items = list(parts)
    statuses: dict[str, float] = {}
    for p in items:
        for k, v in p.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    numeric = bool(items) and items[0].cells is not None
    cats: dict[str, float] = {}
    for p in items:
        for k, v in (p.categories or {}).items():
            cats[k] = cats.get(k, 0) + v
    return Side(sum(p.rows for p in items), sum(p.nulls for p in items), statuses,
                cells=np.sum([p.cells for p in items if p.cells is not None], axis=0) if numeric else None,
                categories=None if numeric else cats, weight=sum(p.weight for p in items),
                null_weight=sum(p.null_weight for p in items), squares=sum(p.squares for p in items))


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    feature_type: str
    status: Status
    metrics: tuple[dict[str, Any], ...]
    plot: dict[str, Any] = field(default_factory=dict)  # labels, reference and current shares

    def metric(self, name: str) -> dict[str, Any] | None:
        return next((m for m in self.metrics if m["metric"] == name), None)


def _row(metric: str, value: float, band: Any, enough: bool, **extra: Any) -> dict[str, Any]:
    status: Status = band.status(value) if enough else "insufficient_data"
    return {"metric": metric, "value": float(value), "warn": band.warn, "alert": band.alert, "status": status,
            "reference_value": extra.get("ref"), "current_value": extra.get("cur"),
            "p_value": extra.get("p"), "error_bound": extra.get("bound"), "detail": extra.get("detail")}


def _shares(ref: Side, cur: Side, th: Thresholds, min_rows: int) -> list[dict[str, Any]]:
    """Null share and each feature_status value's share, compared as signals of their own."""
    enough = ref.rows >= min_rows and cur.rows >= min_rows
    out = []
    for kind, r, c in [("null", ref.null_weight, cur.null_weight)] + [
            (s, ref.statuses.get(s, 0), cur.statuses.get(s, 0)) for s in sorted(set(ref.statuses) | set(cur.statuses))]:
        rs, cs = (r / ref.weight if ref.weight else 0.0), (c / cur.weight if cur.weight else 0.0)
        out.append(_row(f"share:{kind}", abs(cs - rs), th.share, enough, ref=rs, cur=cs))
    return out


def assess_numeric(name: str, ref: Side, cur: Side, cuts: list[float], psi_cuts: list[float],
                   th: Thresholds, d: Defaults) -> FeatureResult:
    assert ref.cells is not None and cur.cells is not None
    enough = ref.present >= d.min_rows and cur.present >= d.min_rows
    rb, cb = M.psi_bins(ref.cells, cuts, psi_cuts), M.psi_bins(cur.cells, cuts, psi_cuts)
    dstat, bound = M.ks(ref.cells, cur.cells)
    rows = [_row("psi", M.psi(rb, cb, d.epsilon), th.psi, enough),
            _row("ks", dstat, th.ks, enough, p=M.ks_pvalue(dstat, ref.effective, cur.effective), bound=bound),
            *_shares(ref, cur, th, d.min_rows)]
    edges = [f"< {psi_cuts[0]:.4g}"] + [f"[{a:.4g}, {b:.4g})" for a, b in zip(psi_cuts, psi_cuts[1:], strict=False)] \
        + [f">= {psi_cuts[-1]:.4g}"]
    plot = {"labels": edges, "reference": M.shares(rb).tolist(), "current": M.shares(cb).tolist()}
    return FeatureResult(name, "numeric", _worst(rows), tuple(rows), plot)


def assess_categorical(name: str, ftype: str, ref: Side, cur: Side, th: Thresholds, d: Defaults) -> FeatureResult:
    assert ref.categories is not None and cur.categories is not None
    enough = ref.present >= d.min_rows and cur.present >= d.min_rows
    p = M.pool(dict(ref.categories), dict(cur.categories), d.rare_share, d.max_categories, tail=TAIL)
    rows = [_row("js", M.js_distance(p.ref, p.cur), th.js, enough),
            _row("psi", M.psi(p.ref, p.cur, d.epsilon), th.psi, enough),
            _row("unseen", p.unseen_share, th.unseen, enough, detail=f"{p.unseen_count} categories"),
            *_shares(ref, cur, th, d.min_rows)]
    plot = {"labels": list(p.categories), "reference": M.shares(p.ref).tolist(), "current": M.shares(p.cur).tolist()}
    return FeatureResult(name, ftype, _worst(rows), tuple(rows), plot)


def _worst(rows: list[dict[str, Any]]) -> Status:
    worst: Status = "ok"
    for r in rows:
        if SEVERITY[r["status"]] > SEVERITY[worst]:
            worst = r["status"]
    return worst


def sort_by_severity(results: Iterable[FeatureResult]) -> list[FeatureResult]:
    """Alerts first, then warnings, then the rest; within a status the largest PSI first."""
    def key(r: FeatureResult) -> tuple[int, float, str]:
        psi = r.metric("psi")
        return (-SEVERITY[r.status], -(psi["value"] if psi else 0.0), r.feature)
    return sorted(results, key=key)
