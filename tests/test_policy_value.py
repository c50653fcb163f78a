"""Held-out policy value (IPW / SNIPW / AIPW) and multi-armed cost curves at NumPy level.

References are written here from the formulas (not from the module), the LP check uses scipy's linprog,
and the coverage simulations draw from the project's synthetic generator, whose ``true_uplift_<arm>``
gives the true gain of any policy.
"""


import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import SyntheticConfig
from uplift_spark.datasets.synthetic import _make_generator
from uplift_spark.evaluation import cost_curves as cc
from uplift_spark.evaluation import policy_value as pv

ARMS = ("email_a", "email_b", "discount")


def _layout(names, k_arms):
    lay = pv.Layout()
    for p in names:
        for col in ("aipw", "ipw", "weight", "cost", *[f"arm_{k}" for k in range(1, k_arms + 1)]):
            lay.add(f"{p}|{col}")
    return lay


def _stack(cols_by_policy, lay):
    z = np.zeros((len(next(iter(cols_by_policy.values()))["aipw"]), len(lay)))
    for p, cols in cols_by_policy.items():
        for name, arr in cols.items():
            z[:, lay[f"{p}|{name}"]] = arr
    return z


def _draw(seed, n, effect_scale=1.0, covariate=False):
    cfg = SyntheticConfig(n_rows=n, seed=seed, effect_scale=effect_scale, drift=False,
                          propensity="covariate" if covariate else "uniform")
    pdf = next(_make_generator(cfg)(iter([pd.DataFrame({"id": np.arange(n, dtype=np.int64)})])))
    return pdf


def _design(pdf):
    names = ("control",) + ARMS
    w = pdf["arm"].map({a: i for i, a in enumerate(names)}).to_numpy()
    e = np.column_stack([pdf[f"propensity_{a}"].to_numpy() for a in names])
    tau = np.column_stack([pdf[f"true_uplift_{a}"].to_numpy() for a in ARMS])
    y = pdf["conversion"].to_numpy(dtype=float)
    # an imperfect outcome model: the base logit without the c0 level effect, plus the true uplift
    z0 = np.log(0.1 / 0.9) + 0.5 * pdf["x0"] - 0.4 * pdf["x1"] + 0.25 * pdf["x0"] * pdf["x1"]
    mu0 = 1.0 / (1.0 + np.exp(-z0.to_numpy()))
    mu = np.column_stack([mu0, mu0[:, None] + tau])
    return y, w, e, tau, mu


def _one_hot(action, k_arms):
    pi = np.zeros((len(action), k_arms + 1))
    pi[np.arange(len(action)), action] = 1.0
    return pi


# ------------------------------------------------------------------------------------ formulas


def test_scores_and_estimates_match_the_formulas():
    rng = np.random.default_rng(0)
    n, k = 500, 3
    w = rng.integers(0, k + 1, n)
    e = rng.dirichlet(np.ones(k + 1) * 5, n)
    y = rng.normal(1.0, 2.0, n)
    mu = rng.normal(1.0, 0.5, (n, k + 1))
    action = rng.integers(0, k + 1, n)
    costs, benefits = np.array([0.1, 0.2, 1.0]), np.array([1.0, 1.0, 1.0])
    gamma = pv.aipw_scores(y, w, mu, e)
    for i in (0, 7, 99):
        for a in range(k + 1):
            expect = mu[i, a] + (w[i] == a) * (y[i] - mu[i, a]) / e[i, a]
            assert gamma[i, a] == pytest.approx(expect, abs=1e-12)
    cols = pv.policy_columns(_one_hot(action, k), y, w, e, gamma, benefits, costs)
    cost = np.where(action > 0, costs[np.maximum(action - 1, 0)], 0.0)
    hit = (w == action).astype(float)
    ipw = hit * y / e[np.arange(n), action] - cost
    aipw = gamma[np.arange(n), action] - cost
    sn = (hit * y / e[np.arange(n), action]).sum() / (hit / e[np.arange(n), action]).sum() - cost.mean()
    lay = _layout(["p"], k)
    mom = pv.Moments.from_rows(_stack({"p": cols}, lay))
    for est, ref in (("ipw", ipw), ("aipw", aipw)):
        got = pv.value(mom, lay, "p", est)
        assert got.estimate == pytest.approx(ref.mean(), abs=1e-9)
        assert got.se == pytest.approx(ref.std(ddof=1) / np.sqrt(n), rel=1e-9)
    got = pv.value(mom, lay, "p", "snipw")
    assert got.estimate == pytest.approx(sn, abs=1e-9)
    # delta-method SE written out from the influence function
    a_ = hit * y / e[np.arange(n), action]
    b_ = hit / e[np.arange(n), action]
    infl = (a_ - (a_.mean() / b_.mean()) * b_) / b_.mean() - (cost - cost.mean())
    assert got.se == pytest.approx(infl.std(ddof=1) / np.sqrt(n), rel=1e-9)


