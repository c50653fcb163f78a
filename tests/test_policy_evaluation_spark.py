"""Spark plumbing of the held-out policy evaluation equals NumPy written from the formulas (to 1e-9)."""

import numpy as np
import pandas as pd
import pytest

from uplift_spark.errors import DataError, ModelError, PolicyError
from uplift_spark.evaluation import cost_curves as cc
from uplift_spark.evaluation import policy_value as pv
from uplift_spark.evaluation.policy_scan import ScoreSpec, curve_thresholds, score_moments, segments

K = 3
COSTS = (0.2, 0.5, 0.2)
BENEFITS = (1.0, 2.0, 1.0)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.dirichlet(np.ones(K + 1) * 4, n)
    w = np.array([rng.choice(K + 1, p=p) for p in e])
    pdf = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "w": w.astype(np.int32),
                        "y": rng.normal(1.0, 1.0, n), "tie": rng.permutation(n).astype(np.int64) * 7919 - 10 ** 6,
                        "grp": rng.integers(0, 30, n).astype(str)})
    for k in range(K + 1):
        pdf[f"e_{k}"] = e[:, k]
        pdf[f"mu_{k}"] = rng.normal(1.0, 0.3, n)
    for i in range(2):
        pdf[f"act_{i}"] = rng.integers(0, K + 1, n).astype(np.int32)
        for k in range(1, K + 1):
            r = rng.normal(0.2, 0.4, n)
            r[rng.random(n) < 0.05] = np.nan
            pdf[f"r_{i}_{k}"] = r
    return pdf


def _reference_columns(pdf, act):
    """Per-customer AIPW / IPW / SNIPW pieces of a one-arm-per-customer rule, straight from the formulas."""
    n = len(pdf)
    idx = np.arange(n)
    e = pdf[[f"e_{k}" for k in range(K + 1)]].to_numpy()
    mu = pdf[[f"mu_{k}" for k in range(K + 1)]].to_numpy()
    y, w = pdf["y"].to_numpy(), pdf["w"].to_numpy()
    b = np.concatenate([[0.0], BENEFITS])
    c = np.concatenate([[0.0], COSTS])
    hit = (w == act).astype(float)
    gamma_a = mu[idx, act] + hit * (y - mu[idx, act]) / e[idx, act]
    gamma_0 = mu[:, 0] + (w == 0) * (y - mu[:, 0]) / e[:, 0]
    # value = Y(0) + b_a (Y(a) − Y(0)) − c_a  (a = 0: Y(0))
    treated = act > 0
    aipw = np.where(treated, gamma_0 + b[act] * (gamma_a - gamma_0), gamma_0) - c[act]
    omega_w = np.where(w == 0, np.where(treated, 1 - b[act], 1.0), np.where(w == act, b[act], 0.0))
    weight = omega_w / e[idx, w]
    return {"aipw": aipw, "ipw": weight * y - c[act], "wy": weight * y, "weight": weight, "cost": c[act]}


@pytest.fixture(scope="module")
def case(spark):
    pdf = _data()
    sdf = spark.createDataFrame(pdf).repartition(3)
    n = len(pdf)
    segs = segments(sdf, 2, K, COSTS)
    grid = cc.spend_grid(0.35, 6)
    ths = curve_thresholds(segs, {c: [b * n for b in grid] for c in range(2)}, partitions=3)
    spec = ScoreSpec(K, BENEFITS, COSTS, ("p0", "p1"), ("c0", "c1"), tuple(tuple(ths[c]) for c in range(2)))
    return pdf, sdf, spec, grid, ths


