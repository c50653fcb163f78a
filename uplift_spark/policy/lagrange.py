"""Several linear business constraints at once: per-customer costs, capacities, contacts, group
fairness/coverage and aggregate guardrails, each with its own Lagrange multiplier.

Every constraint is linear in the choice x_ik ∈ {0, 1} (at most one arm per customer) and reads only
a few per-row quantities, so its use is a dot product with a small vector of per-candidate aggregates

    stats = [count per arm (K) | spend Σ c_ik (1) | treated per group (G) | Σ guardrail uplift u_oik (O)]

(budget: the spend; capacity of arm k: count_k; top_k: Σ counts; fairness of group g:
T_g/n_g − T/N ≤ gap and T/N − T_g/n_g ≤ gap; contact shares: s·T − T_g ≤ 0 / T_g − s·T ≤ 0; a
guardrail: −Σ u_o ≤ −min_total). With multipliers m ≥ 0 the prices P = mᵀA split into per-arm, per-cost,
per-group and per-guardrail parts, and the Lagrangian rule is "each customer takes
argmax_k V_ik − ν_k − λ·c_ik − π_g(i) + η·u_ik if > 0" — the one rule :mod:`policy.allocate` uses, with
per-customer instead of per-arm prices. The dual D(m) = Σ_i max(0, ·) + m·b = value − m·use + m·b comes
from the same aggregates, so every evaluated candidate gives a dual bound (≥ the LP optimum).

Search (:class:`MultiSolver`):

1. on driver rows (the whole population when small, else a bounded seeded sample with limits scaled
   by its share) the entropy-smoothed dual Σ τ·log(1 + Σ_k e^{s_ik/τ}) + m·b is minimized with
   L-BFGS-B while τ shrinks: a smooth convex problem whose minimizer tends to the LP dual;
2. exact passes over the rows (NumPy, or one ``mapInPandas`` aggregation per pass on Spark, only
   M × S partial sums per partition reach the driver): every still-violated constraint's multiplier is
   bracketed and refined on a grid with the others fixed (its use is monotone in its own multiplier:
   D is convex), until one candidate satisfies every constraint exactly;
3. one pass over the segment between that feasible point and the dual point, and one over the tie-hash
   fill between the best feasible point on it and the next one (the marginal customers switch in
   ``tie_u`` order), keeping the best allocation that satisfies every constraint.

An infeasible combination shows as a dual that decreases without bound: a dual value below zero
(every constraint holds at x = 0 except a positive guardrail floor) certifies it, and the constraints
with the largest multipliers along that ray are the ones in conflict (:class:`PolicyError` names them).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PolicyError
from ..logs import get_logger

log = get_logger("policy")

_CELLS = 1 << 20
KEY = "row_key"  # the row identity column of a Spark frame given to the exact fill


@dataclasses.dataclass(frozen=True)
class Constraint:
    """use = coef · stats ≤ limit. ``kind`` is the rule family named in reasons (budget, capacity,
    top_k, fairness, guardrail)."""

    name: str
    kind: str
    coef: np.ndarray
    limit: float


@dataclasses.dataclass(frozen=True)
class Layout:
    """Sizes of the stats vector: K arms, G groups, O aggregate guardrails."""

    k: int
    g: int = 0
    o: int = 0

    @property
    def size(self) -> int:
        return self.k + 1 + self.g + self.o

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size)

    def count(self, k: int) -> int:
        return k

    @property
    def spend(self) -> int:
        return self.k

    def group(self, g: int) -> int:
        return self.k + 1 + g

    def guard(self, o: int) -> int:
        return self.k + 1 + self.g + o


class Rows:
    """Rows held in NumPy: values n×K (−inf = not a candidate), costs n×K, group codes n (0..G−1),
    guardrail uplifts n×K×O, tie hash n."""

    def __init__(self, values, costs=None, groups=None, guards=None, tie_u=None, layout: Optional[Layout] = None,
                 keys=None):
        self.values = np.asarray(values, dtype=float)
        n, k = self.values.shape
        self.layout = layout or Layout(k)
        self.costs = np.zeros((n, k)) if costs is None else np.nan_to_num(np.asarray(costs, dtype=float))
        self.groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        o = self.layout.o
        self.guards = np.zeros((n, k, o)) if guards is None else np.nan_to_num(np.asarray(guards, dtype=float))
        self.tie_u = np.linspace(0, 1, n, endpoint=False) if tie_u is None else np.asarray(tie_u, dtype=float)
        # row identity for the exact fill's per-row choices (the customer id on Spark, the index here)
        self.keys = np.arange(n) if keys is None else np.asarray(keys, dtype=object)

    def __len__(self) -> int:
        return len(self.tie_u)

    def take(self, idx) -> "Rows":
        return Rows(self.values[idx], self.costs[idx], self.groups[idx], self.guards[idx], self.tie_u[idx], self.layout,
                    self.keys[idx])

    @staticmethod
    def from_pandas(pdf, layout: Layout) -> "Rows":
        k, o = layout.k, layout.o
        vals = pdf[[f"v_{j}" for j in range(k)]].to_numpy(dtype=float, na_value=np.nan)
        vals = np.where(np.isnan(vals), -np.inf, vals)
        costs = pdf[[f"c_{j}" for j in range(k)]].to_numpy(dtype=float, na_value=0.0)
        groups = pdf["grp"].to_numpy(dtype=np.int64) if layout.g else None
        guards = None
        if o:
            guards = np.stack([pdf[[f"u{q}_{j}" for j in range(k)]].to_numpy(dtype=float, na_value=0.0)
                               for q in range(o)], axis=2)
        keys = pdf[KEY].to_numpy(dtype=object) if KEY in pdf.columns else None
        return Rows(vals, costs, groups, guards, pdf["tie_u"].to_numpy(dtype=float), layout, keys)

    def evaluate(self, cands: "Cands") -> Tuple[np.ndarray, np.ndarray]:
        return accumulate(self, cands)


def row_columns(layout: Layout) -> List[str]:
    """The narrow frame's columns a Spark pass reads."""
    cols = [f"v_{j}" for j in range(layout.k)] + [f"c_{j}" for j in range(layout.k)]
    if layout.g:
        cols.append("grp")
    cols += [f"u{q}_{j}" for q in range(layout.o) for j in range(layout.k)]
    return cols + ["tie_u"]


