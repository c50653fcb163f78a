"""Held-out value of decision rules on randomized data: IPW, self-normalized IPW and AIPW (pure NumPy).

Why per-customer scores: every estimate here is a mean of per-customer scores (or a smooth function of a
few such means), so its standard error comes from the influence function — the scores' own covariance —
and a paired difference between two policies is a contrast of the *same* customers' scores (much tighter
than comparing two independent intervals). Spark only adds up scores, squares and cross products
(:class:`Moments`, one pass, nothing collected but the sums); this module defines the scores and turns the
sums into estimates, SEs, CIs and p-values.

Notation: arms 0..K, 0 = control. A policy is a per-customer allocation π_ik (one-hot for a rule,
a constant share vector for random targeting). e_ik = P(W_i = k | x_i) from the design; μ_k(x) outcome
models fitted on the train split only. With benefit b_k per unit of uplift and cost c_k of arm k, the
policy's value per customer is E[Σ_k ω_ik Y_i(k)] − E[Σ_k π_ik c_k] with ω_ik = π_ik b_k (k ≥ 1) and
ω_i0 = 1 − Σ_{k≥1} π_ik b_k (so Σ_k ω_ik = 1, and ω = π when every benefit is 1):

* AIPW  Γ_ik = μ_k(x_i) + 1{W_i = k}(Y_i − μ_k(x_i)) / e_ik,  score_i = Σ_k ω_ik Γ_ik − cost_i
* IPW   score_i = w_i Y_i − cost_i  with  w_i = ω_{i,W_i} / e_{i,W_i}
* SNIPW mean(w Y) / mean(w) − mean(cost)  (delta method for its SE)

Cluster-robust SEs: scores are summed per cluster first and the cluster sums are the independent units
(``Moments.from_rows(z, cluster=...)``); without clusters every customer is its own cluster.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

ESTIMATORS = ("aipw", "ipw", "snipw")


# ----------------------------------------------------------------------------------------- scores


def aipw_scores(y: np.ndarray, w: np.ndarray, mu: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Γ (n × (K+1)): Γ_ik = μ_ik + 1{W_i = k}(Y_i − μ_ik)/e_ik. ``w`` holds arm indexes 0..K."""
    y, w = np.asarray(y, dtype=float), np.asarray(w, dtype=int)
    mu, e = np.asarray(mu, dtype=float), np.asarray(e, dtype=float)
    hit = (w[:, None] == np.arange(mu.shape[1])[None, :])
    return mu + hit * (y[:, None] - mu) / e


def ipw_scores(y: np.ndarray, w: np.ndarray, e: np.ndarray) -> np.ndarray:
    """1{W_i = k} Y_i / e_ik (n × (K+1))."""
    y, w, e = np.asarray(y, dtype=float), np.asarray(w, dtype=int), np.asarray(e, dtype=float)
    hit = (w[:, None] == np.arange(e.shape[1])[None, :])
    return hit * y[:, None] / e


def outcome_weights(pi: np.ndarray, benefits: Sequence[float]) -> np.ndarray:
    """ω from π (both n × (K+1), column 0 = control): ω_k = π_k b_k, ω_0 = 1 − Σ_{k≥1} π_k b_k."""
    pi = np.asarray(pi, dtype=float)
    b = np.asarray(benefits, dtype=float)
    omega = pi.copy()
    omega[:, 1:] = pi[:, 1:] * b[None, :]
    omega[:, 0] = 1.0 - omega[:, 1:].sum(axis=1)
    return omega