def test_curve_thresholds_equal_the_local_sort(case):
    pdf, _, _, grid, ths = case
    n = len(pdf)
    for ci in range(2):
        r = pdf[[f"r_{ci}_{k}" for k in range(1, K + 1)]].to_numpy()
        r = np.where(np.isnan(r), -np.inf, r)
        _, _, dc, _, ratio = cc.hull_segments(r, np.array(COSTS))
        valid = ~np.isnan(ratio)
        tie = np.broadcast_to(pdf["tie"].to_numpy()[:, None], ratio.shape)
        ref = cc.crossing(ratio[valid], tie[valid], dc[valid], [b * n for b in grid])
        for got, want in zip(ths[ci], ref):
            # the same segments taken in the same fractions (a target exactly on a segment boundary may be
            # found as "all of one" or "none of the next" depending on summation order: same allocation)
            assert np.allclose(cc.taken(ratio, tie, got), cc.taken(ratio, tie, want), atol=1e-9)
    assert ths[0][0][2] == pytest.approx(0.0) or ths[0][0][0] == np.inf  # spend 0: nothing bought
    assert any(t != cc.ALL for t in ths[0][1:-1])  # interior grid points cross inside the path


def test_moments_estimates_equal_numpy_reference(case):
    pdf, sdf, spec, grid, _ = case
    mom = score_moments(sdf, spec)
    lay = spec.layout()
    n = len(pdf)
    for i in range(2):
        ref = _reference_columns(pdf, pdf[f"act_{i}"].to_numpy())
        for est in ("aipw", "ipw"):
            got = pv.value(mom, lay, f"p{i}", est)
            assert got.estimate == pytest.approx(ref[est].mean(), abs=1e-9)
            assert got.se == pytest.approx(ref[est].std(ddof=1) / np.sqrt(n), abs=1e-9)
        sn = pv.value(mom, lay, f"p{i}", "snipw")
        a, b, c = ref["wy"], ref["weight"], ref["cost"]
        v = a.mean() / b.mean() - c.mean()
        infl = (a - a.mean() / b.mean() * b) / b.mean() - (c - c.mean())
        assert sn.estimate == pytest.approx(v, abs=1e-9)
        assert sn.se == pytest.approx(infl.std(ddof=1) / np.sqrt(n), abs=1e-9)
    r0, r1 = (_reference_columns(pdf, pdf[f"act_{i}"].to_numpy()) for i in range(2))
    d = r0["aipw"] - r1["aipw"]
    got = pv.difference(mom, lay, "p0", "p1", "aipw")
    assert got.estimate == pytest.approx(d.mean(), abs=1e-9)
    assert got.se == pytest.approx(d.std(ddof=1) / np.sqrt(n), abs=1e-9)
    # curve points: Q_j = mean_i Σ_k π_ik(B_j) b_k (Γ_ik − Γ_i0)
    e = pdf[[f"e_{k}" for k in range(K + 1)]].to_numpy()
    mu = pdf[[f"mu_{k}" for k in range(K + 1)]].to_numpy()
    y, w = pdf["y"].to_numpy(), pdf["w"].to_numpy()
    gamma = mu + (w[:, None] == np.arange(K + 1)) * (y[:, None] - mu) / e
    gains = (gamma[:, 1:] - gamma[:, [0]]) * np.array(BENEFITS)
    for ci in range(2):
        r = pdf[[f"r_{ci}_{k}" for k in range(1, K + 1)]].to_numpy()
        _, scores, _ = cc.local_curve(np.where(np.isnan(r), -np.inf, r), np.array(COSTS), gains,
                                      pdf["tie"].to_numpy(), grid)
        for j in range(len(grid)):
            got = pv.linear(mom, {lay[f"curve:c{ci}|{j}"]: 1.0})
            assert got.estimate == pytest.approx(scores[:, j].mean(), abs=1e-9)
            assert got.se == pytest.approx(scores[:, j].std(ddof=1) / np.sqrt(n), abs=1e-9)


