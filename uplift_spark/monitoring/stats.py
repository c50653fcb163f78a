"""Pure NumPy drift and interval statistics, shared by every monitor and checked directly in tests.

Conventions (documented once here, used everywhere):

* **PSI** (population stability index) over the reference buckets: ``Σ (q − p) · ln(q / p)`` with ``p``
  the reference share and ``q`` the batch share of each bucket. Empty buckets would make the log
  infinite, so both share vectors are floored at ``epsilon`` (``monitoring.psi_epsilon``, default 1e-4)
  and re-normalised before the sum. A bucket empty on both sides then contributes exactly 0.
* **Binned KS**: the Kolmogorov–Smirnov statistic evaluated on the reference quantile grid only,
  ``max_j |F_ref(e_j) − F_new(e_j)|`` at the bin edges ``e_j``. It is a lower bound of the exact KS
  statistic (exact at the edges) and needs no raw reference rows.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

OK, WARN, ALERT = "ok", "warn", "alert"
_RANK = {OK: 0, WARN: 1, ALERT: 2}


def smoothed_shares(shares: Sequence[float], epsilon: float) -> np.ndarray:
    """Floor shares at ``epsilon`` and renormalise, so PSI stays finite on empty buckets."""
    arr = np.asarray(shares, dtype=float)
    if arr.size == 0:
        return arr
    arr = np.maximum(arr, epsilon)
    return arr / arr.sum()


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` bucket shares (same buckets)."""
    p = np.asarray(reference, dtype=float)
    q = np.asarray(current, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"psi: reference has {p.size} buckets, current has {q.size}")
    if p.size == 0 or q.sum() <= 0 or p.sum() <= 0:
        return float("nan")
    p = smoothed_shares(p / p.sum(), epsilon)
    q = smoothed_shares(q / q.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def binned_ks(reference: Sequence[float], current: Sequence[float]) -> float:
    """Max |F_ref − F_new| at the reference bin edges (cumulative shares of the value bins)."""
    p = np.asarray(reference, dtype=float)
    q = np.asarray(current, dtype=float)
    if p.size < 2 or p.sum() <= 0 or q.sum() <= 0:
        return 0.0 if p.size == 1 else float("nan")
    cp = np.cumsum(p / p.sum())[:-1]
    cq = np.cumsum(q / q.sum())[:-1]
    return float(np.max(np.abs(cp - cq)))


def level(value: Optional[float], warn: float, alert: Optional[float] = None) -> str:
    """ok / warn / alert for a metric where larger is worse (NaN or None is ok: nothing to judge)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return OK
    if alert is not None and value >= alert:
        return ALERT
    if value >= warn:
        return WARN
    return OK


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 0)) if statuses else OK


def welch_interval(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int,
                   ci_level: float = 0.95) -> Tuple[float, float, float, float, float]:
    """Difference of means with a Welch t interval: (diff, se, low, high, df).

    Welch–Satterthwaite degrees of freedom; with huge groups the t quantile becomes the normal one.
    Sample variances (ddof=1) are expected.
    """
    from scipy import stats

    diff = mean_t - mean_c
    if n_t < 2 or n_c < 2:
        return diff, float("nan"), float("nan"), float("nan"), float("nan")
    a, b = var_t / n_t, var_c / n_c
    se = math.sqrt(a + b)
    if se == 0.0:
        return diff, 0.0, diff, diff, float(n_t + n_c - 2)
    dof = (a + b) ** 2 / ((a * a) / (n_t - 1) + (b * b) / (n_c - 1)) if (a > 0 or b > 0) else float(n_t + n_c - 2)
    q = float(stats.t.ppf(0.5 + ci_level / 2.0, dof))
    return diff, se, diff - q * se, diff + q * se, float(dof)
