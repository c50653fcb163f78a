"""Held-out calibration of predicted uplift: what a predicted uplift of x turned out to be worth.

Why: ``decisions.expected_uplift`` is the model's own prediction and, on Hillstrom, overstates the
held-out value several times. The CRM needs a number it can plan with, so each arm's prediction is mapped
through the observed uplift per predicted-uplift bin on held-out randomized customers (the ``valid``
split, never the ``test`` split that evaluate-policy uses to judge the policy), made monotone in the
prediction with weighted isotonic regression (pool adjacent violators), and interpolated linearly between
the bins' mean predictions (flat beyond the outer bins, so no extrapolation past the data).

The bin sums come from one Spark aggregation (quantile edges from ``approxQuantile``); the map itself is
pure NumPy and is applied on Spark as a ``CASE WHEN`` expression (no Python UDF).

Bin b of arm k holds the held-out customers in arm k or control whose predicted uplift for k falls in
the bin; observed uplift = (weighted) treated mean − control mean, weights 1/e (design propensities)
when given, else 1 (equal propensity within an arm). Isotonic weights are n_t·n_c/(n_t + n_c), the
effective size of a difference of two means.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PolicyError

# per-bin sums from Spark: n_t, n_c, Σw_t, Σw_c, Σw_t·y, Σw_c·y, Σ predicted (over both sides)
BIN_SUMS = ("n_t", "n_c", "sw_t", "sw_c", "swy_t", "swy_c", "s_pred")


def isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (in the given order): pool adjacent violators."""
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    vals: List[float] = []
    wts: List[float] = []
    sizes: List[int] = []
    for yi, wi in zip(y, w):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            merged = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            size = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [merged], [wsum], [size]
    return np.repeat(np.asarray(vals), sizes)


@dataclasses.dataclass(frozen=True)
class ArmCalibration:
    """Knots of one arm's map: mean predicted uplift per bin → monotone observed uplift."""

    arm: str
    predicted: Tuple[float, ...]
    calibrated: Tuple[float, ...]
    observed: Tuple[float, ...]
    customers: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        """NumPy reference of :meth:`expression` (NaN stays NaN)."""
        x = np.asarray(x, dtype=float)
        out = np.interp(x, np.asarray(self.predicted), np.asarray(self.calibrated))
        return np.where(np.isnan(x), np.nan, out)

    def expression(self, col):
        """The same piecewise-linear map as a Spark column expression over ``col``."""
        from pyspark.sql import functions as F

        xs, ys = self.predicted, self.calibrated
        x = col.cast("double")
        expr = F.when(x <= F.lit(xs[0]), F.lit(ys[0]))
        for (x0, y0), (x1, y1) in zip(zip(xs[:-1], ys[:-1]), zip(xs[1:], ys[1:])):
            slope = (y1 - y0) / (x1 - x0)
            expr = expr.when(x <= F.lit(x1), F.lit(y0) + (x - F.lit(x0)) * F.lit(slope))
        return F.when(x.isNull(), F.lit(None).cast("double")).otherwise(expr.otherwise(F.lit(ys[-1])))


def fit_arm(arm: str, sums: np.ndarray) -> Optional[ArmCalibration]:
    """The map of one arm from its per-bin sums (rows in increasing predicted order, :data:`BIN_SUMS`).

    Bins without a treated or a control customer are dropped; None when fewer than one bin remains.
    Knots with equal mean prediction are pooled so the map is a function.
    """
    s = np.asarray(sums, dtype=float).reshape(-1, len(BIN_SUMS))
    n_t, n_c, sw_t, sw_c, swy_t, swy_c, s_pred = s.T
    keep = (n_t > 0) & (n_c > 0) & (sw_t > 0) & (sw_c > 0)
    if not keep.any():
        return None
    n_t, n_c, sw_t, sw_c, swy_t, swy_c, s_pred = (a[keep] for a in (n_t, n_c, sw_t, sw_c, swy_t, swy_c, s_pred))
    observed = swy_t / sw_t - swy_c / sw_c
    pred = s_pred / (n_t + n_c)
    weight = n_t * n_c / (n_t + n_c)
    order = np.argsort(pred, kind="mergesort")
    pred, observed, weight = pred[order], observed[order], weight[order]
    # pool equal predictions (constant or heavily tied scores)
    xs, idx = np.unique(pred, return_inverse=True)
    wsum = np.bincount(idx, weights=weight)
    obs = np.bincount(idx, weights=weight * observed) / wsum
    fitted = isotonic(obs, wsum)
    return ArmCalibration(arm=arm, predicted=tuple(float(v) for v in xs), calibrated=tuple(float(v) for v in fitted),
                          observed=tuple(float(v) for v in obs), customers=int(n_t.sum() + n_c.sum()))


