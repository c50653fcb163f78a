"""Held-out calibration of predicted uplift (``decisions.expected_*_calibrated``).

References are independent: scikit-learn's IsotonicRegression for the monotone fit, pandas group-bys
written here from the formula for the bin sums, ``np.interp`` for the map, and a simulation with known
true uplift for recovery.
"""

import numpy as np
import pandas as pd
import pytest

from uplift_spark.errors import PolicyError
from uplift_spark.policy import calibration as cal


def test_isotonic_equals_sklearn():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 30))
        y = rng.normal(size=n) + np.linspace(0, 1, n)
        w = rng.uniform(0.1, 3.0, n)
        ref = IsotonicRegression().fit(np.arange(n), y, sample_weight=w).predict(np.arange(n))
        np.testing.assert_allclose(cal.isotonic(y, w), ref, atol=1e-12)


def _sums_reference(pred, w, y, wt, k, edges):
    """BIN_SUMS of arm k written from the definition (bins edges[b-1] < x <= edges[b])."""
    side = np.isin(w, [0, k])
    b = np.searchsorted(np.asarray(edges), pred[side], side="left")
    df = pd.DataFrame({"b": b, "t": (w[side] == k).astype(float), "c": (w[side] == 0).astype(float),
                       "wt": wt[side], "y": y[side], "p": pred[side]})
    g = df.groupby("b")
    out = pd.DataFrame({"n_t": g["t"].sum(), "n_c": g["c"].sum(),
                        "sw_t": g.apply(lambda d: (d.t * d.wt).sum()), "sw_c": g.apply(lambda d: (d.c * d.wt).sum()),
                        "swy_t": g.apply(lambda d: (d.t * d.wt * d.y).sum()),
                        "swy_c": g.apply(lambda d: (d.c * d.wt * d.y).sum()), "s_pred": g["p"].sum(),
                        "swyy_t": g.apply(lambda d: (d.t * d.wt * d.y ** 2).sum()),
                        "swyy_c": g.apply(lambda d: (d.c * d.wt * d.y ** 2).sum())})
    return out.sort_index().to_numpy()


def test_bin_sums_and_map_on_spark_equal_numpy(spark):
    rng = np.random.default_rng(1)
    n = 600
    w = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    y = rng.normal(size=n) + 0.3 * (w == 1) * x
    pred1, pred2 = np.round(x, 2), 0.5 * x + rng.normal(0, 0.1, n)  # pred1 has ties
    wt = np.where(w == 0, 1 / 0.5, 1 / 0.25)
    pdf = pd.DataFrame({"w": w, "y": y, "pred_1": pred1, "pred_2": pred2, "wt": wt})
    sums = cal.bin_sums(spark.createDataFrame(pdf), ["a", "b"], 5, "wt", relative_error=0.0)
    for k, arm, pred in ((1, "a", pred1), (2, "b", pred2)):
        side = np.isin(w, [0, k])
        edges = cal.quantile_edges(np.quantile(pred[side], [0.2, 0.4, 0.6, 0.8], method="inverted_cdf"))
        ref = _sums_reference(pred, w, y, wt, k, edges)
        assert sums[arm].shape == ref.shape
        np.testing.assert_allclose(sums[arm], ref, rtol=1e-9, atol=1e-9)
    maps = cal.fit(sums)
    m = maps["a"]
    assert np.all(np.diff(m.calibrated) >= -1e-15) and np.all(np.diff(m.predicted) > 0)
    # the map on Spark (CASE WHEN expression) equals np.interp with flat ends; nulls stay null
    probe = np.concatenate([np.linspace(-4, 4, 97), np.asarray(m.predicted), [np.nan]])
    df = spark.createDataFrame([(None if np.isnan(v) else float(v),) for v in probe], "x double")
    from pyspark.sql import functions as F

    got = np.array([r[0] if r[0] is not None else np.nan
                    for r in df.select(m.expression(F.col("x"))).collect()], dtype=float)
    ref = np.interp(probe, np.asarray(m.predicted), np.asarray(m.calibrated))
    ref[np.isnan(probe)] = np.nan
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_allclose(m.apply(probe), ref, atol=1e-12)


