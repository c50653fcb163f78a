"""Constrained allocation: at most one arm per customer maximizing total value, by Lagrange multipliers.

The LP relaxation  max Σ V_ik x_ik  s.t.  Σ_k x_ik ≤ 1,  Σ c_k x_ik ≤ B,  Σ_i x_ik ≤ cap_k,  Σ x_ik ≤ K
has the dual solution "each customer takes argmax_k (V_ik − ν_k) if it is > 0" with arm prices
ν_k = λ·c_k + μ_k + κ (λ: budget, μ_k: capacity of arm k, κ: number of contacts for top_k). We find the
multipliers on Spark aggregates only; every pass evaluates a whole grid of candidate multipliers in ONE
``mapInPandas`` pass (each partition reduces its rows to counts and value per candidate × arm; only those
partial sums reach the driver):

* one binding constraint: bisection on a grid of ``grid_points`` values, refined inside the first
  feasible cell (feasibility is monotone in the multiplier), keeping the feasible end;
* several: the convex dual D(λ, μ, κ) = Σ_i max(0, max_k V_ik − ν_k) + λB + Σ μ_k cap_k + κK is
  computed for a joint grid of candidates per pass and the grid is re-centred on the best point and
  shrunk until the cells are tiny; then a uniform price shift (monotone: every count and the spend
  only fall) is bisected to the feasible side.

Cost control (the search used to be the slowest stage at 1M customers):

* a pass sends to Python only the rows some candidate could choose (a value above the lowest price of
  the pass, filtered in Spark on the cached frame); the others add nothing to any count or value;
* ``policy.decide`` first solves a bounded, seeded sample on the driver (:class:`LocalRows`, same
  NumPy rule) and starts the population search in a narrow window around those multipliers with
  ``grid_points`` candidates per pass; a window that missed is re-centred and widened, so the sample
  only saves passes and never decides anything by itself;
* every pass over plain multiplier prices gives dual values D(m) ≥ LP optimum (weak duality) and
  feasible allocations; the next pass also evaluates the tie-hash fill between the best feasible point
  and a cell below the dual point, and the search stops once a feasible allocation is within
  ``gap_tol`` of the best dual value — a certificate (``Allocation.dual_gap``), not a heuristic.

No constraint is ever exceeded: every candidate is checked on exact counts with the same numpy rule
that later assigns the customers. The slack left by the marginal customers (those whose choice differs
between the feasible prices and the infeasible/dual ones) is filled in tie-hash order: the largest hash
threshold θ that keeps every constraint satisfied — a deterministic tie-break without a global sort.

Rows given to the solver hold ``v_0..v_{K-1}``: candidate values (null = not a candidate: ineligible or
below ``min_value``) and ``tie_u`` (uniform tie-break hash).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PolicyError
from ..logs import get_logger

log = get_logger("policy")

_CELLS = 1 << 21  # float cells per numpy block in a pass (≈ 16 MB)


def value_col(k: int) -> str:
    return f"v_{k}"


# ------------------------------------------------------------------------------------------ numpy core


def _pick(values: np.ndarray, nu: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(arm index, its value V) per (candidate, row); see :func:`pick`. A loop over the few arms on
    contiguous M×n blocks: several times faster than ``argmax`` over a length-K last axis."""
    best = values[None, :, 0] - nu[:, 0][:, None]
    idx = np.zeros(best.shape, dtype=np.int64)
    val = np.broadcast_to(values[None, :, 0], best.shape)
    for k in range(1, values.shape[1]):
        score = values[None, :, k] - nu[:, k][:, None]
        better = score > best  # strict: ties go to the first arm in policy order
        best = np.where(better, score, best)
        idx = np.where(better, k, idx)
        val = np.where(better, values[None, :, k], val)
    chosen = best > 0
    return np.where(chosen, idx, -1), np.where(chosen, val, 0.0)