def test_paired_difference_and_cluster_se():
    rng = np.random.default_rng(1)
    n, k = 400, 2
    w = rng.integers(0, k + 1, n)
    e = np.full((n, k + 1), 1.0 / (k + 1))
    y = rng.normal(size=n)
    mu = np.zeros((n, k + 1))
    gamma = pv.aipw_scores(y, w, mu, e)
    a1, a2 = rng.integers(0, k + 1, n), np.zeros(n, dtype=int)
    lay = _layout(["p", "q"], k)
    z = _stack({"p": pv.policy_columns(_one_hot(a1, k), y, w, e, gamma, [1, 1], [0.5, 0.5]),
                "q": pv.policy_columns(_one_hot(a2, k), y, w, e, gamma, [1, 1], [0.5, 0.5])}, lay)
    d = z[:, lay["p|aipw"]] - z[:, lay["q|aipw"]]
    got = pv.difference(pv.Moments.from_rows(z), lay, "p", "q", "aipw")
    assert got.estimate == pytest.approx(d.mean(), abs=1e-12)
    assert got.se == pytest.approx(d.std(ddof=1) / np.sqrt(n), rel=1e-9)
    # clusters: sum per cluster first, then the cluster totals are the units
    cl = rng.integers(0, 40, n)
    got = pv.difference(pv.Moments.from_rows(z, cluster=cl), lay, "p", "q", "aipw")
    sums = np.bincount(cl, weights=d - d.mean(), minlength=40)
    g = len(np.unique(cl))
    ref = np.sqrt(g / (g - 1) * (sums ** 2).sum()) / n
    assert got.se == pytest.approx(ref, rel=1e-9)
    assert got.estimate == pytest.approx(d.mean(), abs=1e-12)


# ------------------------------------------------------------------------------------ curves


def test_curve_allocation_equals_linprog():
    from scipy.optimize import linprog

    rng = np.random.default_rng(3)
    n, k = 120, 3
    rewards = rng.normal(0.2, 0.5, (n, k))
    rewards[rng.random((n, k)) < 0.05] = -np.inf  # some arms unavailable
    costs = np.array([0.3, 1.0, 0.3])  # two arms at the same cost: the hull must drop the worse
    tie = rng.permutation(n).astype(np.int64)
    fa, ta, dc, dr, ratio = cc.hull_segments(rewards, costs)
    valid = ~np.isnan(ratio)
    full_spend = dc[valid].sum() / n
    grid = cc.spend_grid(full_spend * 1.1, 9)
    allocs, _, _ = cc.local_curve(rewards, costs, np.zeros((n, k)), tie, grid)
    r_lp = np.where(np.isfinite(rewards), rewards, 0.0)
    ub = [(0, 0) if not np.isfinite(v) else (0, 1) for v in rewards.ravel()]
    a_rows = np.kron(np.eye(n), np.ones((1, k)))
    for b, pi in zip(grid, allocs):
        got = (pi[:, 1:] * r_lp).sum()
        spend = (pi[:, 1:] * costs).sum()
        assert spend <= b * n + 1e-9
        assert np.all(pi >= -1e-12) and np.allclose(pi.sum(axis=1), 1.0)
        res = linprog(-r_lp.ravel(), A_ub=np.vstack([a_rows, np.tile(costs, n)[None, :]]),
                      b_ub=np.concatenate([np.ones(n), [b * n]]), bounds=ub, method="highs")
        assert res.status == 0
        assert got == pytest.approx(-res.fun, abs=1e-6)


