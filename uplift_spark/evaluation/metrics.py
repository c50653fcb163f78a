"""Uplift metrics from one exact scan: normalized AUCs like scikit-uplift, raw areas, uplift@k, ATE.

Definitions (N rows, curve end point (N, Q) for Qini and (N, U) for uplift, areas by trapezoids):

* ``qini_auc``   = (A_qini - N*Q/2) / (A_perfect_qini - N*Q/2): ``sklift.metrics.qini_auc_score``
  (``negative_effect=True``). Binary outcomes only: sklift's perfect curve is defined through 0/1
  outcomes (it raises for other values), so for continuous outcomes this metric is not written.
* ``uplift_auc`` = the same with the uplift curve: ``sklift.metrics.uplift_auc_score``; binary only.
* ``qini_area`` / ``uplift_area``: the raw areas between each curve and its random line
  (rows x outcome units); defined for every outcome type.
* ``qini_coefficient`` = qini_area / N^2: Radcliffe's Qini coefficient on the unit square
  (x = share targeted, y = incremental outcome per customer). ``qini_auc`` is this value divided
  by the perfect model's; unlike it, it exists for continuous outcomes.
* ``auuc`` = A_uplift / N^2: area under the uplift curve on the unit square (a random ranking
  scores ATE/2).
* ``uplift_at_<k>``: ``sklift.metrics.uplift_at_k(strategy='overall', k=k/100)``: treated mean
  minus control mean among the first int(N*k/100) rows by score; ties at the cut-off are broken by
  id descending (see :mod:`.scan`). NaN when the top rows hold no treated or no control row.
* ``ate``: treated mean minus control mean; ``n``, ``n_treated``, ``n_control``: row counts.

Confidence intervals are bootstrap percentile intervals (see :mod:`.bootstrap`): each replicate
recomputes the metric on its own weighted data, perfect curves and cut-offs included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from .bootstrap import percentile_interval
from .curves import perfect_qini_area, perfect_uplift_area, qini_values, uplift_values


@dataclass(frozen=True)
class MetricRow:
    """One metric of one (learner, arm, outcome, split); CI bounds are None without replicates."""

    metric: str
    value: Optional[float]
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None


def uplift_at_name(percent: float) -> str:
    """``10.0`` → ``uplift_at_10``; ``12.5`` → ``uplift_at_12_5``."""
    text = f"{float(percent):g}".replace(".", "_")
    return f"uplift_at_{text}"


def cut_fractions(top_k_percents: Sequence[float]) -> tuple:
    out = []
    for pct in top_k_percents:
        if not 0.0 < float(pct) <= 100.0:
            raise ConfigError(f"evaluation.top_k_percents: {pct!r} must be in (0, 100]")
        out.append(float(pct) / 100.0)
    return tuple(out)


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _finite(x) -> Optional[float]:
    x = float(x)
    return x if np.isfinite(x) else None


def _row(name: str, draws: np.ndarray, level: float) -> MetricRow:
    value = _finite(draws[0])
    low, high = percentile_interval(draws[1:], level) if draws.shape[0] > 1 else (None, None)
    return MetricRow(name, value, low, high)


def metric_draws(scan, top_k_percents: Sequence[float], binary: bool) -> dict:
    """Every metric for the original sample (index 0) and each replicate, in row order."""
    n, n_t, y_t, y_c = scan.totals
    n_c = n - n_t
    q_end = qini_values(n, n_t, y_t, y_c)
    u_end = uplift_values(n, n_t, y_t, y_c)
    base_q = n * q_end / 2.0
    base_u = n * u_end / 2.0
    out = {
        "n": n, "n_treated": n_t, "n_control": n_c,
        "ate": _ratio(y_t, n_t) - _ratio(y_c, n_c),
    }
    if binary:
        out["qini_auc"] = _ratio(scan.qini_area - base_q, perfect_qini_area(n, n_t, y_t, y_c) - base_q)
        out["uplift_auc"] = _ratio(scan.uplift_area - base_u, perfect_uplift_area(n, n_t, y_t, y_c) - base_u)
    out["qini_area"] = scan.qini_area - base_q
    out["uplift_area"] = scan.uplift_area - base_u
    out["qini_coefficient"] = _ratio(scan.qini_area - base_q, n * n)
    out["auuc"] = _ratio(scan.uplift_area, n * n)
    for j, pct in enumerate(top_k_percents):
        c_n, c_t, c_yt, c_yc = scan.cuts[j]
        found = c_n > 0
        lift = _ratio(c_yt, c_t) - _ratio(c_yc, c_n - c_t)
        out[uplift_at_name(pct)] = np.where(found, lift, np.nan)
    return out


_COUNTS = ("n", "n_treated", "n_control")


def metrics_from_scan(scan, top_k_percents: Sequence[float], ci_level: float,
                      binary: Optional[bool] = None) -> List[MetricRow]:
    """Metric rows with bootstrap percentile intervals (counts carry no interval)."""
    binary = scan.binary if binary is None else bool(binary)
    rows = []
    for name, draws in metric_draws(scan, top_k_percents, binary).items():
        draws = np.asarray(draws, dtype=np.float64)
        if name in _COUNTS:
            rows.append(MetricRow(name, float(draws[0])))
        else:
            rows.append(_row(name, draws, ci_level))
    return rows