def pick(values: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Arm index per (candidate, row): argmax_k (V − ν_k) if > 0 else −1. values n×K (−inf = not a
    candidate), nu M×K → M×n. Ties between arms go to the first arm in policy order."""
    return _pick(values, nu)[0]


def _choose(values: np.ndarray, tie_u: np.ndarray, nu_hi: np.ndarray, nu_lo: np.ndarray,
            theta: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    a_hi, v_hi = _pick(values, nu_hi)
    if not np.any(theta > 0):
        return a_hi, v_hi
    a_lo, v_lo = _pick(values, nu_lo)
    switch = (a_lo != a_hi) & (tie_u[None, :] < theta[:, None])
    return np.where(switch, a_lo, a_hi), np.where(switch, v_lo, v_hi)


def choose(values: np.ndarray, tie_u: np.ndarray, nu_hi: np.ndarray, nu_lo: np.ndarray,
           theta: np.ndarray) -> np.ndarray:
    """The final rule: the choice at feasible prices ``nu_hi``, switched to the choice at ``nu_lo`` for
    marginal rows whose tie hash is below ``theta``. Shapes: nu M×K, theta M → M×n."""
    return _choose(values, tie_u, nu_hi, nu_lo, theta)[0]


def frame_values(pdf, k_arms: int) -> np.ndarray:
    cols = [value_col(k) for k in range(k_arms)]
    out = pdf[cols].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(out), -np.inf, out)


@dataclasses.dataclass(frozen=True)
class Candidates:
    nu_hi: np.ndarray  # M×K
    nu_lo: np.ndarray  # M×K
    theta: np.ndarray  # M

    def floor(self) -> np.ndarray:
        """Per arm, the lowest price any candidate charges: a row whose values are all at or below
        these is chosen by no candidate (V − ν ≤ 0), so it adds nothing to any count or value."""
        return np.minimum(self.nu_hi.min(axis=0), self.nu_lo.min(axis=0))

    @staticmethod
    def plain(nu: np.ndarray) -> "Candidates":
        return Candidates(nu, nu, np.zeros(len(nu)))


def _accumulate(vals: np.ndarray, tie_u: np.ndarray, hi: np.ndarray, lo: np.ndarray, th: np.ndarray,
                counts: np.ndarray, value: np.ndarray) -> None:
    """Add one block's counts and value per (candidate, arm) in place. One ``bincount`` over
    candidate × action codes instead of a mask per arm: O(M·n) after the choice, whatever K."""
    m, k_arms = counts.shape
    act, chosen = _choose(vals, tie_u, hi, lo, th)  # M×n each
    code = (np.arange(m)[:, None] * (k_arms + 1) + (act + 1)).ravel()
    size = m * (k_arms + 1)
    counts += np.bincount(code, minlength=size).reshape(m, k_arms + 1)[:, 1:]
    value += np.bincount(code, weights=chosen.ravel(), minlength=size).reshape(m, k_arms + 1)[:, 1:]


def _block_rows(m: int, k_arms: int) -> int:
    return max(64, _CELLS // max(1, m * k_arms))  # bound memory: rows × candidates × arms


def evaluate(frame, cands: Candidates, k_arms: int) -> Tuple[np.ndarray, np.ndarray]:
    """One aggregation pass: (counts M×K, value M×K) of every candidate over ``frame``.

    Each partition reduces its rows to one small row of partial sums (M×K numbers); only those are
    collected, so the driver sees O(partitions × candidates) numbers whatever the population size.
    """
    nu_hi, nu_lo, theta = cands.nu_hi.tolist(), cands.nu_lo.tolist(), cands.theta.tolist()
    m = len(theta)

    def partial(batches):
        import pandas as pd

        hi, lo, th = np.array(nu_hi, dtype=float), np.array(nu_lo, dtype=float), np.array(theta, dtype=float)
        counts = np.zeros((m, k_arms))
        value = np.zeros((m, k_arms))
        seen = False
        chunk = _block_rows(m, k_arms)
        for pdf in batches:
            for start in range(0, len(pdf), chunk):
                seen = True
                part = pdf.iloc[start:start + chunk]
                _accumulate(frame_values(part, k_arms), part["tie_u"].to_numpy(dtype=float), hi, lo, th,
                            counts, value)
        if seen:
            yield pd.DataFrame({"n": [counts.ravel().tolist()], "v": [value.ravel().tolist()]})

    cols = [value_col(k) for k in range(k_arms)] + ["tie_u"]
    from pyspark.sql import functions as F

    floor = cands.floor()  # rows below every candidate's price add nothing: Spark drops them before Python
    keep = None
    for k in range(k_arms):
        cond = F.col(value_col(k)) > F.lit(float(floor[k]))
        keep = cond if keep is None else keep | cond
    rows = frame.select(*cols).where(keep).mapInPandas(partial, "n array<double>, v array<double>").collect()
    counts = np.zeros((m, k_arms))
    value = np.zeros((m, k_arms))
    for r in rows:
        counts += np.asarray(r["n"], dtype=float).reshape(m, k_arms)
        value += np.asarray(r["v"], dtype=float).reshape(m, k_arms)
    return np.rint(counts), value


class LocalRows:
    """Rows held by the driver (a bounded, seeded sample): the same evaluation as :func:`evaluate`,
    in NumPy, so the solver can bracket the multipliers without a Spark pass."""

    def __init__(self, values: np.ndarray, tie_u: np.ndarray):
        self.values = np.asarray(values, dtype=float)
        self.tie_u = np.asarray(tie_u, dtype=float)

    @staticmethod
    def from_pandas(pdf, k_arms: int) -> "LocalRows":
        return LocalRows(frame_values(pdf, k_arms), pdf["tie_u"].to_numpy(dtype=float))

    def __len__(self) -> int:
        return len(self.tie_u)

    def evaluate(self, cands: Candidates, k_arms: int) -> Tuple[np.ndarray, np.ndarray]:
        m = len(cands.theta)
        counts, value = np.zeros((m, k_arms)), np.zeros((m, k_arms))
        keep = np.nonzero((self.values > cands.floor()[None, :]).any(axis=1))[0]
        values, tie_u = self.values[keep], self.tie_u[keep]
        chunk = _block_rows(m, k_arms)
        for start in range(0, len(keep), chunk):
            _accumulate(values[start:start + chunk], tie_u[start:start + chunk], cands.nu_hi, cands.nu_lo,
                        cands.theta, counts, value)
        return counts, value


# ------------------------------------------------------------------------------------------ constraints


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the policy bucket may still use (after exploration took its share)."""

    costs: Tuple[float, ...]
    budget: Optional[float] = None
    capacity: Tuple[Optional[float], ...] = ()
    contacts: Optional[float] = None

    def coordinates(self) -> List[Tuple[str, int]]:
        coords = []
        if self.budget is not None and any(c > 0 for c in self.costs):
            coords.append(("budget", -1))
        for k, cap in enumerate(self.capacity):
            if cap is not None:
                coords.append(("capacity", k))
        if self.contacts is not None:
            coords.append(("contacts", -1))
        return coords

    def scaled(self, f: float) -> "Limits":
        """The same constraints for a sample holding a share ``f`` of the rows (for bracketing)."""
        return dataclasses.replace(
            self, budget=None if self.budget is None else self.budget * f,
            capacity=tuple(None if c is None else c * f for c in self.capacity),
            contacts=None if self.contacts is None else self.contacts * f)

    def values(self, coords: Sequence[Tuple[str, int]]) -> np.ndarray:
        return np.array([self.budget if kind == "budget" else self.capacity[k] if kind == "capacity"
                         else self.contacts for kind, k in coords], dtype=float)

    def feasible(self, counts: np.ndarray, coord: Optional[Tuple[str, int]] = None) -> np.ndarray:
        """Per candidate: does it satisfy ``coord`` (or every constraint when None)?"""
        ok = np.ones(len(counts), dtype=bool)
        kinds = [coord] if coord is not None else self.coordinates()
        for kind, k in kinds:
            if kind == "budget":
                spend = counts @ np.asarray(self.costs, dtype=float)
                ok &= spend <= self.budget + 1e-9 * max(1.0, abs(self.budget))
            elif kind == "capacity":
                ok &= counts[:, k] <= self.capacity[k]
            elif kind == "contacts":
                ok &= counts.sum(axis=1) <= self.contacts
        return ok


@dataclasses.dataclass
class Allocation:
    """Solver result: the final rule's prices and threshold, plus the multipliers for the summary.

    ``dual_bound`` is the smallest dual value D(m) evaluated on the rows the allocation was counted on:
    by weak duality it is ≥ the LP optimum, so ``value ≥ (1 − dual_gap)·LP`` is a certificate.
    """

    nu_hi: np.ndarray
    nu_lo: np.ndarray
    theta: float
    multipliers: Dict[str, float]
    counts: np.ndarray
    value: float
    passes: int
    mult: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    dual_bound: Optional[float] = None

    @property
    def dual_gap(self) -> Optional[float]:
        """(dual bound − value) / |dual bound|; 0 when no constraint binds (the rule is then exact)."""
        if self.dual_bound is None or not np.isfinite(self.dual_bound):
            return None
        return float(max(0.0, self.dual_bound - self.value) / max(abs(self.dual_bound), 1e-12))

    def labels(self, arms: Sequence[str]) -> List[str]:
        """Per arm, the constraint that binds it (for "not chosen" reasons)."""
        out = []
        for arm in arms:
            if self.multipliers.get(f"capacity:{arm}", 0.0) > 0:
                out.append(f"capacity {arm}")
            elif self.multipliers.get("budget", 0.0) > 0:
                out.append("budget")
            elif self.multipliers.get("top_k", 0.0) > 0 or self.multipliers.get("shift", 0.0) > 0:
                out.append("top_k" if "top_k" in self.multipliers else "constraints")
            else:
                out.append("constraints")
        return out


class Solver:
    """Multiplier search with grid passes; see the module docstring.

    ``frame`` is a Spark DataFrame (every evaluation is one ``mapInPandas`` pass) or :class:`LocalRows`
    (a driver-side sample: evaluations are NumPy). ``solve(vmax, start=...)`` starts the windows at
    multipliers found on a sample and evaluates ``refine_points`` candidates per pass instead of a
    search from scratch; windows that miss the optimum are moved/widened, so the start only saves passes.
    """

    def __init__(self, frame, limits: Limits, arms: Sequence[str], grid_points: int = 128,
                 max_passes: int = 40, rel_tol: float = 1e-6, gap_tol: float = 0.0,
                 refine_points: Optional[int] = None, window: float = 0.1, zoom_points: Optional[int] = None,
                 zoom_stop: float = 1e-4):
        self.frame = frame
        self.limits = limits
        self.arms = list(arms)
        self.k = len(self.arms)
        self.grid = int(grid_points)
        self.refine = int(refine_points or grid_points)
        self.zoom_points = int(zoom_points or 8 * self.grid)
        self.zoom_stop = float(zoom_stop)
        self.window = float(window)
        self.max_passes = int(max_passes)
        self.rel_tol = rel_tol
        self.gap_tol = float(gap_tol)
        self.passes = 0
        self.costs = np.asarray(limits.costs, dtype=float)
        self.coords = limits.coordinates()
        self.best_dual = float("inf")
        self.primal = None  # (value, multipliers, ν_hi, ν_lo, θ, counts, value per arm): best feasible seen

    def prices(self, mult: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """Arm prices ν_k = λ·c_k + μ_k + κ (+ a uniform shift) from one value per coordinate."""
        nu = np.full(self.k, float(shift))
        for (kind, k), x in zip(self.coords, mult):
            if kind == "budget":
                nu = nu + x * self.costs
            elif kind == "capacity":
                nu[k] += x
            else:
                nu = nu + x
        return nu

    def _eval(self, cands: Candidates, mults: Optional[np.ndarray] = None, fill=None):
        """One pass. When the candidates are plain multiplier prices (``mults``) their dual values
        tighten the bound and the feasible ones are primal solutions. ``fill`` = (mult, ν_hi, ν_lo):
        the same pass also evaluates the tie-hash fill between a feasible point and a lower-priced one,
        so a search can stop as soon as a filled allocation is within ``gap_tol`` of the dual bound."""
        m = len(cands.theta)
        if fill is not None:
            theta = np.linspace(0.0, 1.0, self.grid)[1:]  # θ = 0 is ν_hi itself, evaluated before
            extra = Candidates(np.repeat(fill[1][None, :], len(theta), 0), np.repeat(fill[2][None, :], len(theta), 0),
                               theta)
            cands = Candidates(np.vstack([cands.nu_hi, extra.nu_hi]), np.vstack([cands.nu_lo, extra.nu_lo]),
                               np.concatenate([cands.theta, extra.theta]))
        self.passes += 1
        started = time.perf_counter()
        if isinstance(self.frame, LocalRows):
            counts, value = self.frame.evaluate(cands, self.k)
        else:
            counts, value = evaluate(self.frame, cands, self.k)
        log.info("policy search pass %d (%s): %d candidates, %.1f s", self.passes,
                 "sample" if isinstance(self.frame, LocalRows) else "population", len(cands.theta),
                 time.perf_counter() - started)
        if mults is not None and self.coords:
            self.best_dual = min(self.best_dual, float(self.dual(mults, counts[:m], value[:m]).min()))
            for g in np.nonzero(self.limits.feasible(counts[:m]))[0]:
                self._note(mults[g], cands.nu_hi[g], cands.nu_lo[g], 0.0, counts[g], value[g])
        if fill is not None:
            for g in np.nonzero(self.limits.feasible(counts[m:]))[0]:
                self._note(fill[0], cands.nu_hi[m + g], cands.nu_lo[m + g], float(cands.theta[m + g]),
                           counts[m + g], value[m + g])
        return counts[:m], value[:m]

    def _note(self, mult, nu_hi, nu_lo, theta, counts, value) -> None:
        """Keep the best feasible allocation evaluated so far (a primal bound)."""
        total = float(value.sum())
        if self.primal is None or total > self.primal[0] + 1e-12 * max(1.0, abs(total)):
            self.primal = (total, np.array(mult, dtype=float), nu_hi.copy(), nu_lo.copy(), theta, counts.copy(),
                           value.copy())

    def _gap_ok(self, primal: Optional[float] = None) -> bool:
        if primal is None:
            primal = None if self.primal is None else self.primal[0]
        return primal is not None and self.gap_tol > 0 and np.isfinite(self.best_dual) and \
            self.best_dual - primal <= self.gap_tol * max(abs(self.best_dual), 1e-12)

    def _upper(self, kind: str, vmax: float) -> float:
        if kind == "budget":
            return vmax / min(c for c in self.costs if c > 0)
        return vmax

    def _search(self, build, feasible, lo: float, hi: float, upper: float, tol: float,
                points: Optional[int] = None, dual: bool = False):
        """Smallest feasible value in [0, upper] (feasibility is monotone in it), starting from the
        window [lo, hi]. Returns (feasible end, infeasible end, counts and value at the feasible end).
        With ``dual`` the grid values are multipliers of the single constraint: their dual values are
        tracked and the search stops once the feasible end is within ``gap_tol`` of the dual bound."""
        a, b = max(0.0, lo), min(upper, hi)
        points = int(points or self.grid)
        found, fill = None, None
        for _ in range(self.max_passes):
            grid = np.linspace(a, b, points)
            cands = build(grid)
            counts, value = self._eval(cands, grid[:, None] if dual else None, fill)
            if dual and self._gap_ok():
                return self.primal[1][0], self.primal[1][0], self.primal[5], self.primal[6]
            ok = feasible(counts)
            if not ok.any():
                if b >= upper:  # cannot happen for a monotone constraint; settle at the bound
                    return upper, upper, counts[-1], value[-1]
                a, b = b, upper
                continue
            g = int(np.argmax(ok))
            found = (float(grid[g]), counts[g], value[g])
            if g == 0:
                if a <= 0.0:
                    return 0.0, 0.0, counts[0], value[0]
                a, b = 0.0, a
                continue
            a, b = float(grid[g - 1]), float(grid[g])
            if dual and self.gap_tol > 0:
                fill = (np.array([b]), cands.nu_hi[g], cands.nu_hi[g - 1])
            if b - a <= tol:
                break
        return found[0], a, found[1], found[2]

    def _start_window(self, start: Optional[np.ndarray], uppers: np.ndarray):
        if start is None:
            return np.zeros(len(uppers)), uppers.astype(float).copy()
        width = self.window * np.maximum(np.asarray(start, dtype=float), uppers * 1e-3)
        return np.maximum(start - width, 0.0), np.minimum(start + width, uppers)

    def solve(self, vmax: float, start: Optional[np.ndarray] = None, multipliers_only: bool = False) -> Allocation:
        """Multipliers, fill threshold and the resulting counts/value; ``vmax`` = the largest value.
        ``start``: multipliers (one per coordinate) from a sample, to bracket the search.
        ``multipliers_only``: stop at the dual point (a sample bracket needs no feasible fill)."""
        names = [("budget" if kind == "budget" else f"capacity:{self.arms[k]}" if kind == "capacity" else "top_k")
                 for kind, k in self.coords]
        j_n = len(self.coords)
        mult, low = np.zeros(j_n), np.zeros(j_n)
        shift_hi = shift_lo = 0.0
        current = None  # (counts, value) at the current multipliers
        points = self.grid if start is None else self.refine
        if j_n and vmax > 0:
            uppers = np.array([self._upper(kind, vmax) for kind, _ in self.coords])
            tols = uppers * self.rel_tol
            lo0, hi0 = self._start_window(start, uppers)
            if j_n == 1:  # one constraint: exact monotone search, feasible side kept
                hi_j, lo_j, counts, value = self._search(
                    lambda grid: Candidates.plain(np.array([self.prices(np.array([x])) for x in grid])),
                    lambda c: self.limits.feasible(c, self.coords[0]), lo0[0], hi0[0], uppers[0], tols[0],
                    points=points, dual=True)
                mult[0], low[0] = hi_j, lo_j
                current = (counts, value)
                if multipliers_only:
                    return Allocation(self.prices(mult), self.prices(low), 0.0, dict(zip(names, mult.tolist())),
                                      counts, float(value.sum()), self.passes, mult=mult)
            else:  # several: minimize the convex dual on zooming joint grids, then settle feasible
                mult, current, feas = self._zoom(uppers, lo0, hi0, self.zoom_points if start is None else points)
                low = mult.copy()
                if multipliers_only:
                    return Allocation(self.prices(mult), self.prices(mult), 0.0, dict(zip(names, mult.tolist())),
                                      current[0], float(current[1].sum()), self.passes, mult=mult)
            if self._gap_ok():  # a feasible (filled) allocation within gap_tol of the dual bound: done
                total, mult, nu_hi, nu_lo, theta, counts, value = self.primal
                return Allocation(nu_hi, nu_lo, theta, dict(zip(names, (float(x) for x in mult))), counts, total,
                                  self.passes, mult=mult, dual_bound=self.best_dual)
            if current is None:
                current = self._eval(Candidates.plain(self.prices(mult)[None, :]), mult[None, :])
                current = (current[0][0], current[1][0])
            if not self.limits.feasible(current[0][None, :])[0]:  # not converged: shift all prices
                base = self.prices(mult)
                s_hi = vmax if start is None else vmax * 1e-2  # after a bracket, the shift needed is small
                shift_hi, _, c, v = self._search(
                    lambda grid: Candidates.plain(np.array([base + x for x in grid])), self.limits.feasible,
                    0.0, s_hi, vmax, vmax * self.rel_tol, points=points)
                current = (c, v)
                low = mult.copy()  # the fill may move marginal customers back towards the dual point
        nu_hi = self.prices(mult, shift_hi)
        nu_lo = self.prices(low, shift_lo)
        theta = 0.0
        if np.any(nu_lo != nu_hi):
            theta, counts, value = self._fill(nu_hi, nu_lo, current)
            if theta > 0:
                current = (counts, value)
        if current is None and not j_n:  # unconstrained: nothing to count
            current = (np.zeros(self.k), np.zeros(self.k))
        if current is None:
            c, v = self._eval(Candidates.plain(nu_hi[None, :]))
            current = (c[0], v[0])
        if not self.limits.feasible(current[0][None, :])[0]:  # pragma: no cover - guarded by construction
            raise PolicyError("policy: internal error, the allocation exceeds a constraint")
        multipliers = dict(zip(names, (float(x) for x in mult)))
        if shift_hi > 0:
            multipliers["shift"] = float(shift_hi)
        value = float(current[1].sum())
        if self.primal is not None and self.primal[0] > value + 1e-9 * max(1.0, abs(value)):
            total, mult, nu_hi, nu_lo, theta, counts, vals = self.primal  # a better feasible point seen earlier
            multipliers = dict(zip(names, (float(x) for x in mult)))
            current, value = (counts, vals), total
        # without a binding constraint (or with nothing positive) the greedy rule is the optimum itself
        bound = self.best_dual if (j_n and vmax > 0) else value
        return Allocation(nu_hi, nu_lo, theta, multipliers, current[0], value, self.passes, mult=np.asarray(mult),
                          dual_bound=bound)

    def dual(self, mults: np.ndarray, counts: np.ndarray, value: np.ndarray) -> np.ndarray:
        """D(m) = Σ_i max(0, max_k V_ik − ν_k) + Σ_j m_j·limit_j, from one pass's aggregates (M values)."""
        nus = np.array([self.prices(m) for m in mults])
        return value.sum(axis=1) - (nus * counts).sum(axis=1) + mults @ self.limits.values(self.coords)

    def _zoom(self, uppers: np.ndarray, lo: np.ndarray, hi: np.ndarray, points: int):
        """Joint grid over every multiplier (≤ ``points`` candidates per pass) inside [lo, hi],
        re-centred on the best dual value and shrunk until the cells are tiny. The dual is convex, so
        the best grid point stays close to the minimizer; when it lies on an edge of the window that is
        not a bound (0 or the upper), the window is centred there and doubled instead of shrunk (a
        sample bracket that missed: found again in O(log) passes). From the second pass on, the pass
        also evaluates the fill below the best feasible point (see :meth:`_eval`) and the search stops
        once the best feasible allocation is within ``gap_tol`` of the dual bound. Returns the dual
        point, its (counts, value) and the best feasible grid point (multipliers, counts, value)."""
        d = len(uppers)
        per_dim = max(4, int(points ** (1.0 / d) + 1e-9))
        lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
        best, at_best, feas, fill = np.zeros(d), None, None, None
        for _ in range(self.max_passes):
            axes = [np.linspace(lo[j], hi[j], per_dim) for j in range(d)]
            mults = np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T
            counts, value = self._eval(Candidates.plain(np.array([self.prices(m) for m in mults])), mults, fill)
            dual = self.dual(mults, counts, value)
            g = int(np.argmin(dual))
            best, at_best = mults[g], (counts[g], value[g])
            step = (hi - lo) / (per_dim - 1)
            ok = np.nonzero(self.limits.feasible(counts))[0]
            if len(ok):
                f = int(ok[np.argmax(value[ok].sum(axis=1))])
                if feas is None or value[f].sum() > feas[2].sum():
                    feas = (mults[f], counts[f], value[f])
            if self._gap_ok():
                break
            if feas is not None and self.gap_tol > 0:  # next pass: fill from the best feasible point down
                below = np.maximum(best - step, 0.0)  # one cell under the dual point: the infeasible side
                fill = (feas[0], self.prices(feas[0]), self.prices(below))
            idx = np.unravel_index(g, (per_dim,) * d)
            edge = np.array([(idx[j] == 0 and lo[j] > 0) or (idx[j] == per_dim - 1 and hi[j] < uppers[j])
                             for j in range(d)])
            if not edge.any() and np.all(step <= uppers * self.zoom_stop):
                break
            half = np.where(edge, hi - lo, 1.5 * step)  # missed (a bad bracket): move there and double the width
            lo, hi = np.maximum(best - half, 0.0), np.minimum(best + half, uppers)
        return best, at_best, feas

    def _fill(self, nu_hi: np.ndarray, nu_lo: np.ndarray, current=None):
        """The tie-hash threshold θ whose switched marginal customers give the most value within every
        constraint (θ = 0 is the allocation at ``nu_hi``, feasible by construction)."""
        grid = np.linspace(0.0, 1.0, self.grid)
        cands = Candidates(np.repeat(nu_hi[None, :], len(grid), 0), np.repeat(nu_lo[None, :], len(grid), 0), grid)
        counts, value = self._eval(cands)
        idx = np.nonzero(self.limits.feasible(counts))[0]
        if len(idx) == 0:
            return 0.0, None, None
        totals = value[idx].sum(axis=1)
        g = int(idx[np.flatnonzero(totals >= totals.max() - 1e-12 * max(1.0, abs(totals.max())))[-1]])
        return float(grid[g]), counts[g], value[g]


__all__ = ["Solver", "Limits", "Allocation", "Candidates", "LocalRows", "choose", "pick", "evaluate", "value_col"]