@dataclasses.dataclass(frozen=True)
class Cands:
    """M candidates: prices at the feasible point ``hi`` and the lower point ``lo`` (M×S each) and the
    tie-hash threshold θ below which a marginal row takes its ``lo`` choice."""

    hi: np.ndarray
    lo: np.ndarray
    theta: np.ndarray

    @staticmethod
    def plain(prices: np.ndarray) -> "Cands":
        prices = np.atleast_2d(prices)
        return Cands(prices, prices, np.zeros(len(prices)))


def _pick(rows: Rows, prices: np.ndarray) -> np.ndarray:
    """Arm index per (candidate, row): argmax_k score if > 0 else −1 (ties: first arm). prices M×S."""
    lay = rows.layout
    k = lay.k
    s = rows.values[None, :, :] - prices[:, None, :k] - prices[:, None, k, None] * rows.costs[None, :, :]
    if lay.g:
        s = s - prices[:, lay.k + 1:lay.k + 1 + lay.g][:, rows.groups][:, :, None]
    if lay.o:
        s = s - np.einsum("mq,nkq->mnk", prices[:, lay.k + 1 + lay.g:], rows.guards)
    best = s.max(axis=2)
    idx = s.argmax(axis=2)
    return np.where(best > 0, idx, -1)


def choose(rows: Rows, cands: Cands) -> np.ndarray:
    """The final rule (M×n arm index, −1 = none): the choice at ``hi``, switched to the choice at ``lo``
    for marginal rows whose tie hash is below θ."""
    a_hi = _pick(rows, cands.hi)
    if not np.any(cands.theta > 0):
        return a_hi
    a_lo = _pick(rows, cands.lo)
    switch = (a_lo != a_hi) & (rows.tie_u[None, :] < cands.theta[:, None])
    return np.where(switch, a_lo, a_hi)