def test_curve_scores_are_the_allocation_times_gains():
    rng = np.random.default_rng(4)
    n, k = 50, 2
    rewards = rng.normal(0.3, 0.4, (n, k))
    gains = rng.normal(size=(n, k))
    grid = cc.spend_grid(0.8, 5)
    allocs, scores, _ = cc.local_curve(rewards, np.array([0.5, 1.0]), gains, np.arange(n), grid)
    for j, pi in enumerate(allocs):
        assert np.allclose(scores[:, j], (pi[:, 1:] * gains).sum(axis=1))
    # spend used is exactly the grid spend until the path ends (the fractional segment fills it)
    spends = [float((pi[:, 1:] * [0.5, 1.0]).sum()) / n for pi in allocs]
    _, _, dc, _, ratio = cc.hull_segments(rewards, np.array([0.5, 1.0]))
    full = dc[~np.isnan(ratio)].sum() / n
    for b, s in zip(grid, spends):
        assert s == pytest.approx(min(b, full), abs=1e-12)


# ------------------------------------------------------------------------------------ coverage


def _policy_study(seed, n, effect_scale=1.0):
    pdf = _draw(seed, n, effect_scale=effect_scale)
    y, w, e, tau, mu = _design(pdf)
    # the policy: best arm by the true uplift of a *different* formula (x3 sign) — a fixed rule of x only
    action = np.where(pdf["x3"] > 0, 1, np.where(pdf["x4"] > 0, 2, 0))
    return pdf, y, w, e, tau, mu, action


@pytest.fixture(scope="module")
def true_gain():
    """Population gain of the fixed rule over nobody, from a large draw's true uplift."""
    pdf = _draw(12345, 400_000)
    tau = np.column_stack([pdf[f"true_uplift_{a}"].to_numpy() for a in ARMS])
    action = np.where(pdf["x3"] > 0, 1, np.where(pdf["x4"] > 0, 2, 0))
    tau0 = np.hstack([np.zeros((len(tau), 1)), tau])
    return float(tau0[np.arange(len(tau)), action].mean())


def test_coverage_ipw_and_aipw(true_gain):
    hits = {"ipw": 0, "aipw": 0}
    se_ratio = []
    draws = 200
    k = len(ARMS)
    for d in range(draws):
        pdf, y, w, e, tau, mu, action = _policy_study(1000 + d, 3000)
        gamma = pv.aipw_scores(y, w, mu, e)
        lay = _layout(["p", "none"], k)
        z = _stack({"p": pv.policy_columns(_one_hot(action, k), y, w, e, gamma, [1] * k, [0] * k),
                    "none": pv.policy_columns(_one_hot(np.zeros(len(y), int), k), y, w, e, gamma, [1] * k,
                                              [0] * k)}, lay)
        mom = pv.Moments.from_rows(z)
        ses = {}
        for est in hits:
            r = pv.difference(mom, lay, "p", "none", est)
            hits[est] += r.ci_low <= true_gain <= r.ci_high
            ses[est] = r.se
        se_ratio.append(ses["aipw"] / ses["ipw"])
    for est, h in hits.items():
        assert 0.92 <= h / draws <= 0.98, (est, h / draws)
    assert np.mean(se_ratio) < 1.0 and np.max(se_ratio) < 1.0


def test_uplift_policy_beats_random_and_response_targeting_under_strong_heterogeneity():
    k = len(ARMS)
    pdf = _draw(77, 20000, effect_scale=2.0)
    y, w, e, tau, mu = _design(pdf)
    costs = np.array([0.02, 0.02, 0.05])
    value = tau - costs  # the uplift policy: arm with the largest positive predicted value
    best = value.argmax(axis=1)
    action = np.where(value.max(axis=1) > 0, best + 1, 0)
    pi = _one_hot(action, k)
    share = pi[:, 1:].mean(axis=0)
    random = np.tile(np.concatenate([[1 - share.sum()], share]), (len(y), 1))  # expectation form
    # response targeting: the same number of contacts per arm, ranked by predicted outcome μ_k
    resp = np.zeros(len(y), dtype=int)
    for a in range(k):
        m = int(round(share[a] * len(y)))
        free = np.nonzero(resp == 0)[0]
        top = free[np.argsort(-mu[free, a + 1])[:m]]
        resp[top] = a + 1
    gamma = pv.aipw_scores(y, w, mu, e)
    lay = _layout(["p", "random", "response"], k)
    z = _stack({name: pv.policy_columns(p, y, w, e, gamma, [1] * k, costs)
                for name, p in (("p", pi), ("random", random), ("response", _one_hot(resp, k)))}, lay)
    mom = pv.Moments.from_rows(z)
    vs_random = pv.difference(mom, lay, "p", "random", "aipw")
    vs_resp = pv.difference(mom, lay, "p", "response", "aipw")
    assert vs_random.estimate > 0 and vs_random.p_value < 0.01
    assert vs_resp.estimate > 0 and vs_resp.p_value < 0.05