def test_fit_arm_observed_uplift_and_weights():
    # two bins: observed uplift = weighted treated mean - control mean; a violating pair is pooled with
    # weights n_t n_c / (n_t + n_c)
    sums = np.array([
        # n_t n_c sw_t sw_c swy_t swy_c s_pred swyy_t swyy_c
        [10, 30, 10, 30, 10 * 0.5, 30 * 0.1, 40 * -0.2, 10 * 0.5, 30 * 0.1],   # observed 0.4 at predicted -0.2
        [20, 20, 20, 20, 20 * 0.3, 20 * 0.2, 40 * 0.3, 20 * 0.3, 20 * 0.2],   # observed 0.1 at predicted 0.3
    ], dtype=float)
    m = cal.fit_arm("a", sums)
    np.testing.assert_allclose(m.observed, [0.4, 0.1])
    w1, w2 = 10 * 30 / 40, 20 * 20 / 40
    pooled = (0.4 * w1 + 0.1 * w2) / (w1 + w2)
    np.testing.assert_allclose(m.calibrated, [pooled, pooled])
    np.testing.assert_allclose(m.predicted, [-0.2, 0.3])
    assert m.customers == 80
    with pytest.raises(PolicyError, match="arm 'b'"):
        cal.fit({"b": np.array([[5, 0, 5, 0, 1, 0, 0.5, 1, 0]], dtype=float)})


def test_calibration_recovers_true_uplift_of_an_overstating_model():
    """Simulation with known truth: the model predicts 3× the true uplift plus noise; on held-out
    randomized data the calibrated value of a predicted uplift is close to the true mean uplift there,
    while the prediction overstates it ~3×."""
    rng = np.random.default_rng(7)
    n = 60_000
    x = rng.uniform(-1, 1, n)
    tau = 0.1 + 0.1 * x  # true uplift of arm 1
    w = rng.integers(0, 2, n)
    y = 1.0 + 0.5 * x + w * tau + rng.normal(0, 1, n)
    pred = 3 * tau + rng.normal(0, 0.05, n)
    edges = cal.quantile_edges(np.quantile(pred, np.arange(1, 10) / 10))
    sums = _sums_reference(pred, w, y, np.ones(n), 1, edges)
    m = cal.fit_arm("a", sums)
    b = np.searchsorted(np.asarray(edges), pred, side="left")
    true_by_bin = pd.Series(tau).groupby(b).mean().to_numpy()
    # per-bin SE of a difference of means with ~6000 customers and unit noise ≈ 0.026
    assert np.max(np.abs(np.asarray(m.calibrated) - true_by_bin)) < 0.08
    mapped = m.apply(pred)
    assert abs(mapped.mean() - tau.mean()) < 0.02
    assert pred.mean() > 2.5 * tau.mean()


def _sums_numpy(pred, w, y, k, edges):
    """BIN_SUMS with unit weights, from bincount (the pandas reference above is slow for simulations)."""
    side = np.isin(w, [0, k])
    b = np.searchsorted(np.asarray(edges), pred[side], side="left")
    t, c, yy, p = (w[side] == k).astype(float), (w[side] == 0).astype(float), y[side], pred[side]
    f = lambda v: np.bincount(b, weights=v, minlength=len(edges) + 1)  # noqa: E731
    return np.column_stack([f(t), f(c), f(t), f(c), f(t * yy), f(c * yy), f(p), f(t * yy * yy), f(c * yy * yy)])


def test_hat_weights_interpolate_like_np_interp_on_numpy_and_spark(spark):
    from pyspark.sql import functions as F

    knots = (-0.3, 0.0, 0.05, 0.4)
    values = np.array([0.01, 0.02, 0.2, 0.25])
    probe = np.array([-1.0, -0.3, -0.1, 0.0, 0.02, 0.05, 0.3, 0.4, 2.0, np.nan])
    h = cal.hat_weights(probe, knots)
    ref = np.interp(probe, knots, values)
    np.testing.assert_allclose(h[:-1] @ values, ref[:-1], atol=1e-15)
    assert (h[-1] == 0).all() and np.allclose(h[:-1].sum(axis=1), 1.0)
    m = cal.ArmCalibration("a", knots, tuple(values), tuple(values), 1)
    df = spark.createDataFrame([(None if np.isnan(v) else float(v),) for v in probe], "x double")
    got = np.array(df.select(*m.hat_expressions(F.col("x"))).collect(), dtype=float)
    np.testing.assert_allclose(got, h, atol=1e-12)


