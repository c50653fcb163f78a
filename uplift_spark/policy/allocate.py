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

No constraint is ever exceeded: every candidate is checked on exact counts with the same numpy rule
that later assigns the customers. The slack left by the marginal customers (those whose choice differs
between the feasible prices and the infeasible/dual ones) is filled in tie-hash order: the largest hash
threshold θ that keeps every constraint satisfied — a deterministic tie-break without a global sort.

Rows given to the solver hold ``v_0..v_{K-1}``: candidate values (null = not a candidate: ineligible or
below ``min_value``) and ``tie_u`` (uniform tie-break hash).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PolicyError
from ..logs import get_logger

log = get_logger("policy")

_CELLS = 1 << 21  # float cells per numpy block in a pass (≈ 16 MB)


def value_col(k: int) -> str:
    return f"v_{k}"


# ------------------------------------------------------------------------------------------ numpy core


def pick(values: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Arm index per (candidate, row): argmax_k (V − ν_k) if > 0 else −1. values n×K (−inf = not a
    candidate), nu M×K → M×n. Ties between arms go to the first arm in policy order."""
    scores = values[None, :, :] - nu[:, None, :]
    idx = scores.argmax(axis=2)
    best = np.take_along_axis(scores, idx[..., None], axis=2)[..., 0]
    return np.where(best > 0, idx, -1)


def choose(values: np.ndarray, tie_u: np.ndarray, nu_hi: np.ndarray, nu_lo: np.ndarray,
           theta: np.ndarray) -> np.ndarray:
    """The final rule: the choice at feasible prices ``nu_hi``, switched to the choice at ``nu_lo`` for
    marginal rows whose tie hash is below ``theta``. Shapes: nu M×K, theta M → M×n."""
    a_hi = pick(values, nu_hi)
    if not np.any(theta > 0):
        return a_hi
    a_lo = pick(values, nu_lo)
    switch = (a_lo != a_hi) & (tie_u[None, :] < theta[:, None])
    return np.where(switch, a_lo, a_hi)


def frame_values(pdf, k_arms: int) -> np.ndarray:
    cols = [value_col(k) for k in range(k_arms)]
    out = pdf[cols].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(out), -np.inf, out)


@dataclasses.dataclass(frozen=True)
class Candidates:
    nu_hi: np.ndarray  # M×K
    nu_lo: np.ndarray  # M×K
    theta: np.ndarray  # M

    @staticmethod
    def plain(nu: np.ndarray) -> "Candidates":
        return Candidates(nu, nu, np.zeros(len(nu)))


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
        chunk = max(64, _CELLS // max(1, m * k_arms))  # bound memory: rows × candidates × arms
        for pdf in batches:
            for start in range(0, len(pdf), chunk):
                seen = True
                part = pdf.iloc[start:start + chunk]
                vals = frame_values(part, k_arms)
                act = choose(vals, part["tie_u"].to_numpy(dtype=float), hi, lo, th)
                chosen = np.where(act >= 0, np.take_along_axis(
                    np.broadcast_to(vals, (m,) + vals.shape), np.maximum(act, 0)[..., None], axis=2)[..., 0], 0.0)
                for k in range(k_arms):
                    mask = act == k
                    counts[:, k] += mask.sum(axis=1)
                    value[:, k] += np.where(mask, chosen, 0.0).sum(axis=1)
        if seen:
            yield pd.DataFrame({"n": [counts.ravel().tolist()], "v": [value.ravel().tolist()]})

    cols = [value_col(k) for k in range(k_arms)] + ["tie_u"]
    rows = frame.select(*cols).mapInPandas(partial, "n array<double>, v array<double>").collect()
    counts = np.zeros((m, k_arms))
    value = np.zeros((m, k_arms))
    for r in rows:
        counts += np.asarray(r["n"], dtype=float).reshape(m, k_arms)
        value += np.asarray(r["v"], dtype=float).reshape(m, k_arms)
    return np.rint(counts), value


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
    """Solver result: the final rule's prices and threshold, plus the multipliers for the summary."""

    nu_hi: np.ndarray
    nu_lo: np.ndarray
    theta: float
    multipliers: Dict[str, float]
    counts: np.ndarray
    value: float
    passes: int

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
    """Multiplier search with grid passes; see the module docstring."""

    def __init__(self, frame, limits: Limits, arms: Sequence[str], grid_points: int = 128,
                 max_passes: int = 40, rel_tol: float = 1e-6):
        self.frame = frame
        self.limits = limits
        self.arms = list(arms)
        self.k = len(self.arms)
        self.grid = int(grid_points)
        self.max_passes = int(max_passes)
        self.rel_tol = rel_tol
        self.passes = 0
        self.costs = np.asarray(limits.costs, dtype=float)
        self.coords = limits.coordinates()

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

    def _eval(self, cands: Candidates):
        self.passes += 1
        return evaluate(self.frame, cands, self.k)

    def _upper(self, kind: str, vmax: float) -> float:
        if kind == "budget":
            return vmax / min(c for c in self.costs if c > 0)
        return vmax

    def _search(self, build, feasible, lo: float, hi: float, upper: float, tol: float):
        """Smallest feasible value in [0, upper] (feasibility is monotone in it), starting from the
        window [lo, hi]. Returns (feasible end, infeasible end, counts and value at the feasible end)."""
        a, b = max(0.0, lo), min(upper, hi)
        found = None
        for _ in range(self.max_passes):
            grid = np.linspace(a, b, self.grid)
            counts, value = self._eval(build(grid))
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
            if b - a <= tol:
                break
        return found[0], a, found[1], found[2]

    def solve(self, vmax: float) -> Allocation:
        """Multipliers, fill threshold and the resulting counts/value; ``vmax`` = the largest value."""
        names = [("budget" if kind == "budget" else f"capacity:{self.arms[k]}" if kind == "capacity" else "top_k")
                 for kind, k in self.coords]
        j_n = len(self.coords)
        mult, low = np.zeros(j_n), np.zeros(j_n)
        shift_hi = shift_lo = 0.0
        current = None  # (counts, value) at the current multipliers
        if j_n and vmax > 0:
            uppers = np.array([self._upper(kind, vmax) for kind, _ in self.coords])
            tols = uppers * self.rel_tol
            if j_n == 1:  # one constraint: exact monotone search, feasible side kept
                hi_j, lo_j, counts, value = self._search(
                    lambda grid: Candidates.plain(np.array([self.prices(np.array([x])) for x in grid])),
                    lambda c: self.limits.feasible(c, self.coords[0]), 0.0, uppers[0], uppers[0], tols[0])
                mult[0], low[0] = hi_j, lo_j
                current = (counts, value)
            else:  # several: minimize the convex dual on zooming joint grids, then settle feasible
                mult, current = self._zoom(uppers)
                low = mult.copy()
            if current is None:
                current = self._eval(Candidates.plain(self.prices(mult)[None, :]))
                current = (current[0][0], current[1][0])
            if not self.limits.feasible(current[0][None, :])[0]:  # not converged: shift all prices
                base = self.prices(mult)
                shift_hi, _, c, v = self._search(
                    lambda grid: Candidates.plain(np.array([base + x for x in grid])), self.limits.feasible,
                    0.0, vmax, vmax, vmax * self.rel_tol)
                current = (c, v)
                low = mult.copy()  # the fill may move marginal customers back towards the dual point
        nu_hi = self.prices(mult, shift_hi)
        nu_lo = self.prices(low, shift_lo)
        theta = 0.0
        if np.any(nu_lo < nu_hi):
            theta, counts, value = self._fill(nu_hi, nu_lo)
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
        return Allocation(nu_hi, nu_lo, theta, multipliers, current[0], float(current[1].sum()), self.passes)

    def dual(self, mults: np.ndarray, counts: np.ndarray, value: np.ndarray) -> np.ndarray:
        """D(m) = Σ_i max(0, max_k V_ik − ν_k) + Σ_j m_j·limit_j, from one pass's aggregates (M values)."""
        limits = []
        for kind, k in self.coords:
            limits.append(self.limits.budget if kind == "budget" else
                          self.limits.capacity[k] if kind == "capacity" else self.limits.contacts)
        nus = np.array([self.prices(m) for m in mults])
        return value.sum(axis=1) - (nus * counts).sum(axis=1) + mults @ np.asarray(limits, dtype=float)

    def _zoom(self, uppers: np.ndarray, rel_stop: float = 1e-4) -> np.ndarray:
        """Joint grid over every multiplier (≤ 8·grid_points candidates per pass), re-centred on the
        best dual value and shrunk until the cells are tiny. The dual is convex, so the best grid point
        stays close to the minimizer; any remaining infeasibility is removed by the price shift."""
        d = len(uppers)
        per_dim = max(4, int((8 * self.grid) ** (1.0 / d) + 1e-9))
        lo, hi = np.zeros(d), uppers.astype(float).copy()
        best, at_best = np.zeros(d), None
        for _ in range(self.max_passes):
            axes = [np.linspace(lo[j], hi[j], per_dim) for j in range(d)]
            mults = np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T
            counts, value = self._eval(Candidates.plain(np.array([self.prices(m) for m in mults])))
            dual = self.dual(mults, counts, value)
            g = int(np.argmin(dual))
            best, at_best = mults[g], (counts[g], value[g])
            step = (hi - lo) / (per_dim - 1)
            if np.all(step <= uppers * rel_stop):
                break
            lo, hi = np.maximum(best - 1.5 * step, 0.0), np.minimum(best + 1.5 * step, uppers)
        return best, at_best

    def _fill(self, nu_hi: np.ndarray, nu_lo: np.ndarray):
        """Largest tie-hash threshold θ whose switched marginal customers keep every constraint."""
        a, b = 0.0, 1.0
        best = (0.0, None, None)
        for _ in range(1):  # the marginal set is a few customers: one grid is fine enough
            grid = np.linspace(a, b, self.grid)
            cands = Candidates(np.repeat(nu_hi[None, :], len(grid), 0), np.repeat(nu_lo[None, :], len(grid), 0), grid)
            counts, value = self._eval(cands)
            idx = np.nonzero(self.limits.feasible(counts))[0]
            if len(idx) == 0:
                break
            g = int(idx[-1])
            if grid[g] >= best[0]:
                best = (float(grid[g]), counts[g], value[g])
            if g == len(grid) - 1:
                break
            a, b = float(grid[g]), float(grid[g + 1])
        return best


def costs_for(arms: Sequence[str], econ) -> Tuple[float, ...]:
    return tuple(float(econ(a).cost) for a in arms)


__all__ = ["Solver", "Limits", "Allocation", "Candidates", "choose", "pick", "evaluate", "value_col"]