def test_no_effect_gain_ci_contains_zero():
    k = len(ARMS)
    covered, draws = 0, 200
    for d in range(draws):
        pdf = _draw(5000 + d, 2000, effect_scale=0.0)
        y, w, e, tau, mu = _design(pdf)
        assert np.allclose(tau, 0.0)
        rng = np.random.default_rng(d)
        action = rng.integers(0, k + 1, len(y))  # any rule of x: with no effect its gain is 0
        gamma = pv.aipw_scores(y, w, mu, e)
        lay = _layout(["p", "none"], k)
        z = _stack({"p": pv.policy_columns(_one_hot(action, k), y, w, e, gamma, [1] * k, [0] * k),
                    "none": pv.policy_columns(_one_hot(np.zeros(len(y), int), k), y, w, e, gamma, [1] * k,
                                              [0] * k)}, lay)
        r = pv.difference(pv.Moments.from_rows(z), lay, "p", "none", "aipw")
        covered += r.ci_low <= 0.0 <= r.ci_high
    assert covered / draws >= 0.90


def test_report_section_states_policy_vs_random():
    from uplift_spark.report.policy_section import policy_section

    base = dict(split="test", estimator="aipw", se=0.1, customers=1000, scale=0.2, budget=400.0, note="")
    ev = pd.DataFrame([
        dict(base, policy="policy", baseline="nobody", metric="gain", estimate=0.5, ci_low=0.3, ci_high=0.7, p_value=1e-6),
        dict(base, policy="random", baseline="nobody", metric="gain", estimate=0.2, ci_low=0.0, ci_high=0.4, p_value=0.05),
        dict(base, policy="policy", baseline="random", metric="difference", estimate=0.3, ci_low=0.1, ci_high=0.5,
             p_value=0.003),
    ])
    curves = pd.DataFrame([dict(split="test", policy=p, spend=s, value=v, ci_low=v - 0.1, ci_high=v + 0.1)
                           for p in ("learner:t", "random") for s, v in ((0.0, 0.0), (0.5, 0.4))])
    body, figures = policy_section(ev, curves)
    assert "At a budget of 2,000 the policy earns +0.5000 per customer (95% CI 0.3000 to 0.7000)" in body
    assert "random customers earns +0.2000" in body and "the difference is +0.3000" in body
    assert figures["policy_curves.png"][:8] == b"\x89PNG\r\n\x1a\n"
    # predicted, calibrated and held-out value side by side (decision_summary's total row)
    summary = pd.DataFrame([
        dict(kind="allocation", expected_value=600.0, expected_value_calibrated=150.0, held_out_value=None,
             held_out_ci_low=None, held_out_ci_high=None, held_out_split=None),
        dict(kind="total", expected_value=1300.0, expected_value_calibrated=350.0, held_out_value=320.0,
             held_out_ci_low=-100.0, held_out_ci_high=740.0, held_out_split="test", calibrated_ci_low=50.0,
             calibrated_ci_high=650.0)])
    body, _ = policy_section(ev, curves, summary=summary)
    import html

    body = html.unescape(body)
    assert ("predicted value is +1,300.00 (the models' own prediction); calibrated on held-out data it is +350.00 "
            "(95% CI 50.00 to 650.00); "
            "the held-out estimate of the policy's gain is +320.00 (95% CI -100.00 to 740.00, split test)") in body