def policy_columns(pi: np.ndarray, y, w, e, gamma: np.ndarray, benefits: Sequence[float],
                   costs: Sequence[float]) -> Dict[str, np.ndarray]:
    """Per-customer columns every estimator of one policy is built from (see the module docstring):
    ``aipw``, ``ipw`` (both net of cost), ``weight`` (w_i, for SNIPW), ``cost`` and ``arm_<k>`` = π_ik."""
    pi = np.asarray(pi, dtype=float)
    y, w, e = np.asarray(y, dtype=float), np.asarray(w, dtype=int), np.asarray(e, dtype=float)
    omega = outcome_weights(pi, benefits)
    cost = pi[:, 1:] @ np.asarray(costs, dtype=float)
    rows = np.arange(len(y))
    weight = omega[rows, w] / e[rows, w]
    out = {"aipw": (omega * gamma).sum(axis=1) - cost, "ipw": weight * y - cost, "weight": weight, "cost": cost}
    for k in range(1, pi.shape[1]):
        out[f"arm_{k}"] = pi[:, k]
    return out


# ----------------------------------------------------------------------------------------- moments


@dataclasses.dataclass
class Moments:
    """Sums over independent units u_g = (Z_g, n_g): count G, Σ u and Σ u uᵀ.

    Z_g is the sum of the score vectors of unit g's customers and n_g its number of customers (1 for
    every unit without clusters). Sums add across partitions, so Spark computes them in one pass.
    """

    units: float
    total: np.ndarray  # (m + 1,)
    cross: np.ndarray  # (m + 1, m + 1)

    @staticmethod
    def empty(m: int) -> "Moments":
        return Moments(0.0, np.zeros(m + 1), np.zeros((m + 1, m + 1)))

    @staticmethod
    def from_rows(z: np.ndarray, cluster: Optional[np.ndarray] = None) -> "Moments":
        z = np.asarray(z, dtype=float)
        if z.ndim == 1:
            z = z[:, None]
        if cluster is None:
            u = np.hstack([z, np.ones((len(z), 1))])
        else:
            keys, inv = np.unique(np.asarray(cluster), return_inverse=True)
            u = np.zeros((len(keys), z.shape[1] + 1))
            np.add.at(u[:, :-1], inv, z)
            np.add.at(u[:, -1], inv, 1.0)
        return Moments.from_units(u)

    @staticmethod
    def from_units(u: np.ndarray) -> "Moments":
        u = np.asarray(u, dtype=float)
        return Moments(float(len(u)), u.sum(axis=0), u.T @ u)

    def extend(self, rows: np.ndarray) -> "Moments":
        """Moments of [z, A z] from those of z: derived columns (linear in z) without another pass.

        ``rows`` is A (r × m, or r × (m+1) with a constant per customer last). Baselines whose scores are fixed mixtures of per-arm scores (random
        targeting, one arm for a random share) are built this way on the driver."""
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        m = len(self.total) - 1
        t = np.zeros((m + len(rows) + 1, m + 1))
        t[:m, :m] = np.eye(m)
        t[m:m + len(rows), :rows.shape[1]] = rows  # a column m+1 is a constant per customer (via n_g)
        t[-1, -1] = 1.0
        return Moments(self.units, t @ self.total, t @ self.cross @ t.T)

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.units + other.units, self.total + other.total, self.cross + other.cross)

    @property
    def n(self) -> float:
        return float(self.total[-1])

    def mean(self) -> np.ndarray:
        return self.total[:-1] / self.n

    def cov_of_mean(self) -> np.ndarray:
        """Covariance of the mean vector: G/(G−1) · Σ_g (Z_g − n_g m)(Z_g − n_g m)ᵀ / n²."""
        m = self.mean()
        s_zz, s_zn, s_nn = self.cross[:-1, :-1], self.cross[:-1, -1], self.cross[-1, -1]
        d = s_zz - np.outer(s_zn, m) - np.outer(m, s_zn) + s_nn * np.outer(m, m)
        g = self.units
        if g < 2:
            return np.full_like(d, np.nan)
        return g / (g - 1.0) * d / (self.n ** 2)


# ----------------------------------------------------------------------------------------- estimates


@dataclasses.dataclass(frozen=True)
class Estimate:
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def z_value(ci_level: float) -> float:
    return NormalDist().inv_cdf(0.5 + ci_level / 2.0)


