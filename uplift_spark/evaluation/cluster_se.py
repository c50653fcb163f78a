"""Cluster-robust variance of a mean (or a difference of arm means) from per-cluster sums.

Why: in a cluster-randomized experiment customers of one cluster are correlated, so the customer-level
variance understates the uncertainty. The ratio estimator ``m = sum(S_c) / sum(n_c)`` (``S_c``: a
cluster's sum of scores or outcomes, ``n_c``: its customers) has the linearized (CR1) variance
``G / (G - 1) * sum((S_c - m n_c)^2) / N^2`` (as in ``maq``/``grf`` with ``clusters``). Everything here
is a function of six per-group moments, so a Spark job aggregates clusters twice and returns a handful of
numbers per group (:mod:`.cluster_agg`); the NumPy functions take either the per-cluster arrays or the
moments. With one customer per cluster the variance is the usual ``sum((y - m)^2) / (N (N - 1))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class ClusterMoments:
    """``G`` clusters, ``N`` customers, sums of ``S_c``, ``S_c^2``, ``S_c n_c`` and ``n_c^2``."""

    clusters: float
    n: float
    s: float
    ss: float
    sn: float
    nn: float

    @classmethod
    def of(cls, sums, counts) -> "ClusterMoments":
        s = np.asarray(sums, dtype=np.float64)
        n = np.asarray(counts, dtype=np.float64)
        if s.shape != n.shape:
            raise ValueError(f"cluster sums and counts differ in shape: {s.shape} vs {n.shape}")
        return cls(float(s.size), float(n.sum()), float(s.sum()), float((s * s).sum()), float((s * n).sum()),
                   float((n * n).sum()))


def mean_se(m: ClusterMoments) -> Tuple[float, float]:
    """``(mean, cluster-robust SE)`` of the per-customer mean; NaN SE below two clusters."""
    if m.n <= 0:
        return float("nan"), float("nan")
    mean = m.s / m.n
    if m.clusters < 2:
        return mean, float("nan")
    resid = max(m.ss - 2.0 * mean * m.sn + mean * mean * m.nn, 0.0)
    var = m.clusters / (m.clusters - 1.0) * resid / (m.n * m.n)
    return mean, float(np.sqrt(var))


def cluster_mean_se(sums, counts) -> Tuple[float, float]:
    """:func:`mean_se` from per-cluster arrays (sum of the score, customers) of one arm or population."""
    return mean_se(ClusterMoments.of(sums, counts))


def difference_se(treated: ClusterMoments, control: ClusterMoments) -> Tuple[float, float]:
    """``(mean_t - mean_c, SE)``: clusters are randomized whole, so the arms are independent."""
    mt, st = mean_se(treated)
    mc, sc = mean_se(control)
    return mt - mc, float(np.sqrt(st * st + sc * sc))


def cluster_difference_se(sums_t, counts_t, sums_c, counts_c) -> Tuple[float, float]:
    """:func:`difference_se` from per-cluster arrays of the treated and the control arm."""
    return difference_se(ClusterMoments.of(sums_t, counts_t), ClusterMoments.of(sums_c, counts_c))


__all__ = ["ClusterMoments", "cluster_difference_se", "cluster_mean_se", "difference_se", "mean_se"]
