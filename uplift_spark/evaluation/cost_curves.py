"""Multi-armed cost curves: the path of the multiple-choice knapsack LP relaxation (pure NumPy).

Why this path: with at most one arm per customer and a spend limit, the LP relaxation
max Σ r_ik x_ik s.t. Σ_k x_ik ≤ 1, Σ_ik c_ik x_ik ≤ B is solved for *every* B at once by taking, per
customer, the upper-left convex hull of the points (cost, predicted reward) of its arms (with (0, 0) =
no treatment), cutting it into segments (arm j → arm k: Δcost, Δreward) and taking segments in order of
Δreward/Δcost, the last one fractionally (Sverdrup, Wu, Athey, Wager 2023; R package ``maq``). Hull
segments of one customer have decreasing ratios, so the greedy order never takes a later segment of a
customer before an earlier one. The allocation uses *predicted* rewards; the curve's value Q(B) uses the
held-out AIPW gains of the same segments, so it is an honest estimate of what that allocation earns.

Only segments with a positive predicted reward increment are on the path: it ends at the spend where
every customer has the arm of largest predicted reward (when that reward is positive).

Global order: ratio descending, then the customer's tie key ascending (an integer hash of the id), so
the order is total and the same on any partitioning. A threshold (ratio λ, tie t, fraction f) describes
the allocation at one spend: segments before (λ, t) are taken fully, the one at (λ, t) a fraction f.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

ALL = (-np.inf, np.iinfo(np.int64).max, 1.0)  # threshold past the last segment: everything taken


def hull_segments(rewards: np.ndarray, costs: np.ndarray) -> Tuple[np.ndarray, ...]:
    """Per customer up to K segments of the upper-left hull of {(0, 0)} ∪ {(c_ik, r_ik)}.

    rewards, costs: n × K (treatment arms; −inf reward = not available). Returns (from_arm, to_arm,
    dcost, dreward, ratio), each n × K; unused slots have to_arm −1 and dreward 0. Arm indexes are
    1..K (0 = no treatment). Vectorized gift wrapping: from the current point, the next is the arm with
    the largest Δr/Δc among those with Δr > 0 and Δc ≥ 0 (Δc = 0 first: an infinite ratio); collinear
    ties go to the costlier arm, which drops the middle point (the same LP).
    """
    r = np.asarray(rewards, dtype=float)
    c = np.broadcast_to(np.asarray(costs, dtype=float), r.shape)
    n, k_arms = r.shape
    cur_c, cur_r, cur_a = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    out_from = np.zeros((n, k_arms), dtype=np.int64)
    out_to = np.full((n, k_arms), -1, dtype=np.int64)
    out_dc, out_dr = np.zeros((n, k_arms)), np.zeros((n, k_arms))
    out_ratio = np.full((n, k_arms), np.nan)
    active = np.ones(n, dtype=bool)
    for s in range(k_arms):
        dc = c - cur_c[:, None]
        dr = r - cur_r[:, None]
        ok = (dr > 0) & (dc >= 0) & np.isfinite(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dc > 0, dr / np.where(dc > 0, dc, 1.0), np.inf)
        ratio = np.where(ok, ratio, -np.inf)
        best = ratio.max(axis=1)
        # among arms at the best ratio: the costliest (then the larger reward, then the first)
        at_best = ok & (ratio == best[:, None])
        key = np.where(at_best, c, -np.inf)
        cmax = key.max(axis=1)
        pick_mask = at_best & (c == cmax[:, None])
        key2 = np.where(pick_mask, r, -np.inf)
        pick = np.argmax(key2, axis=1)
        has = active & np.isfinite(best) & ok.any(axis=1)
        rows = np.nonzero(has)[0]
        p = pick[rows]
        out_from[rows, s] = cur_a[rows]
        out_to[rows, s] = p + 1
        out_dc[rows, s] = dc[rows, p]
        out_dr[rows, s] = dr[rows, p]
        out_ratio[rows, s] = best[rows]
        cur_c[rows], cur_r[rows], cur_a[rows] = c[rows, p], r[rows, p], p + 1
        active = has
        if not active.any():
            break
    return out_from, out_to, out_dc, out_dr, out_ratio


def crossing(ratio: np.ndarray, tie: np.ndarray, dcost: np.ndarray, targets: Sequence[float]):
    """Thresholds (λ_j, t_j, f_j) at total spends ``targets`` from segments given as flat arrays.

    Segments are taken in (ratio desc, tie asc) order; the one whose cumulative cost first exceeds the
    target is taken fractionally. A target at or beyond the total cost takes everything (:data:`ALL`).
    """
    ratio, tie, dcost = np.asarray(ratio, dtype=float), np.asarray(tie, dtype=np.int64), np.asarray(dcost, dtype=float)
    order = np.lexsort((tie, -ratio))
    r, t, d = ratio[order], tie[order], dcost[order]
    cum = np.cumsum(d)
    before = cum - d
    out = []
    for target in targets:
        j = int(np.searchsorted(cum, target, side="right"))  # first segment with cum > target
        if j >= len(cum):
            out.append(ALL)
            continue
        out.append((float(r[j]), int(t[j]), float((target - before[j]) / d[j])))
    return out


def taken(ratio: np.ndarray, tie: np.ndarray, threshold) -> np.ndarray:
    """Fraction of each segment taken at ``threshold`` (same shape as ``ratio``; NaN ratio = no segment)."""
    lam, t, f = threshold
    ratio = np.asarray(ratio, dtype=float)
    tie = np.broadcast_to(np.asarray(tie, dtype=np.int64), ratio.shape)
    valid = ~np.isnan(ratio)
    if lam == -np.inf:
        return valid.astype(float)
    full = valid & ((ratio > lam) | ((ratio == lam) & (tie < t)))
    part = valid & (ratio == lam) & (tie == t)
    return np.where(full, 1.0, np.where(part, f, 0.0))


def allocation(from_arm, to_arm, frac: np.ndarray, k_arms: int) -> np.ndarray:
    """n × (K+1) allocation π from taken segment fractions: each taken fraction moves mass j → k."""
    n = frac.shape[0]
    pi = np.zeros((n, k_arms + 1))
    pi[:, 0] = 1.0
    rows = np.arange(n)
    for s in range(frac.shape[1]):
        f = frac[:, s]
        use = f > 0
        if not use.any():
            continue
        r = rows[use]
        pi[r, from_arm[use, s]] -= f[use]
        pi[r, to_arm[use, s]] += f[use]
    return pi


def spend_grid(max_spend: float, points: int) -> np.ndarray:
    """Spends per customer from 0 to ``max_spend`` (``points`` values)."""
    return np.linspace(0.0, max(0.0, float(max_spend)), int(points))


def trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    """Weights a_j with Σ a_j Q_j = trapezoid area under Q over ``grid`` (linear in Q: a paired SE)."""
    g = np.asarray(grid, dtype=float)
    a = np.zeros(len(g))
    if len(g) < 2:
        return a
    d = np.diff(g)
    a[:-1] += d / 2.0
    a[1:] += d / 2.0
    return a


def local_curve(rewards: np.ndarray, costs: np.ndarray, gains: np.ndarray, tie: np.ndarray, grid: np.ndarray):
    """Reference path on one machine: per grid spend (per customer), the allocation π (list of n × (K+1))
    and per-customer gain scores Σ_k π_ik gain_ik (n × J). ``gains``: n × K evaluated gains."""
    n, k_arms = rewards.shape
    fa, ta, dc, dr, ratio = hull_segments(rewards, costs)
    valid = ~np.isnan(ratio)
    tie_b = np.broadcast_to(np.asarray(tie, dtype=np.int64)[:, None], ratio.shape)
    thresholds = crossing(ratio[valid], tie_b[valid], dc[valid], [b * n for b in grid])
    allocs, scores = [], np.zeros((n, len(grid)))
    g_full = np.hstack([np.zeros((n, 1)), np.asarray(gains, dtype=float)])
    for j, th in enumerate(thresholds):
        pi = allocation(fa, ta, taken(ratio, tie_b, th), k_arms)
        allocs.append(pi)
        scores[:, j] = (pi * g_full).sum(axis=1)
    return allocs, scores, thresholds


__all__ = ["hull_segments", "crossing", "taken", "allocation", "spend_grid", "trapezoid_weights", "local_curve",
           "ALL"]