def finish(estimate: float, var: float, ci_level: float) -> Estimate:
    """Normal-theory CI and two-sided p-value of H0: the quantity is 0."""
    se = math.sqrt(var) if var is not None and np.isfinite(var) and var >= 0 else float("nan")
    z = z_value(ci_level)
    if se > 0:
        p = 2.0 * (1.0 - NormalDist().cdf(abs(estimate) / se))
    else:
        p = float("nan") if not np.isfinite(se) else (0.0 if estimate != 0 else 1.0)
    return Estimate(float(estimate), se, float(estimate - z * se), float(estimate + z * se), float(p))


def delta(mom: Moments, f: Callable[[np.ndarray], Tuple[float, np.ndarray]], ci_level: float) -> Estimate:
    """f(mean) with its gradient → delta-method estimate (exact for linear f)."""
    value, grad = f(mom.mean())
    return finish(value, float(grad @ mom.cov_of_mean() @ grad), ci_level)


class Layout:
    """Column indexes of the score vector: named blocks, one column each (``name`` → index)."""

    def __init__(self):
        self.index: Dict[str, int] = {}

    def add(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.index)
        return self.index[name]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, name: str) -> int:
        return self.index[name]

    @property
    def names(self):
        return list(self.index)


def value_function(layout: Layout, policy: str, estimator: str, sign: float = 1.0):
    """(value, gradient) of one policy's value (net of cost) under ``estimator``, as f(mean vector)."""
    m = len(layout)
    if estimator in ("aipw", "ipw"):
        j = layout[f"{policy}|{estimator}"]

        def f(mean):
            g = np.zeros(m)
            g[j] = sign
            return sign * mean[j], g
        return f
    if estimator == "snipw":
        a, b, c = layout[f"{policy}|ipw"], layout[f"{policy}|weight"], layout[f"{policy}|cost"]

        def f(mean):
            # mean(wY) = mean(ipw) + mean(cost); SN value = mean(wY)/mean(w) − mean(cost)
            num, den = mean[a] + mean[c], mean[b]
            g = np.zeros(m)
            g[a] += sign / den
            g[c] += sign * (1.0 / den - 1.0)
            g[b] += -sign * num / den ** 2
            return sign * (num / den - mean[c]), g
        return f
    raise ValueError(f"unknown estimator {estimator!r}")


def value(mom: Moments, layout: Layout, policy: str, estimator: str, ci_level: float = 0.95) -> Estimate:
    return delta(mom, value_function(layout, policy, estimator), ci_level)


def difference(mom: Moments, layout: Layout, policy: str, baseline: str, estimator: str,
               ci_level: float = 0.95) -> Estimate:
    """Paired difference value(policy) − value(baseline) on the same customers."""
    fa = value_function(layout, policy, estimator)
    fb = value_function(layout, baseline, estimator, sign=-1.0)

    def f(mean):
        va, ga = fa(mean)
        vb, gb = fb(mean)
        return va + vb, ga + gb
    return delta(mom, f, ci_level)


def linear(mom: Moments, weights: Dict[int, float], ci_level: float = 0.95) -> Estimate:
    """Σ_j a_j · mean_j (e.g. a curve point, an area under a curve or between two curves)."""
    g = np.zeros(len(mom.total) - 1)
    for j, a in weights.items():
        g[j] += a
    return delta(mom, lambda mean: (float(g @ mean), g), ci_level)


__all__ = ["p_text", "aipw_scores", "ipw_scores", "outcome_weights", "policy_columns", "Moments", "Estimate", "Layout",
           "value", "difference", "linear", "finish", "delta", "z_value", "ESTIMATORS"]


def p_text(p_value: float) -> str:
    """``p=0.031`` for display; a p-value that underflows to 0 reads ``p<1e-15`` rather than ``p=0``."""
    if p_value != p_value:  # NaN: no test
        return "p=n/a"
    return "p<1e-15" if p_value < 1e-15 else f"p={p_value:.3g}"