def quantile_edges(values: Sequence[float]) -> List[float]:
    """Inner bin edges (sorted, unique, finite) from approximate quantiles."""
    out = sorted({float(v) for v in values if v is not None and np.isfinite(v)})
    return out


def bin_index(col, edges: Sequence[float]):
    """Spark column: 0..len(edges) (bin b holds edges[b-1] < x ≤ edges[b])."""
    from pyspark.sql import functions as F

    if not edges:
        return F.lit(0)
    expr = F.when(col <= F.lit(edges[0]), F.lit(0))
    for b, e in enumerate(edges[1:], start=1):
        expr = expr.when(col <= F.lit(e), F.lit(b))
    return expr.otherwise(F.lit(len(edges)))


def bin_sums(df, arms: Sequence[str], n_bins: int, weight_col: Optional[str] = None,
             relative_error: float = 1e-3) -> Dict[str, np.ndarray]:
    """Per arm the :data:`BIN_SUMS` matrix (bins in increasing order) from one customer-level frame.

    ``df`` columns: ``w`` (arm index 0..K, 0 = control), ``y``, ``pred_<k>`` (predicted uplift of arm k,
    k = 1..K in ``arms`` order) and, optionally, ``weight_col`` (1/e of the customer's own arm). Quantile
    edges and sums are Spark aggregations: only bins × arms numbers reach the driver.
    """
    from pyspark.sql import functions as F

    k_arms = len(arms)
    cols = [f"pred_{k}" for k in range(1, k_arms + 1)]
    probs = [i / float(n_bins) for i in range(1, n_bins)]
    out: Dict[str, np.ndarray] = {}
    wt = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    y = F.col("y").cast("double")
    for k, arm in enumerate(arms, start=1):
        side = df.where(F.col("w").isin(0, k) & F.col(f"pred_{k}").isNotNull())
        edges = quantile_edges(side.approxQuantile(cols[k - 1], probs, relative_error)) if probs else []
        t = F.col("w") == k
        c = F.col("w") == 0
        rows = (side.select(bin_index(F.col(f"pred_{k}"), edges).alias("b"), t.alias("t"), c.alias("c"),
                            wt.alias("wt"), y.alias("yy"), F.col(f"pred_{k}").cast("double").alias("p"))
                .groupBy("b").agg(
                    F.sum(F.col("t").cast("double")).alias("n_t"), F.sum(F.col("c").cast("double")).alias("n_c"),
                    F.sum(F.when(F.col("t"), F.col("wt")).otherwise(0.0)).alias("sw_t"),
                    F.sum(F.when(F.col("c"), F.col("wt")).otherwise(0.0)).alias("sw_c"),
                    F.sum(F.when(F.col("t"), F.col("wt") * F.col("yy")).otherwise(0.0)).alias("swy_t"),
                    F.sum(F.when(F.col("c"), F.col("wt") * F.col("yy")).otherwise(0.0)).alias("swy_c"),
                    F.sum("p").alias("s_pred"))
                .collect())
        rows = sorted(rows, key=lambda r: int(r["b"]))
        out[arm] = np.array([[float(r[f] or 0.0) for f in BIN_SUMS] for r in rows], dtype=float).reshape(-1, len(BIN_SUMS))
    return out


def fit(sums: Dict[str, np.ndarray]) -> Dict[str, ArmCalibration]:
    """Every arm's map; an arm without treated and control customers on the split is an error."""
    out = {}
    for arm, s in sums.items():
        cal = fit_arm(arm, s)
        if cal is None:
            raise PolicyError(f"policy calibration: no bin of arm {arm!r} has both treated and control customers "
                              "on the calibration split")
        out[arm] = cal
    return out


__all__ = ["ArmCalibration", "BIN_SUMS", "bin_index", "bin_sums", "fit", "fit_arm", "isotonic", "quantile_edges"]
