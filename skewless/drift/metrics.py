"""Drift metrics from histograms: PSI, the two-sample KS statistic and its p-value, Jensen-Shannon.

numpy only, no Spark: the inputs are the small counts `profile` brings back. Conventions (docs/drift.md):
- PSI = sum_i (c_i - r_i) * ln(c_i / r_i) over shares, an empty share taken as `epsilon` (no
  renormalisation); natural log.
- KS: D = max |F_cur - F_ref| evaluated at every cell boundary of the reference's quantile grid
  (exact there, ties included); the true D lies in [D, D + bound], bound = the largest share either
  side has strictly inside one grid interval. The p-value is the Kolmogorov law at
  D * (sqrt(n_eff) + 0.12 + 0.11 / sqrt(n_eff)), n_eff = n*m/(n+m) (Stephens' correction); with
  weighted rows, n and m are Kish's effective sizes (sum w)^2 / sum w^2.
- Jensen-Shannon: the distance (square root of the divergence), log base 2, so in [0, 1]; no smoothing
  (the mixture is never zero where either side has mass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OTHER = "__other__"


def shares(counts: np.ndarray) -> np.ndarray:
    total = float(counts.sum())
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def psi(ref: np.ndarray, cur: np.ndarray, epsilon: float) -> float:
    r = np.maximum(shares(np.asarray(ref, dtype=float)), epsilon)
    c = np.maximum(shares(np.asarray(cur, dtype=float)), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(ref_cells: np.ndarray, cur_cells: np.ndarray) -> tuple[float, float]:
    """(D at the cell boundaries, error bound) from counts over the ordered cells int0, pt1, int1, ...,
    ptK, intK (interior cells at even positions)."""
    r, c = shares(np.asarray(ref_cells, dtype=float)), shares(np.asarray(cur_cells, dtype=float))
    d = float(np.max(np.abs(np.cumsum(c) - np.cumsum(r)))) if len(r) else 0.0
    interior = np.maximum(r[0::2], c[0::2])
    return d, float(interior.max()) if len(interior) else 0.0


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 * sum_k (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam < 0.2:  # the series converges slowly here; the probability is 1 to 12 digits
        return 1.0
    k = np.arange(1, 101)
    return float(min(1.0, max(0.0, 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k * k * lam * lam)))))


def ks_pvalue(d: float, n: float, m: float) -> float:
    """n and m: each side's size, or its effective size (Kish) when rows are weighted."""
    if n <= 0 or m <= 0:
        return math.nan
    en = math.sqrt(n * m / (n + m))
    return kolmogorov_sf(d * (en + 0.12 + 0.11 / en))  # Stephens' correction: close to the exact law


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    p, q = shares(np.asarray(p_counts, dtype=float)), shares(np.asarray(q_counts, dtype=float))
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


@dataclass(frozen=True)
class Pooled:
    """Two categorical histograms over the same categories: the kept ones, then OTHER if any."""

    categories: tuple[str, ...]
    ref: np.ndarray
    cur: np.ndarray
    unseen_share: float    # share of the current rows whose category the reference never saw
    unseen_count: int      # how many distinct such categories


def pool(ref: dict[str, float], cur: dict[str, float], rare_share: float, max_categories: int,
         tail: str | None = None) -> Pooled:
    """Keep the reference's categories with at least `rare_share` of its rows, the `max_categories`
    most frequent (ties by name); pool the rest, and every category the reference never saw, into
    OTHER. `tail` names a bucket of already-summed categories (never 'unseen')."""
    total = sum(ref.values())
    ranked = sorted(((n, s) for s, n in ref.items() if s != tail), key=lambda x: (-x[0], x[1]))
    kept = [s for n, s in ranked if total and n / total >= rare_share][:max_categories]
    kept_set = set(kept)
    unseen = {s: n for s, n in cur.items() if s not in ref and s != tail}
    cur_total = sum(cur.values())
    ref_other = total - sum(ref[s] for s in kept)
    cur_other = cur_total - sum(cur.get(s, 0) for s in kept)
    cats = list(kept) + ([OTHER] if ref_other or cur_other else [])
    r = np.array([ref[s] for s in kept] + ([ref_other] if OTHER in cats else []), dtype=float)
    c = np.array([cur.get(s, 0) for s in kept] + ([cur_other] if OTHER in cats else []), dtype=float)
    assert kept_set.isdisjoint({OTHER})
    return Pooled(tuple(cats), r, c, sum(unseen.values()) / cur_total if cur_total else 0.0, len(unseen))


def psi_bins(cells: np.ndarray, cuts: list[float], psi_cuts: list[float]) -> np.ndarray:
    """Cell counts summed into the PSI's left-closed bins [c_k, c_k+1) (psi_cuts are among the cuts)."""
    left = [-math.inf] + [g for g in cuts for _ in (0, 1)]  # each cell's left point: int0, pt1, int1, ...
    idx = np.searchsorted(np.asarray(psi_cuts), np.asarray(left), side="right")
    out = np.zeros(len(psi_cuts) + 1)
    np.add.at(out, idx, np.asarray(cells, dtype=float))
    return out
