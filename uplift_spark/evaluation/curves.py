"""Qini and uplift curve arithmetic, exactly as scikit-uplift 0.5 defines it.

scikit-uplift (``sklift.metrics.qini_curve`` / ``uplift_curve``) sorts rows by predicted uplift
descending and puts one curve point at the end of each block of tied scores, then prepends (0, 0).
At a point with ``n`` rows, ``n_t`` treated, ``y_t`` / ``y_c`` summed outcomes of treated / control::

    qini(n)   = y_t - y_c * n_t / n_c                      (the ratio is 0 where n_c = 0)
    uplift(n) = (y_t / n_t - y_c / n_c) * n                 (each mean is 0 where its count is 0)

Areas are trapezoids over consecutive points (``sklearn.metrics.auc``). These functions work on
NumPy arrays of cumulative sums; the distributed scan (:mod:`.scan`) feeds them per partition, and
the driver uses them again for the tiny "perfect" curves, so both paths share one definition.
All functions broadcast over a trailing replicate axis (column 0 = original sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np


def qini_values(n, n_t, y_t, y_c) -> np.ndarray:
    """Qini curve height from cumulative counts and outcome sums (sklift's formula and op order)."""
    n, n_t, y_t, y_c = (np.asarray(a, dtype=np.float64) for a in (n, n_t, y_t, y_c))
    n_c = n - n_t
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return y_t - y_c * ratio


def uplift_values(n, n_t, y_t, y_c) -> np.ndarray:
    """Uplift curve height (difference of means times the number of rows targeted)."""
    n, n_t, y_t, y_c = (np.asarray(a, dtype=np.float64) for a in (n, n_t, y_t, y_c))
    n_c = n - n_t
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return (rate_t - rate_c) * n


def trapezoid_area(x_prev, y_prev, x, y) -> np.ndarray:
    """Sum of trapezoids from a carried previous point through consecutive points (axis 0).

    ``x_prev``/``y_prev`` have the shape of one point (e.g. one value per replicate); ``x``/``y``
    have shape (points, ...). Returns one area per trailing index.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] == 0:
        return np.zeros(np.shape(x_prev), dtype=np.float64)
    xs = np.concatenate([np.asarray(x_prev, dtype=np.float64)[None, ...], x], axis=0)
    ys = np.concatenate([np.asarray(y_prev, dtype=np.float64)[None, ...], y], axis=0)
    return np.sum(np.diff(xs, axis=0) * (ys[1:] + ys[:-1]) / 2.0, axis=0)


def block_curve(blocks: Sequence[Tuple[float, float, float, float]]):
    """Curve (x, qini, uplift) of a few score blocks given in descending score order.

    Each block is (rows, treated rows, treated outcome sum, control outcome sum); arrays may carry a
    trailing replicate axis. Empty blocks add a point with dx = 0, which leaves every area unchanged
    (sklift would simply have no threshold there). The curve starts at (0, 0).
    """
    arr = np.asarray(blocks, dtype=np.float64)  # (blocks, 4, ...)
    cum = np.cumsum(arr, axis=0)
    n, n_t, y_t, y_c = cum[:, 0], cum[:, 1], cum[:, 2], cum[:, 3]
    zero = np.zeros_like(n[:1])
    x = np.concatenate([zero, n])
    q = np.concatenate([zero, qini_values(n, n_t, y_t, y_c)])
    u = np.concatenate([zero, uplift_values(n, n_t, y_t, y_c)])
    return x, q, u


def _cells(n, n_t, y_t, y_c):
    """Weighted counts of the four (treatment, binary outcome) cells."""
    n_c = n - n_t
    return {"t1y1": y_t, "t1y0": n_t - y_t, "t0y1": y_c, "t0y0": n_c - y_c}


def perfect_qini_area(n, n_t, y_t, y_c) -> np.ndarray:
    """Area under sklift's ``perfect_qini_curve(negative_effect=True)`` for a binary outcome.

    sklift scores rows with ``y*t - y*(1-t)``: treated responders (1) first, then all non-responders
    (0), then control responders (-1). Only the four cell counts matter, so no data pass is needed.
    """
    c = _cells(n, n_t, y_t, y_c)
    z = np.zeros_like(np.asarray(n, dtype=np.float64))
    blocks = [
        (c["t1y1"], c["t1y1"], c["t1y1"], z),
        (c["t1y0"] + c["t0y0"], c["t1y0"], z, z),
        (c["t0y1"], z, z, c["t0y1"]),
    ]
    x, q, _ = block_curve(blocks)
    return trapezoid_area(x[0], q[0], x[1:], q[1:])


def perfect_uplift_area(n, n_t, y_t, y_c) -> np.ndarray:
    """Area under sklift's ``perfect_uplift_curve`` for a binary outcome.

    sklift scores rows with ``2*(y == t) + s`` where ``s = y`` if control responders outnumber treated
    non-responders, else ``s = t``: treated responders (3), control non-responders (2), then the
    remaining two cells in an order that depends on that comparison (decided per replicate).
    """
    c = _cells(n, n_t, y_t, y_c)
    z = np.zeros_like(np.asarray(n, dtype=np.float64))
    cr_gt_tn = c["t0y1"] > c["t1y0"]
    # score 1 goes to control responders when cr > tn, else to treated non-responders
    third_cr = np.where(cr_gt_tn, c["t0y1"], z)
    third_tn = np.where(cr_gt_tn, z, c["t1y0"])
    fourth_cr = np.where(cr_gt_tn, z, c["t0y1"])
    fourth_tn = np.where(cr_gt_tn, c["t1y0"], z)
    blocks = [
        (c["t1y1"], c["t1y1"], c["t1y1"], z),
        (c["t0y0"], z, z, z),
        (third_cr + third_tn, third_tn, z, third_cr),
        (fourth_cr + fourth_tn, fourth_tn, z, fourth_cr),
    ]
    x, _, u = block_curve(blocks)
    return trapezoid_area(x[0], u[0], x[1:], u[1:])


@dataclass(frozen=True)
class CurveResult:
    """A sampled exact curve plus the exact areas of the full curve.

    ``points`` (pandas) has one row per sampled point: point, n, n_t, n_c, y_t, y_c, qini, uplift and
    the bootstrap band qini_low/high, uplift_low/high (NaN without replicates). Point 0 is the
    origin and the last point is the exact end of the curve. ``qini_area`` / ``uplift_area`` are the
    raw trapezoid areas under the FULL curves (every tie block), in rows x outcome units.
    """

    points: "object"
    qini_area: float
    uplift_area: float
    n: int
    n_t: int
    n_c: int
    y_t: float
    y_c: float


def sample_targets(n_total: int, curve_points: int) -> np.ndarray:
    """Row counts the sampled curve aims at: 1..curve_points-1 equal steps up to ``n_total``.

    The sampled point for a target is the first curve point at or beyond it, so the end point is
    always kept and every sampled point is an exact point of the full curve.
    """
    steps = max(int(curve_points) - 1, 1)
    j = np.arange(1, steps + 1, dtype=np.int64)
    return -((-j * int(n_total)) // steps)  # ceil(j * n / steps)


def array_split_bounds(n_total: int, bins: int) -> np.ndarray:
    """End positions (exclusive) of ``np.array_split(range(n_total), bins)``: the first
    ``n_total % bins`` bins hold one extra row (sklift's ``uplift_by_percentile`` binning)."""
    base, extra = divmod(int(n_total), int(bins))
    sizes = np.full(int(bins), base, dtype=np.int64)
    sizes[:extra] += 1
    return np.cumsum(sizes)


CURVE_COLUMNS = ("point", "n", "n_t", "n_c", "y_t", "y_c", "qini", "uplift",
                 "qini_low", "qini_high", "uplift_low", "uplift_high")


def curve_frame(points: np.ndarray, ci_level: float):
    """Sampled points (P, 4, B+1) → pandas table with values and bootstrap percentile bands.

    The band at a point is over replicates evaluated at the SAME score threshold (same rows
    targeted), so it is a vertical band at the point's original x.
    """
    import pandas as pd

    from .bootstrap import percentile_bands

    n, n_t, y_t, y_c = points[:, 0], points[:, 1], points[:, 2], points[:, 3]
    q = qini_values(n, n_t, y_t, y_c)
    u = uplift_values(n, n_t, y_t, y_c)
    q_low, q_high = percentile_bands(q[:, 1:], ci_level)
    u_low, u_high = percentile_bands(u[:, 1:], ci_level)
    return pd.DataFrame({
        "point": np.arange(len(points), dtype=np.int64),
        "n": np.rint(n[:, 0]).astype(np.int64), "n_t": np.rint(n_t[:, 0]).astype(np.int64),
        "n_c": np.rint(n[:, 0] - n_t[:, 0]).astype(np.int64),
        "y_t": y_t[:, 0], "y_c": y_c[:, 0], "qini": q[:, 0], "uplift": u[:, 0],
        "qini_low": q_low, "qini_high": q_high, "uplift_low": u_low, "uplift_high": u_high,
    })