def test_cluster_robust_moments_equal_numpy_reference(case):
    pdf, sdf, spec, _, _ = case
    mom = score_moments(sdf, spec, cluster="grp")
    lay = spec.layout()
    n = len(pdf)
    ref = _reference_columns(pdf, pdf["act_0"].to_numpy())["aipw"]
    got = pv.value(mom, lay, "p0", "aipw")
    g = pdf["grp"].to_numpy()
    sums = pd.Series(ref - ref.mean()).groupby(g).sum().to_numpy()
    G = len(sums)
    assert mom.units == G
    assert got.estimate == pytest.approx(ref.mean(), abs=1e-9)
    assert got.se == pytest.approx(np.sqrt(G / (G - 1) * (sums ** 2).sum()) / n, abs=1e-9)


def test_bad_inputs_raise_clear_errors(spark):
    from uplift_spark.config import ArmEconomics, PolicyConfig, config_from_dict
    from uplift_spark.pipelines.evaluate_policy import design_propensities, outcome_model_columns, scaled_policy

    cfg = config_from_dict({"data": {"source": "csv", "control_arm": "c", "treatment_arms": ["a"]}})
    with pytest.raises(DataError, match="no randomized assignment probabilities"):
        design_propensities(cfg, ["customer_id", "arm"], ["c", "a"], "test")
    p = PolicyConfig(policy="budget", budget=10.0, arms={"a": ArmEconomics(cost=1.0)})
    with pytest.raises(PolicyError, match="too small for any contact"):
        scaled_policy(p, ["a"], 0.05)
    assert scaled_policy(p, ["a"], 0.2).budget == pytest.approx(2.0)
    with pytest.raises(ModelError, match="no T-learner model for outcome 'conversion'"):
        outcome_model_columns("/nonexistent", {"models": [{"learner": "x", "outcome": "conversion"}]},
                              "conversion", None, ["c", "a"])


def test_curve_rewards_honour_eligibility_risk_and_policy_arms(spark):
    """The curves allocate by what decide values: benefit × uplift − risk.weight × risk uplift, nothing for
    an ineligible customer or an arm outside policy.arms (null = not available on the hull)."""
    from uplift_spark.config import ArmEconomics, PolicyConfig, RiskConfig
    from uplift_spark.pipelines.evaluate_policy import curve_reward_columns

    rng = np.random.default_rng(11)
    n = 40
    pdf = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "opted_in": rng.integers(0, 2, n),
                        "uplift_a": rng.normal(0.1, 0.1, n), "uplift_b": rng.normal(0.1, 0.1, n),
                        "uplift_c": rng.normal(0.1, 0.1, n), "uplift_a__unsub": rng.normal(0.02, 0.01, n),
                        "uplift_b__unsub": rng.normal(0.02, 0.01, n), "uplift_c__unsub": rng.normal(0.0, 0.01, n)})
    pdf.loc[3, "uplift_b__unsub"] = np.nan  # a missing risk prediction carries no penalty, as in decide
    p = PolicyConfig(policy="budget", budget=5.0, risk=RiskConfig(outcome="unsub", weight=0.5),
                     arms={"a": ArmEconomics(benefit=2.0, cost=0.1, eligibility="opted_in = 1"),
                           "b": ArmEconomics(benefit=3.0, cost=0.2)})
    df = spark.createDataFrame(pdf)
    cols = curve_reward_columns(df, p, ["a", "b", "c"], ["a", "b"], 4, ["uplift_a", "uplift_b", "uplift_c"], "unsub")
    got = df.select("customer_id", *cols).toPandas().set_index("customer_id").loc[pdf.customer_id]
    ra = np.where(pdf.opted_in == 1, 2.0 * pdf.uplift_a - 0.5 * pdf.uplift_a__unsub, np.nan)
    rb = 3.0 * pdf.uplift_b - 0.5 * pdf.uplift_b__unsub.fillna(0.0)
    np.testing.assert_allclose(got["r_4_1"].to_numpy(dtype=float), ra, atol=1e-12)
    np.testing.assert_allclose(got["r_4_2"].to_numpy(dtype=float), rb, atol=1e-12)
    assert got["r_4_3"].isna().all()