def test_sum_se_equals_the_delta_method_through_sklearn_isotonic():
    """The SE of a sum of calibrated values, from a reference written here: the sum's derivative in each
    bin's observed uplift by finite differences through sklearn's IsotonicRegression + np.interp (the
    pooling held fixed by a small step), times each bin's s²_t/n_t + s²_c/n_c from pandas."""
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    n = 4000
    x = rng.uniform(-1, 1, n)
    w = rng.integers(0, 2, n)
    y = 0.3 * x + w * (0.1 + 0.1 * x) + rng.exponential(2.0, n)
    pred = np.round(2 * (0.1 + 0.1 * x) + rng.normal(0, 0.1, n), 3)
    edges = cal.quantile_edges(np.quantile(pred, np.arange(1, 8) / 8))
    m = cal.fit_arm("a", _sums_numpy(pred, w, y, 1, edges))
    b = np.searchsorted(np.asarray(edges), pred, side="left")
    frame = pd.DataFrame({"b": b, "w": w, "y": y, "p": pred})
    g_t, g_c = frame[frame.w == 1].groupby("b"), frame[frame.w == 0].groupby("b")
    observed = (g_t.y.mean() - g_c.y.mean()).to_numpy()
    var = (g_t.y.var(ddof=1) / g_t.y.count() + g_c.y.var(ddof=1) / g_c.y.count()).to_numpy()
    weight = (g_t.y.count() * g_c.y.count() / (g_t.y.count() + g_c.y.count())).to_numpy()
    knots = frame.groupby("b").p.mean().to_numpy()
    chosen = rng.uniform(-0.2, 0.6, 700)  # predicted uplifts of the customers a policy contacts

    def total(obs):
        fitted = IsotonicRegression().fit(knots, obs, sample_weight=weight).predict(knots)
        return np.interp(chosen, knots, fitted).sum()

    np.testing.assert_allclose(total(observed), m.apply(chosen).sum(), rtol=1e-12)
    eps = 1e-7
    grad = np.array([(total(observed + eps * np.eye(len(observed))[j]) - total(observed)) / eps
                     for j in range(len(observed))])
    ref = np.sqrt(np.sum(grad ** 2 * var))
    se = m.sum_se(cal.hat_weights(chosen, m.predicted).sum(axis=0))
    assert se == pytest.approx(ref, rel=1e-5)


def test_calibrated_sum_interval_covers_the_true_value():
    """Known truth, heavy-tailed outcome, a model that overstates 3×: over 200 draws the 95% interval of
    the calibrated value of the top 30% of a new population covers their true total uplift in 90–99%."""
    rng = np.random.default_rng(11)
    covered, draws = 0, 200
    for _ in range(draws):
        n = 8000
        x = rng.uniform(-1, 1, n)
        w = rng.integers(0, 2, n)
        tau = 0.1 + 0.1 * x
        y = 1 + 0.5 * x + w * tau + rng.exponential(3.0, n) * (rng.random(n) < 0.3)
        pred = 3 * tau + rng.normal(0, 0.05, n)
        m = cal.fit_arm("a", _sums_numpy(pred, w, y, 1, cal.quantile_edges(np.quantile(pred, np.arange(1, 10) / 10))))
        xp = rng.uniform(-1, 1, 5000)
        pp = 3 * (0.1 + 0.1 * xp) + rng.normal(0, 0.05, 5000)
        chosen = pp >= np.quantile(pp, 0.7)
        est = m.apply(pp[chosen]).sum()
        se = m.sum_se(cal.hat_weights(pp[chosen], m.predicted).sum(axis=0))
        covered += abs(est - (0.1 + 0.1 * xp[chosen]).sum()) <= 1.96 * se
    assert 0.90 <= covered / draws <= 0.99, covered / draws
