"""Poisson bootstrap weights derived from a hash, and percentile intervals.

Why a Poisson bootstrap: resampling n rows with replacement needs a global view of the data, while
independent Poisson(1) counts per row approximate it for large n and can be drawn on the executors
row by row. Why a hash: the weight of a customer in replicate ``b`` is a pure function of
(customer, b, seed), so every pass over the data, every partitioning and every rerun sees the same
replicates (no random state to ship, nothing to collect), and two learners evaluated with the same
seed are compared on the same resamples (paired intervals).

The customer part of the hash is computed on Spark (``xxhash64(customer_id, seed)``); the replicate
index is mixed in here with the SplitMix64 finalizer, vectorized in NumPy. In a cluster-randomized
experiment (``data.cluster``) the hash is ``xxhash64(cluster_id, seed)`` instead: the cluster is the
resampled unit, every member shares its weight, and the intervals are cluster-robust.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

# P(Poisson(1) <= k) for k = 0..19; beyond 19 the tail is below 1e-17 (under one draw in 2^53).
_POISSON1_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(20)])


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z.copy()
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def replicate_uniforms(row_hash: np.ndarray, replicates: int) -> np.ndarray:
    """Uniforms in [0, 1) of shape (rows, replicates), a pure function of (row hash, replicate)."""
    h = np.asarray(row_hash, dtype=np.int64).view(np.uint64)
    b = np.arange(1, replicates + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = h[:, None] + b[None, :] * _GOLDEN
        z = _splitmix64(z)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def poisson_weights(row_hash: np.ndarray, replicates: int) -> np.ndarray:
    """Weights (rows, 1 + replicates): column 0 is the original sample (all ones), then Poisson(1) draws."""
    n = len(row_hash)
    out = np.ones((n, replicates + 1), dtype=np.float64)
    if replicates > 0 and n > 0:
        u = replicate_uniforms(row_hash, replicates)
        out[:, 1:] = np.searchsorted(_POISSON1_CDF, u, side="right")
    return out


def percentile_interval(draws: np.ndarray, level: float) -> Tuple[Optional[float], Optional[float]]:
    """Percentile interval of bootstrap draws; None when there are no finite draws."""
    draws = np.asarray(draws, dtype=float)
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None, None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def percentile_bands(draws: np.ndarray, level: float) -> Tuple[np.ndarray, np.ndarray]:
    """Row-wise percentile interval of a (points, replicates) array (NaN where nothing is finite)."""
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2 or draws.shape[1] == 0:
        nan = np.full(draws.shape[0] if draws.ndim else 0, np.nan)
        return nan, nan.copy()
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanquantile(draws, alpha, axis=1)
            high = np.nanquantile(draws, 1.0 - alpha, axis=1)
    return low, high
