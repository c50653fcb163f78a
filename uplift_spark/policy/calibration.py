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

The map is noisy where the bins are small or the outcome heavy-tailed (isotonic fits lean upward at the
top, where the chosen customers sit), so a sum of calibrated values comes with a standard error: given
the pooling the fit chose, every knot is a fixed linear combination of the bins' observed uplifts, and a
sum of interpolated values is linear in the knots, so its variance is Σ_b loading_b² · Var(observed_b)
with Var(observed_b) = s²_t/n_t + s²_c/n_c from the bins' sums of squares (:meth:`ArmCalibration.sum_se`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PolicyError

# per-bin sums from Spark: n_t, n_c, Σw_t, Σw_c, Σw_t·y, Σw_c·y, Σ predicted (over both sides), Σw_t·y², Σw_c·y²
BIN_SUMS = ("n_t", "n_c", "sw_t", "sw_c", "swy_t", "swy_c", "s_pred", "swyy_t", "swyy_c")


def isotonic_blocks(y: np.ndarray, w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares non-decreasing fit of ``y`` (in the given order) by pool adjacent violators:
    (the fitted value of each block, the number of consecutive points in each block)."""
    vals: List[float] = []
    wts: List[float] = []
    sizes: List[int] = []
    for yi, wi in zip(np.asarray(y, dtype=float), np.asarray(w, dtype=float)):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            merged = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            size = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [merged], [wsum], [size]
    return np.asarray(vals), np.asarray(sizes, dtype=int)


def isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (in the given order): pool adjacent violators."""
    vals, sizes = isotonic_blocks(y, w)
    return np.repeat(vals, sizes)


def hat_weights(x: np.ndarray, knots: Sequence[float]) -> np.ndarray:
    """n × knots matrix: the weight of each knot in the piecewise-linear interpolation at ``x`` (flat beyond
    the outer knots), so ``hat_weights(x, xs) @ ys == np.interp(x, xs, ys)``; NaN rows are all zero."""
    xs = np.asarray(knots, dtype=float)
    x = np.asarray(x, dtype=float)
    out = np.zeros((len(x), len(xs)))
    ok = ~np.isnan(x)
    xc = np.clip(x[ok], xs[0], xs[-1])
    if len(xs) == 1:
        out[ok, 0] = 1.0
        return out
    j = np.clip(np.searchsorted(xs, xc, side="right") - 1, 0, len(xs) - 2)
    lam = (xc - xs[j]) / (xs[j + 1] - xs[j])
    rows = np.flatnonzero(ok)
    out[rows, j] = 1.0 - lam
    out[rows, j + 1] += lam
    return out


@dataclasses.dataclass(frozen=True)
class ArmCalibration:
    """Knots of one arm's map: mean predicted uplift per bin → monotone observed uplift.

    ``loadings`` (knots × bins) writes each calibrated knot as a combination of the bins' observed
    uplifts; ``bin_var`` is each bin's sampling variance: together they give :meth:`sum_se`.
    """

    arm: str
    predicted: Tuple[float, ...]
    calibrated: Tuple[float, ...]
    observed: Tuple[float, ...]
    customers: int
    loadings: Tuple[Tuple[float, ...], ...] = ()
    bin_var: Tuple[float, ...] = ()

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

    def hat_expressions(self, col) -> list:
        """Spark columns of :func:`hat_weights`: knot j's interpolation weight at ``col`` (0 for null)."""
        from pyspark.sql import functions as F

        xs = self.predicted
        x = col.cast("double")
        out = []
        for j, xj in enumerate(xs):
            w = F.lit(0.0)
            if j + 1 < len(xs):  # falling edge toward the next knot; flat (1) beyond the last
                w = F.when((x >= F.lit(xj)) & (x < F.lit(xs[j + 1])), (F.lit(xs[j + 1]) - x) / F.lit(xs[j + 1] - xj))
            else:
                w = F.when(x >= F.lit(xj), F.lit(1.0))
            if j > 0:  # rising edge from the previous knot
                w = w.when((x >= F.lit(xs[j - 1])) & (x < F.lit(xj)), (x - F.lit(xs[j - 1])) / F.lit(xj - xs[j - 1]))
            else:
                w = w.when(x < F.lit(xj), F.lit(1.0))
            out.append(F.coalesce(w.otherwise(F.lit(0.0)), F.lit(0.0)))
        return out

    def sum_se(self, knot_weights: Sequence[float]) -> float:
        """Standard error of Σ_i map(x_i) given Σ_i hat_weights(x_i) (one number per knot), from the
        bins' sampling variances with the fit's pooling held fixed."""
        if not self.loadings:
            return float("nan")
        a = np.asarray(knot_weights, dtype=float) @ np.asarray(self.loadings, dtype=float)
        return float(np.sqrt(np.sum(a * a * np.asarray(self.bin_var, dtype=float))))


def _mean_var(n: np.ndarray, sw: np.ndarray, swy: np.ndarray, swyy: np.ndarray) -> np.ndarray:
    """Sampling variance of a bin's (weighted) mean: s²/n, s² the weighted variance with n/(n−1)."""
    mean = swy / sw
    var = np.maximum(swyy / sw - mean * mean, 0.0) * np.where(n > 1, n / np.maximum(n - 1, 1), 1.0)
    return var / n


def fit_arm(arm: str, sums: np.ndarray) -> Optional[ArmCalibration]:
    """The map of one arm from its per-bin sums (rows in increasing predicted order, :data:`BIN_SUMS`).

    Bins without a treated or a control customer are dropped; None when fewer than one bin remains.
    Knots with equal mean prediction are pooled so the map is a function.
    """
    s = np.asarray(sums, dtype=float).reshape(-1, len(BIN_SUMS))
    keep = (s[:, 0] > 0) & (s[:, 1] > 0) & (s[:, 2] > 0) & (s[:, 3] > 0)
    if not keep.any():
        return None
    n_t, n_c, sw_t, sw_c, swy_t, swy_c, s_pred, swyy_t, swyy_c = s[keep].T
    observed = swy_t / sw_t - swy_c / sw_c
    bin_var = _mean_var(n_t, sw_t, swy_t, swyy_t) + _mean_var(n_c, sw_c, swy_c, swyy_c)
    pred = s_pred / (n_t + n_c)
    weight = n_t * n_c / (n_t + n_c)
    order = np.argsort(pred, kind="mergesort")
    pred, observed, weight, bin_var = pred[order], observed[order], weight[order], bin_var[order]
    # pool equal predictions (constant or heavily tied scores): knot u = Σ_b pool[u, b] · observed_b
    xs, idx = np.unique(pred, return_inverse=True)
    wsum = np.bincount(idx, weights=weight)
    pool = np.zeros((len(xs), len(pred)))
    pool[idx, np.arange(len(pred))] = weight / wsum[idx]
    obs = pool @ observed
    vals, sizes = isotonic_blocks(obs, wsum)
    fitted = np.repeat(vals, sizes)
    # isotonic: each knot is its block's wsum-weighted mean of the pooled knots
    iso = np.zeros((len(xs), len(xs)))
    start = 0
    for size in sizes:
        block = slice(start, start + size)
        iso[block, block] = wsum[block] / wsum[block].sum()
        start += size
    loadings = iso @ pool
    return ArmCalibration(arm=arm, predicted=tuple(float(v) for v in xs), calibrated=tuple(float(v) for v in fitted),
                          observed=tuple(float(v) for v in obs), customers=int(n_t.sum() + n_c.sum()),
                          loadings=tuple(tuple(float(v) for v in row) for row in loadings),
                          bin_var=tuple(float(v) for v in bin_var))


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
                    F.sum("p").alias("s_pred"),
                    F.sum(F.when(F.col("t"), F.col("wt") * F.col("yy") * F.col("yy")).otherwise(0.0)).alias("swyy_t"),
                    F.sum(F.when(F.col("c"), F.col("wt") * F.col("yy") * F.col("yy")).otherwise(0.0)).alias("swyy_c"))
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


__all__ = ["ArmCalibration", "BIN_SUMS", "bin_index", "bin_sums", "fit", "fit_arm", "hat_weights", "isotonic",
           "isotonic_blocks", "quantile_edges"]