def _stats(rows: Rows, act: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    lay = rows.layout
    m, n = act.shape
    ch = act >= 0
    idx = np.maximum(act, 0)
    r = np.arange(n)[None, :]
    out = np.zeros((m, lay.size))
    for k in range(lay.k):
        out[:, k] = (act == k).sum(axis=1)
    out[:, lay.spend] = np.where(ch, rows.costs[r, idx], 0.0).sum(axis=1)
    for g in range(lay.g):
        out[:, lay.group(g)] = (ch & (rows.groups[None, :] == g)).sum(axis=1)
    for q in range(lay.o):
        out[:, lay.guard(q)] = np.where(ch, rows.guards[r, idx, q], 0.0).sum(axis=1)
    value = np.where(ch, rows.values[r, idx], 0.0).sum(axis=1)
    return out, value


def accumulate(rows: Rows, cands: Cands) -> Tuple[np.ndarray, np.ndarray]:
    """(stats M×S, value M) of every candidate over ``rows``, in row blocks of bounded memory."""
    m = len(cands.theta)
    stats, value = np.zeros((m, rows.layout.size)), np.zeros(m)
    chunk = max(64, _CELLS // max(1, m * rows.layout.k))
    for start in range(0, len(rows), chunk):
        part = rows.take(slice(start, start + chunk))
        st, v = _stats(part, choose(part, cands))
        stats += st
        value += v
    return stats, value


def evaluate_frame(frame, cands: Cands, layout: Layout) -> Tuple[np.ndarray, np.ndarray]:
    """One Spark aggregation pass: each partition reduces its rows to M×S partial sums (mapInPandas);
    rows that are no candidate for any arm are dropped in Spark first."""
    from pyspark.sql import functions as F

    hi, lo, th = cands.hi.tolist(), cands.lo.tolist(), cands.theta.tolist()
    m, size = len(th), layout.size

    def partial(batches):
        import pandas as pd

        c = Cands(np.array(hi, dtype=float), np.array(lo, dtype=float), np.array(th, dtype=float))
        stats, value, seen = np.zeros((m, size)), np.zeros(m), False
        for pdf in batches:
            if len(pdf):
                seen = True
                st, v = accumulate(Rows.from_pandas(pdf, layout), c)
                stats += st
                value += v
        if seen:
            yield pd.DataFrame({"s": [stats.ravel().tolist()], "v": [value.tolist()]})

    keep = None
    for j in range(layout.k):
        cond = F.col(f"v_{j}").isNotNull()
        keep = cond if keep is None else keep | cond
    out = frame.select(*row_columns(layout)).where(keep).mapInPandas(partial, "s array<double>, v array<double>")
    stats, value = np.zeros((m, size)), np.zeros(m)
    for r in out.collect():
        stats += np.asarray(r["s"], dtype=float).reshape(m, size)
        value += np.asarray(r["v"], dtype=float)
    return stats, value


# --------------------------------------------------------------------------------- exact fill (margins)
def _margins(rows: Rows, prices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(arm index at ``prices`` (−1 = none), margin) per row. The margin is the best reduced score
    minus the runner-up, "none" (score 0) included: a row with a large margin keeps its choice for any
    multipliers near ``prices``; rows with no candidate arm get an infinite margin."""
    s = _scores_one(rows, prices)
    z = np.concatenate([np.zeros((len(rows), 1)), s], axis=1)
    z = np.where(np.isnan(z), -np.inf, z)
    top = np.partition(z, -2, axis=1)[:, -2:] if z.shape[1] >= 2 else np.zeros((len(rows), 2))
    with np.errstate(invalid="ignore"):
        margin = top[:, 1] - top[:, 0]
    margin = np.where(np.isfinite(margin), margin, np.inf)
    act = np.where(s.max(axis=1, initial=-np.inf) > 0, np.argmax(s, axis=1), -1) if s.shape[1] else np.full(len(rows), -1)
    return act, margin


def scan_rows(rows: Rows, prices: np.ndarray, deltas: np.ndarray):
    """Per threshold δ: (stats, value) of the rows whose margin is ≥ δ (their choice is fixed) and
    the number of rows below it (the marginal rows the exact fill decides)."""
    d = len(deltas)
    stats, value, n_marg = np.zeros((d, rows.layout.size)), np.zeros(d), np.zeros(d)
    chunk = max(64, _CELLS // max(1, d * rows.layout.k))
    for start in range(0, len(rows), chunk):
        part = rows.take(slice(start, start + chunk))
        act, margin = _margins(part, prices)
        marg = margin[None, :] < deltas[:, None]
        st, v = _stats(part, np.where(marg, -1, act[None, :]))
        stats += st
        value += v
        n_marg += marg.sum(axis=1)
    return stats, value, n_marg


def scan_frame(frame, prices: np.ndarray, deltas: np.ndarray, layout: Layout):
    """:func:`scan_rows` as one Spark aggregation pass (D × S partial sums per partition)."""
    pr, dl = prices.tolist(), deltas.tolist()
    d, size = len(dl), layout.size

    def partial(batches):
        import pandas as pd

        stats, value, n_marg, seen = np.zeros((d, size)), np.zeros(d), np.zeros(d), False
        for pdf in batches:
            if len(pdf):
                seen = True
                st, v, nm = scan_rows(Rows.from_pandas(pdf, layout), np.array(pr), np.array(dl))
                stats += st
                value += v
                n_marg += nm
        if seen:
            yield pd.DataFrame({"s": [stats.ravel().tolist()], "v": [value.tolist()], "n": [n_marg.tolist()]})

    out = _candidates(frame, layout).select(*row_columns(layout)).mapInPandas(
        partial, "s array<double>, v array<double>, n array<double>")
    stats, value, n_marg = np.zeros((d, size)), np.zeros(d), np.zeros(d)
    for r in out.collect():
        stats += np.asarray(r["s"], dtype=float).reshape(d, size)
        value += np.asarray(r["v"], dtype=float)
        n_marg += np.asarray(r["n"], dtype=float)
    return stats, value, n_marg


def marginal_frame(frame, prices: np.ndarray, delta: float, layout: Layout) -> Rows:
    """The rows whose margin is below δ, brought to the driver (their number was counted by the
    scan and is bounded by ``exact_rows``: never a population-sized collect)."""
    pr = prices.tolist()
    cols = row_columns(layout) + [KEY]
    narrow = _candidates(frame, layout).select(*cols)

    def keep(batches):
        for pdf in batches:
            if len(pdf):
                _, margin = _margins(Rows.from_pandas(pdf, layout), np.array(pr))
                yield pdf[margin < delta]

    pdf = narrow.mapInPandas(keep, narrow.schema).toPandas()
    pdf = pdf.sort_values("tie_u", kind="mergesort").reset_index(drop=True)  # partition-order free
    return Rows.from_pandas(pdf, layout)


def _candidates(frame, layout: Layout):
    from pyspark.sql import functions as F

    keep = None
    for j in range(layout.k):
        cond = F.col(f"v_{j}").isNotNull()
        keep = cond if keep is None else keep | cond
    return frame.where(keep)


def assign(rows: Rows, alloc: "MultiAllocation") -> np.ndarray:
    """The final choice per row (−1 = none): the price rule, except the rows the exact fill decided."""
    act = choose(rows, alloc.cands)[0]
    if alloc.override:
        import pandas as pd

        ov = pd.Series(rows.keys).map(alloc.override).to_numpy(dtype=float, na_value=np.nan)
        act = np.where(np.isnan(ov), act, np.nan_to_num(ov, nan=-1.0)).astype(np.int64)
    return act


@dataclasses.dataclass
class MultiAllocation:
    """Result: prices of the final rule, multipliers per constraint (original units), use per
    constraint, value and the dual bound (value ≥ (1 − dual_gap)·LP optimum)."""

    hi: np.ndarray
    lo: np.ndarray
    theta: float
    multipliers: Dict[str, float]
    stats: np.ndarray
    value: float
    used: Dict[str, float]
    passes: int
    dual_bound: Optional[float] = None
    sample_passes: int = 0
    mult: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    # exact fill: the choice (arm index, −1 = none) of each marginal row by key; others follow the prices
    override: Dict[object, int] = dataclasses.field(default_factory=dict)
    exact_rows: int = 0

    @property
    def dual_gap(self) -> Optional[float]:
        if self.dual_bound is None or not np.isfinite(self.dual_bound):
            return None
        return float(max(0.0, self.dual_bound - self.value) / max(abs(self.dual_bound), 1e-12))

    @property
    def cands(self) -> Cands:
        return Cands(self.hi[None, :], self.lo[None, :], np.array([self.theta]))


def _soft_terms(rows: Rows, prices: np.ndarray, tau: float):
    """Smoothed Σ_i max(0, max_k s_ik) and the soft stats Σ π_ik·(per-row coefficients)."""
    lay = rows.layout
    a = _scores_one(rows, prices)  # n×K
    z = np.concatenate([np.zeros((len(rows), 1)), a / tau], axis=1)
    z = np.where(np.isfinite(z), z, -np.inf)
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    tot = e.sum(axis=1, keepdims=True)
    f = float(tau * (zmax[:, 0] + np.log(tot[:, 0])).sum())
    pi = e[:, 1:] / tot
    st = np.zeros(lay.size)
    st[:lay.k] = pi.sum(axis=0)
    st[lay.spend] = (pi * rows.costs).sum()
    treated = pi.sum(axis=1)
    for g in range(lay.g):
        st[lay.group(g)] = treated[rows.groups == g].sum()
    for q in range(lay.o):
        st[lay.guard(q)] = (pi * rows.guards[:, :, q]).sum()
    return f, st


def _scores_one(rows: Rows, prices: np.ndarray) -> np.ndarray:
    lay = rows.layout
    s = rows.values - prices[None, :lay.k] - prices[lay.k] * rows.costs
    if lay.g:
        s = s - prices[lay.k + 1:lay.k + 1 + lay.g][rows.groups][:, None]
    if lay.o:
        s = s - rows.guards @ prices[lay.k + 1 + lay.g:]
    return s


class MultiSolver:
    """See the module docstring. ``rows``: :class:`Rows` (NumPy) or a Spark DataFrame with
    :func:`row_columns`; ``constraints``: limits already net of exploration."""

    def __init__(self, rows, constraints: Sequence[Constraint], layout: Layout, grid_points: int = 32,
                 max_passes: int = 40, gap_tol: float = 1e-4, scale_rows: Optional[Rows] = None,
                 scale_share: float = 1.0, seed: int = 0, exact_rows: int = 0, exact_seconds: float = 2.0):
        self.seed = int(seed)
        self.exact_rows = int(exact_rows)
        self.exact_seconds = float(exact_seconds)
        self.rows = rows
        self.layout = layout
        self.cons = list(constraints)
        self.grid = max(8, int(grid_points))
        self.max_passes = int(max_passes)
        self.gap_tol = float(gap_tol)
        self.passes = 0
        self.best_dual = float("inf")
        self.primal = None  # (value, hi, lo, theta, stats, mult)
        # normalize each constraint by the larger of |limit| and its use if every candidate were taken
        # (measured on driver rows): multipliers of budget, shares and guardrails become comparable
        ref = scale_rows if scale_rows is not None else (rows if isinstance(rows, Rows) else None)
        self.scale = np.ones(len(self.cons))
        if ref is not None and len(ref):
            worst = self._worst_use(ref) / max(scale_share, 1e-12)
            for j, c in enumerate(self.cons):
                self.scale[j] = max(abs(c.limit), worst[j] * 1e-2, 1e-12)
        self.A = np.array([c.coef / s for c, s in zip(self.cons, self.scale)]).reshape(len(self.cons), layout.size)
        self.b = np.array([c.limit / s for c, s in zip(self.cons, self.scale)])

    # --------------------------------------------------------------------------------- building blocks
    def _worst_use(self, rows: Rows) -> np.ndarray:
        """Per constraint: Σ_i max_k |a_jik| over candidate rows (the scale of its use)."""
        lay = self.layout
        cand = np.isfinite(rows.values)
        out = np.zeros(len(self.cons))
        for j, c in enumerate(self.cons):
            per = np.abs(c.coef[:lay.k])[None, :] + abs(c.coef[lay.spend]) * np.abs(rows.costs)
            if lay.g:
                per = per + np.abs(c.coef[lay.k + 1:lay.k + 1 + lay.g])[rows.groups][:, None]
            if lay.o:
                per = per + np.abs(rows.guards) @ np.abs(c.coef[lay.k + 1 + lay.g:])
            out[j] = np.where(cand, per, 0.0).max(axis=1, initial=0.0).sum()
        return out

    def prices(self, mult: np.ndarray) -> np.ndarray:
        return np.asarray(mult, dtype=float) @ self.A

    def use(self, stats: np.ndarray) -> np.ndarray:
        return np.atleast_2d(stats) @ self.A.T

    def feasible(self, stats: np.ndarray) -> np.ndarray:
        u = self.use(stats)
        return np.all(u <= self.b[None, :] + 1e-9 * np.maximum(1.0, np.abs(self.b))[None, :], axis=1)

    def dual(self, mults: np.ndarray, stats: np.ndarray, value: np.ndarray) -> np.ndarray:
        return value - (self.use(stats) * mults).sum(axis=1) + mults @ self.b

    def _eval(self, cands: Cands, mults: Optional[np.ndarray] = None, fill_mult: Optional[np.ndarray] = None):
        self.passes += 1
        started = time.perf_counter()
        if isinstance(self.rows, Rows):
            stats, value = accumulate(self.rows, cands)
        else:
            stats, value = evaluate_frame(self.rows, cands, self.layout)
        log.info("policy constraints pass %d (%s): %d candidates, %.1f s", self.passes,
                 "driver" if isinstance(self.rows, Rows) else "population", len(cands.theta),
                 time.perf_counter() - started)
        plain = cands.theta == 0
        if mults is not None:
            d = self.dual(mults, stats, value)
            self.best_dual = min(self.best_dual, float(d.min()))
        ok = self.feasible(stats)
        for i in np.nonzero(ok)[0]:
            mult = mults[i] if mults is not None else fill_mult
            if self.primal is None or value[i] > self.primal[0] + 1e-12 * max(1.0, abs(value[i])):
                self.primal = (float(value[i]), cands.hi[i].copy(), cands.lo[i].copy(), float(cands.theta[i]),
                               stats[i].copy(), np.array(mult, dtype=float), {})
        del plain
        return stats, value, ok

    # --------------------------------------------------------------------------------- 1. smoothed dual
    def soft_dual(self, rows: Rows, start: Optional[np.ndarray] = None, share: float = 1.0) -> np.ndarray:
        """Minimize the entropy-smoothed dual on driver rows (limits × ``share``) while τ shrinks."""
        from scipy.optimize import minimize

        j_n = len(self.cons)
        if j_n == 0 or len(rows) == 0:
            return np.zeros(j_n)
        b = self.b * share
        pos = rows.values.max(axis=1)
        pos = pos[np.isfinite(pos) & (pos > 0)]
        vscale = float(np.mean(pos)) if len(pos) else 1.0
        m = np.zeros(j_n) if start is None else np.asarray(start, dtype=float).copy()
        for rel in (0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4):
            tau = rel * vscale

            def fun(x):
                f, st = _soft_terms(rows, self.prices(x), tau)
                return f + x @ b, b - self.A @ st

            res = minimize(fun, m, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * j_n,
                           options={"maxiter": 300, "gtol": 1e-10, "ftol": 1e-14})
            m = np.maximum(res.x, 0.0)
        return m

    # --------------------------------------------------------------------------------- 2./3. exact passes
    def _bounds(self, rows_hint: Optional[Rows], vmax: float) -> np.ndarray:
        """Per constraint: a multiplier increase that surely prices out every row it touches."""
        out = np.full(len(self.cons), 1e6 * max(vmax, 1.0))
        if rows_hint is None or not len(rows_hint):
            return out
        lay = self.layout
        for j in range(len(self.cons)):
            a = self.A[j]
            per = a[None, :lay.k] + a[lay.spend] * rows_hint.costs
            if lay.g:
                per = per + a[lay.k + 1:lay.k + 1 + lay.g][rows_hint.groups][:, None]
            if lay.o:
                per = per + rows_hint.guards @ a[lay.k + 1 + lay.g:]
            p = per[np.isfinite(rows_hint.values) & (per > 0)]
            if len(p):
                out[j] = 4.0 * max(vmax, 1e-12) / max(float(p.min()), 1e-15)
        return out

    def solve(self, vmax: float, start: Optional[np.ndarray] = None, rows_hint: Optional[Rows] = None) -> MultiAllocation:
        """Exact passes from ``start`` (multipliers, normalized units; the soft dual on ``self.rows``
        when None and they are driver rows).

        From the dual point m0 the rule is moved along a few price directions — a uniform price shift
        on every arm (fewer contacts everywhere) and, per constraint violated at m0, its own multiplier
        (monotone in its use) — all evaluated in one pass on geometric steps; the direction whose
        first feasible step gives the most value is refined on a linear grid between its last
        infeasible and first feasible steps, and the tie-hash fill then moves the marginal customers
        from the feasible step towards the infeasible one and towards m0."""
        j_n = len(self.cons)
        if start is None:
            start = self.soft_dual(self.rows) if isinstance(self.rows, Rows) else np.zeros(j_n)
        m0 = np.maximum(np.asarray(start, dtype=float), 0.0)
        if rows_hint is None and isinstance(self.rows, Rows):
            rows_hint = self.rows
        exact = None
        if self.exact_rows > 0 and j_n:
            exact = self.exact_fill(m0, self._vscale(rows_hint, vmax))
            if exact is not None and (exact.dual_gap or 0.0) <= 1e-2:
                return exact
        upper = self._bounds(rows_hint, vmax)
        p0 = self.prices(m0)
        stats, value, ok = self._eval(Cands.plain(p0), m0[None, :])
        if j_n and not ok[0]:
            viol = np.nonzero(self.use(stats[0])[0] > self.b + 1e-9 * np.maximum(1.0, np.abs(self.b)))[0]
            shift = np.zeros(self.layout.size)
            shift[:self.layout.k] = 1.0
            bonus = float(np.abs(p0).sum()) if rows_hint is None else 0.0
            dirs = [(shift, None, 4.0 * max(vmax, 1e-12) + bonus + float(np.abs(p0[self.layout.k + 1:]).sum()))]
            dirs += [(self.A[j], int(j), float(upper[j])) for j in viol]
            ranges = [(0.0, top) for _, _, top in dirs]
            best = None
            # ties at the dual point: which marginal customers to drop is a choice the directions alone
            # make badly when several constraints bind; seeded perturbations of m0 at several radii try
            # other tie-breaks in the first pass (their feasible points are primal candidates too)
            rng = np.random.default_rng(self.seed)
            radii = np.geomspace(1e-4, 0.3, 8)
            scale = np.maximum(m0, float(m0.mean()) if m0.any() else 1.0)
            local = np.array([np.maximum(m0 + r * scale * rng.uniform(-1.0, 1.0, j_n), 0.0)
                              for r in radii for _ in range(self.grid // 2)])
            first = True
            for _ in range(self.max_passes):
                mults, prices, owner, steps = [], [], [], []
                if first:
                    for mm in local:
                        mults.append(mm)
                        prices.append(self.prices(mm))
                        owner.append(-1)
                        steps.append(0.0)
                    first = False
                for d, ((vec, j, _top), (lo, hi)) in enumerate(zip(dirs, ranges)):
                    if hi <= lo:
                        continue
                    grid = (np.geomspace(max(hi * 1e-9, 1e-15), hi, self.grid) if lo == 0.0
                            else np.linspace(lo, hi, self.grid + 1)[1:])
                    for t in grid:
                        prices.append(p0 + t * vec)
                        mm = m0.copy()
                        if j is not None:
                            mm[j] += t
                        mults.append(mm)
                        owner.append(d)
                        steps.append(t)
                if not prices:
                    break
                mults, owner, steps = np.array(mults), np.array(owner), np.array(steps)
                coord = np.array([d < 0 or dirs[d][1] is not None for d in owner])
                st, val, okc = self._eval(Cands.plain(np.array(prices)), None)
                if coord.any():  # multiplier points: dual bounds too
                    self.best_dual = min(self.best_dual, float(self.dual(mults[coord], st[coord], val[coord]).min()))
                # per direction: the first feasible step; keep the direction whose step is worth most
                pick = None
                for d in range(len(dirs)):
                    idx = np.nonzero(owner == d)[0]
                    if not len(idx):
                        continue
                    f = idx[okc[idx]]
                    if not len(f):
                        ranges[d] = (ranges[d][1], ranges[d][1] * 1e3) if ranges[d][0] == 0.0 else (0.0, 0.0)
                        continue
                    g = int(f[0])
                    prev = float(steps[g - 1]) if g > idx[0] else ranges[d][0]
                    if pick is None or val[g] > pick[2]:
                        pick = (d, (prev, float(steps[g])), float(val[g]))
                if pick is None:
                    continue
                d, (lo, hi), _ = pick
                ranges = [(0.0, 0.0)] * len(dirs)
                ranges[d] = (lo, hi)
                best = (d, lo, hi)
                if hi - lo <= 1e-4 * max(hi, 1e-15):
                    break
            if best is not None:
                d, lo, hi = best
                vec = dirs[d][0]
                self._fill(p0 + hi * vec, p0 + lo * vec, m0)
        if self.primal is not None and not np.allclose(self.primal[1], p0):
            self._fill(self.primal[1], p0, m0)  # the marginal customers between the best point and m0
        if self.primal is None:
            self._raise_infeasible(m0, stats[0])
        return self._result(m0, exact.exact_rows if exact is not None else 0)

    @staticmethod
    def _vscale(rows_hint: Optional[Rows], vmax: float) -> float:
        """A typical positive value (the margins' δ ladder is relative to it)."""
        if rows_hint is not None and len(rows_hint):
            pos = rows_hint.values.max(axis=1)
            pos = pos[np.isfinite(pos) & (pos > 0)]
            if len(pos):
                return float(np.mean(pos))
        return max(float(vmax), 1e-12) if np.isfinite(vmax) else 1.0

    # --------------------------------------------------------------------------------- exact fill
    def exact_fill(self, m0: np.ndarray, vscale: float) -> Optional[MultiAllocation]:
        """Rows whose choice at the dual point m0 is clear keep it; the marginal ones (margin below δ,
        at most ``exact_rows`` of them, brought to the driver) are decided by an integer program over
        what the fixed rows leave of every limit (scipy ``milp``). At the LP dual optimum only the
        customers tied there are fractional, so this is the LP solution with its ties rounded the best
        integral way. Two passes: one scan of margins for a ladder of δ, one collect of the rows below
        the δ chosen. None when the residual program has no feasible solution (a start far from the
        population's dual, or a time-out): the caller falls back to the price search."""
        prices = self.prices(m0)
        deltas = np.concatenate([[0.0], max(vscale, 1e-12) * np.geomspace(1e-9, 1e3, 37), [np.inf]])
        self.passes += 1
        started = time.perf_counter()
        if isinstance(self.rows, Rows):
            stats, value, n_marg = scan_rows(self.rows, prices, deltas)
        else:
            stats, value, n_marg = scan_frame(self.rows, prices, deltas, self.layout)
        log.info("policy constraints pass %d (margins): %.1f s", self.passes, time.perf_counter() - started)
        self.best_dual = min(self.best_dual, float(self.dual(m0[None, :], stats[:1], value[:1])[0]))
        if self.feasible(stats[:1])[0]:
            self._note_primal(float(value[0]), prices, prices, 0.0, stats[0], m0, {})
        ok = np.nonzero(n_marg <= self.exact_rows)[0]
        i = int(ok[-1]) if len(ok) else 0
        if n_marg[i] == 0:
            return None
        if isinstance(self.rows, Rows):
            _, margin = _margins(self.rows, prices)
            sub = self.rows.take(np.nonzero(margin < deltas[i])[0])
        else:
            self.passes += 1
            sub = marginal_frame(self.rows, prices, float(deltas[i]), self.layout)
        act = self._residual(sub, stats[i], float(value[i]))
        if act is None:
            return None
        st, v = _stats(sub, act[None, :])
        total, tval = stats[i] + st[0], float(value[i] + v[0])
        if not self.feasible(total[None, :])[0]:
            return None
        override = {k: int(a) for k, a in zip(sub.keys.tolist(), act.tolist())}
        self._note_primal(tval, prices, prices, 0.0, total, m0, override)
        log.info("policy exact fill: %d marginal rows (δ=%.3g) decided by milp", len(sub), deltas[i])
        return self._result(m0, len(sub))

    def _residual(self, sub: Rows, fixed: np.ndarray, fixed_value: float = 0.0) -> Optional[np.ndarray]:
        """max Σ V x over the marginal rows (x_ik ∈ {0,1}, Σ_k x_ik ≤ 1) within b − A·fixed.

        The program's optimality gap is set relative to the whole allocation (5e-4 of fixed value +
        the marginal rows' upper bound), not to the marginal part alone: proving the last 1e-6 of a
        small knapsack can take the branch-and-bound far longer than the rest of the decision."""
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import csr_matrix

        lay = self.layout
        ii, kk = np.nonzero(np.isfinite(sub.values))
        n, nv = len(sub), len(ii)
        rhs = self.b - self.A @ fixed
        if nv == 0:
            return np.full(n, -1) if np.all(rhs >= -1e-9 * np.maximum(1.0, np.abs(self.b))) else None
        contrib = np.zeros((nv, lay.size))
        contrib[np.arange(nv), kk] = 1.0
        contrib[:, lay.spend] = sub.costs[ii, kk]
        if lay.g:
            contrib[np.arange(nv), lay.k + 1 + sub.groups[ii]] = 1.0
        for q in range(lay.o):
            contrib[:, lay.guard(q)] = sub.guards[ii, kk, q]
        a_con = self.A @ contrib.T
        one = csr_matrix((np.ones(nv), (ii, np.arange(nv))), shape=(n, nv))
        tol = 1e-7 * np.maximum(1.0, np.abs(self.b))  # milp's own tolerance must not become an excess
        cons = [LinearConstraint(one, 0.0, 1.0)]
        if len(a_con):
            cons.append(LinearConstraint(a_con, -np.inf, rhs - tol))
        ub = float(np.maximum(np.where(np.isfinite(sub.values), sub.values, 0.0), 0.0).max(axis=1).sum())
        rel = float(np.clip(5e-4 * (abs(fixed_value) + ub) / max(ub, 1e-12), 1e-6, 0.2))
        res = milp(-sub.values[ii, kk], constraints=cons, integrality=np.ones(nv), bounds=Bounds(0.0, 1.0),
                   options={"time_limit": self.exact_seconds, "mip_rel_gap": rel, "disp": False})
        if res.x is None:
            return None
        x = np.rint(res.x) > 0.5
        act = np.full(n, -1)
        act[ii[x]] = kk[x]
        if np.bincount(ii[x], minlength=n).max(initial=0) > 1:
            return None
        return act

    def _use_of(self, rows: Rows, act: np.ndarray) -> np.ndarray:
        """A·stats of one choice vector over ``rows`` (normalized units)."""
        st, _ = _stats(rows, np.asarray(act)[None, :])
        return self.A @ st[0]

    def _note_primal(self, value, hi, lo, theta, stats, mult, override) -> None:
        if self.primal is None or value > self.primal[0] + 1e-12 * max(1.0, abs(value)):
            self.primal = (float(value), hi.copy(), lo.copy(), float(theta), stats.copy(), np.array(mult, dtype=float),
                           dict(override))

    def _result(self, m0: np.ndarray, exact_rows: int = 0) -> MultiAllocation:
        value, hi, lo, theta, st, mult = self.primal[:6]
        override = self.primal[6] if len(self.primal) > 6 else {}
        used = dict(zip((c.name for c in self.cons), (self.use(st)[0] * self.scale).tolist()))
        names = {c.name: float(x / s) for c, x, s in zip(self.cons, m0, self.scale)}
        return MultiAllocation(hi, lo, theta, names, st, value, used, self.passes,
                               dual_bound=self.best_dual if len(self.cons) else value, mult=m0,
                               override=override, exact_rows=exact_rows if override else 0)

    def _fill(self, hi: np.ndarray, lo: np.ndarray, mult: np.ndarray) -> None:
        theta = np.linspace(0.0, 1.0, self.grid + 1)[1:]
        self._eval(Cands(np.repeat(hi[None, :], len(theta), 0), np.repeat(lo[None, :], len(theta), 0), theta),
                   None, fill_mult=mult)

    def _raise_infeasible(self, mult: np.ndarray, stats: np.ndarray) -> None:
        use = self.use(stats)[0]
        viol = [self.cons[j].name for j in np.argsort(-mult) if use[j] > self.b[j] + 1e-9 * max(1.0, abs(self.b[j]))]
        heavy = [self.cons[j].name for j in np.argsort(-mult)[:3] if mult[j] > 0]
        names = list(dict.fromkeys(viol + heavy))
        raise PolicyError(f"policy: infeasible: no allocation satisfies {', '.join(names) or 'the constraints'} "
                          "together; relax one of them")

    def infeasible_on(self, rows: Rows, mult: np.ndarray, share: float = 1.0) -> bool:
        """Weak duality: a negative dual value on these rows (all values ≥ 0) proves there is no
        feasible fractional allocation."""
        st, v = accumulate(rows, Cands.plain(self.prices(mult)))
        d = float(self.dual(mult[None, :], st, v)[0] - mult @ self.b + mult @ (self.b * share))
        return d < -1e-6 * max(1.0, float(np.abs(rows.values[np.isfinite(rows.values)]).sum()))


def business_constraints(layout: Layout, arms: Sequence[str], budget: Optional[float] = None,
                         capacity: Sequence[Optional[float]] = (), contacts: Optional[float] = None,
                         groups: Sequence[str] = (), group_sizes: Sequence[float] = (),
                         max_gap: Optional[float] = None, min_share: Optional[Dict[str, float]] = None,
                         max_share: Optional[Dict[str, float]] = None,
                         guardrails: Sequence[Tuple[str, float]] = ()) -> List[Constraint]:
    """The constraint rows of a decision, over the rows the rule decides (the policy bucket).

    Fairness compares every group's treated share T_g/n_g with the overall share T/N (two rows per
    group, ± gap); contact shares bound T_g/T; ``guardrails`` are (outcome, floor on Σ uplift of the
    rows the rule treats) in layout order. Limits are already net of what exploration used.
    """
    k = layout.k
    out: List[Constraint] = []

    def row() -> np.ndarray:
        return layout.zeros()

    if budget is not None:
        a = row()
        a[layout.spend] = 1.0
        out.append(Constraint("budget", "budget", a, float(budget)))
    for j, cap in enumerate(capacity):
        if cap is not None:
            a = row()
            a[j] = 1.0
            out.append(Constraint(f"capacity:{arms[j]}", "capacity", a, float(cap)))
    if contacts is not None:
        a = row()
        a[:k] = 1.0
        out.append(Constraint("top_k", "top_k", a, float(contacts)))
    total = float(sum(group_sizes))
    for g, (name, n_g) in enumerate(zip(groups, group_sizes)):
        if max_gap is not None and n_g > 0 and total > 0:
            a = row()
            a[:k] = -1.0 / total
            a[layout.group(g)] = 1.0 / n_g
            out.append(Constraint(f"fairness:{name}:above", "fairness", a, float(max_gap)))
            out.append(Constraint(f"fairness:{name}:below", "fairness", -a, float(max_gap)))
        if min_share and name in min_share:
            a = row()
            a[:k] = float(min_share[name])
            a[layout.group(g)] -= 1.0
            out.append(Constraint(f"min_share:{name}", "fairness", a, 0.0))
        if max_share and name in max_share:
            a = row()
            a[:k] = -float(max_share[name])
            a[layout.group(g)] += 1.0
            out.append(Constraint(f"max_share:{name}", "fairness", a, 0.0))
    for q, (outcome, floor) in enumerate(guardrails):
        a = row()
        a[layout.guard(q)] = -1.0
        out.append(Constraint(f"guardrail:{outcome}", "guardrail", a, -float(floor)))
    return out


__all__ = ["business_constraints", "Constraint", "Layout", "Rows", "Cands", "MultiSolver", "MultiAllocation", "choose", "accumulate",
           "evaluate_frame", "row_columns", "assign", "scan_rows", "scan_frame", "marginal_frame", "KEY"]
