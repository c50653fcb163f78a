"""Policy: values, eligibility, buckets and the budgeted allocation, checked against an exact LP
(scipy ``linprog``), NumPy references and naive baselines; the score/decide pipelines on real Delta."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import ArmEconomics, PolicyConfig, RiskConfig, config_from_dict
from uplift_spark.errors import PolicyError
from uplift_spark.policy import add_eligibility, add_values, assign_buckets, decide

ARMS = ["email_a", "email_b", "discount"]
BENEFIT = np.array([50.0, 50.0, 60.0])
COST = np.array([0.5, 1.0, 2.0])


def instance(n=300, seed=0):
    """Synthetic-like true effects: mostly small positive, a harmed tail (negative uplift)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    tau = rng.normal([0.02, 0.03, 0.05], [0.04, 0.04, 0.06], (n, 3)) + 0.02 * x0[:, None]
    pdf = pd.DataFrame({"customer_id": [f"s{i:06d}" for i in range(n)], "x0": x0})
    for k, arm in enumerate(ARMS):
        pdf[f"uplift_{arm}"] = tau[:, k]
    return pdf, tau


def economics(caps=(None, None, None), eligibility=(None, None, None)):
    return {a: ArmEconomics(benefit=float(BENEFIT[k]), cost=float(COST[k]), capacity=caps[k],
                            eligibility=eligibility[k]) for k, a in enumerate(ARMS)}


def lp_optimum(values, budget, caps):
    """Exact optimum of the LP relaxation (one action per customer, budget, capacities)."""
    from scipy.optimize import linprog
    from scipy.sparse import lil_matrix

    n, k = values.shape
    rows = n + 1 + sum(c is not None for c in caps)
    a = lil_matrix((rows, n * k))
    b = []
    for i in range(n):
        a[i, i * k:(i + 1) * k] = 1
        b.append(1.0)
    a[n, :] = np.tile(COST, n)
    b.append(budget)
    r = n + 1
    for j, cap in enumerate(caps):
        if cap is not None:
            a[r, j::k] = 1
            b.append(cap)
            r += 1
    res = linprog(-values.ravel(), A_ub=a.tocsr(), b_ub=b, bounds=(0, 1), method="highs")
    assert res.status == 0
    return -res.fun


def greedy_fixed_arm(values, order, arm_of, budget, caps):
    """Contact customers in ``order`` with ``arm_of[i]`` while budget and capacity allow."""
    spent, used, total = 0.0, np.zeros(3), 0.0
    for i in order:
        k = arm_of[i]
        if spent + COST[k] > budget or (caps[k] is not None and used[k] + 1 > caps[k]):
            continue
        spent += COST[k]
        used[k] += 1
        total += values[i, k]
    return total


def actions(dec_pdf, ids):
    idx = {a: k for k, a in enumerate(ARMS)}
    d = dec_pdf.set_index("customer_id").loc[ids]
    return d.action.map(lambda a: idx.get(a, -1)).to_numpy(), d


# ------------------------------------------------------------------------------------------ budget vs LP


@pytest.fixture(scope="module")
def budget_case(spark):
    pdf, tau = instance(300, seed=0)
    values = tau * BENEFIT - COST
    budget, caps = 60.0, (None, 40, 6)
    cfg = PolicyConfig(policy="budget", budget=budget, holdout_share=0.0, explore_share=0.0, arms=economics(caps))
    dec, summary = decide(spark.createDataFrame(pdf), cfg, ARMS)
    return pdf, values, budget, caps, dec.toPandas(), summary


def test_budget_policy_near_lp_optimum_and_feasible(budget_case):
    pdf, values, budget, caps, dec, summary = budget_case
    act, d = actions(dec, pdf.customer_id)
    assert len(dec) == len(pdf) and dec.customer_id.is_unique
    chosen = act >= 0
    ours = values[np.nonzero(chosen)[0], act[chosen]].sum()
    spend = COST[act[chosen]].sum()
    counts = np.bincount(act[chosen], minlength=3)
    lp = lp_optimum(values, budget, caps)
    print(f"\nbudget policy value {ours:.3f} vs LP {lp:.3f} ({ours / lp:.4%}); spend {spend} / {budget}; "
          f"counts {counts.tolist()} caps {caps}; passes {summary.passes}; multipliers {summary.multipliers}")
    assert spend <= budget + 1e-9
    assert counts[1] <= caps[1] and counts[2] <= caps[2]
    assert counts[2] == caps[2]  # the capacity binds on this instance (discount is the best arm)
    assert ours >= 0.99 * lp
    assert ours <= lp + 1e-6
    # expected_value is V of the chosen action; reasons are readable and consistent
    np.testing.assert_allclose(d.expected_value.to_numpy()[chosen], values[np.nonzero(chosen)[0], act[chosen]], rtol=1e-9)
    assert (d.expected_value.to_numpy()[~chosen] == 0).all()
    assert d.reason[chosen].str.contains(r"value \d+\.\d\d via ").all()
    assert summary.multipliers["budget"] > 0 and summary.multipliers["capacity:discount"] > 0
    limits = {r["constraint"]: r for r in summary.constraints}
    assert limits["budget"]["used"] == pytest.approx(spend) and limits["budget"]["limit"] == budget
    assert limits["capacity:discount"]["used"] == counts[2]


def test_budget_policy_beats_naive_baselines(budget_case):
    pdf, values, budget, caps, dec, _ = budget_case
    act, _ = actions(dec, pdf.customer_id)
    ours = values[np.nonzero(act >= 0)[0], act[act >= 0]].sum()
    rng = np.random.default_rng(5)
    best_avg = int(np.argmax(values.mean(axis=0)))
    fixed = np.mean([greedy_fixed_arm(values, rng.permutation(len(pdf)), np.full(len(pdf), best_avg), budget, caps)
                     for _ in range(20)])
    random_arm = np.mean([greedy_fixed_arm(values, rng.permutation(len(pdf)), rng.integers(0, 3, len(pdf)), budget, caps)
                          for _ in range(20)])
    print(f"\nsame budget: policy {ours:.2f}, best-average arm ({ARMS[best_avg]}) {fixed:.2f}, random {random_arm:.2f}")
    assert ours > 1.5 * fixed and ours > 1.5 * random_arm


# ------------------------------------------------------------------------------------------ search paths


def _allocation_stats(dec, pdf, values):
    act, _ = actions(dec, pdf.customer_id)
    chosen = act >= 0
    return (values[np.nonzero(chosen)[0], act[chosen]].sum(), COST[act[chosen]].sum(),
            np.bincount(act[chosen], minlength=3), act)


@pytest.fixture(scope="module")
def search_case(spark):
    """Budget and discount capacity both bind; the same instance decided by the three search paths:
    on the driver (population within the sample size), full Spark passes only, sample bracket + passes."""
    pdf, tau = instance(2000, seed=11)
    values = tau * BENEFIT - COST
    budget, caps = 500.0, (None, None, 60)
    base = dict(policy="budget", budget=budget, holdout_share=0.0, explore_share=0.0, arms=economics(caps))
    df = spark.createDataFrame(pdf).repartition(4)
    runs = {}
    for name, sample_rows in (("driver", 50_000), ("full", 0), ("bracket", 300)):
        dec, summary = decide(df, PolicyConfig(search_sample_rows=sample_rows, **base), ARMS)
        runs[name] = (dec.toPandas(), summary)
    # same seed (salt), another partitioning: the bracket path must give the same decisions
    dec, summary = decide(spark.createDataFrame(pdf.iloc[::-1]).repartition(3),
                          PolicyConfig(search_sample_rows=300, **base), ARMS)
    runs["bracket_again"] = (dec.toPandas(), summary)
    return pdf, values, budget, caps, runs


def test_search_paths_agree_with_lp_and_never_exceed_limits(search_case):
    pdf, values, budget, caps, runs = search_case
    lp = lp_optimum(values, budget, caps)
    out = {}
    for name, (dec, summary) in runs.items():
        ours, spend, counts, act = _allocation_stats(dec, pdf, values)
        out[name] = ours
        print(f"\n{name}: value {ours:.3f} / LP {lp:.3f} ({ours / lp:.5%}), spend {spend}/{budget}, counts "
              f"{counts.tolist()}, passes {summary.passes} + {summary.sample_passes} on {summary.sample_rows} "
              f"sample rows, dual gap {summary.dual_gap}")
        assert spend <= budget + 1e-9 and counts[2] <= caps[2]
        assert ours <= lp + 1e-6
        assert ours >= 0.995 * lp  # 2,000 customers: a few marginal ones are the LP's fractional part
        # the certificate: the reported gap bounds the distance to the LP optimum
        assert summary.dual_gap is not None and summary.dual_gap <= 5e-3
        assert ours >= (1 - summary.dual_gap) * lp - 1e-6
    assert runs["driver"][1].passes == 0 and runs["driver"][1].sample_rows == len(pdf)
    assert runs["full"][1].sample_passes == 0 and runs["full"][1].passes > 0
    bracket = runs["bracket"][1]
    assert 0 < bracket.sample_rows <= 600 and bracket.sample_passes > 0 and bracket.passes > 0
    assert bracket.passes < runs["full"][1].passes  # the bracket saves passes over the population
    assert out["bracket"] == pytest.approx(out["full"], rel=2e-3)
    assert out["full"] == pytest.approx(out["driver"], rel=2e-3)
    d = bracket.to_dict()
    assert d["aggregation_passes"] == bracket.passes and d["sample_passes"] == bracket.sample_passes


def test_bracket_search_is_deterministic_for_a_salt(search_case):
    pdf, values, *_ , runs = search_case
    one = runs["bracket"][0].set_index("customer_id").loc[pdf.customer_id]
    two = runs["bracket_again"][0].set_index("customer_id").loc[pdf.customer_id]
    assert (one.action.to_numpy() == two.action.to_numpy()).all()
    assert runs["bracket"][1].multipliers == pytest.approx(runs["bracket_again"][1].multipliers, rel=1e-12)


def test_local_solver_matches_brute_force_and_recovers_from_a_bad_bracket():
    """NumPy only: the driver-side evaluation equals a brute-force count, and a start far from the
    optimum (a sample that missed) still ends feasible and near the LP optimum."""
    from uplift_spark.policy.allocate import Candidates, Limits, LocalRows, Solver, pick

    pdf, tau = instance(1500, seed=21)
    values = tau * BENEFIT - COST
    values[::7, 2] = -np.inf  # not a candidate (ineligible)
    rows = LocalRows(values, np.random.default_rng(0).random(len(values)))
    nu = np.random.default_rng(1).random((40, 3)) * 2
    counts, value = rows.evaluate(Candidates.plain(nu), 3)
    for m in range(len(nu)):
        scores = values - nu[m]
        best = scores.max(axis=1)
        act = np.where(best > 0, scores.argmax(axis=1), -1)
        np.testing.assert_array_equal(counts[m], np.bincount(act[act >= 0], minlength=3))
        np.testing.assert_allclose(value[m].sum(), values[act >= 0, act[act >= 0]].sum(), rtol=1e-12)
    np.testing.assert_array_equal(pick(values, nu)[3], np.where((values - nu[3]).max(axis=1) > 0,
                                                                (values - nu[3]).argmax(axis=1), -1))
    budget, caps = 400.0, (None, None, 50)
    lp = lp_optimum(np.where(np.isfinite(values), values, -1e3), budget, caps)
    limits = Limits(tuple(COST), budget, caps)
    vmax = float(values[np.isfinite(values)].max())
    exact = Solver(rows, limits, ARMS, gap_tol=1e-4).solve(vmax)
    for start in (exact.mult * 3 + 1.0, exact.mult * 0.2):  # far above / below the optimum
        alloc = Solver(rows, limits, ARMS, gap_tol=1e-4, window=0.05).solve(vmax, start=start)
        assert alloc.counts @ COST <= budget + 1e-9 and alloc.counts[2] <= caps[2]
        assert alloc.value >= (1 - 1e-3) * lp and alloc.value <= lp + 1e-6
        assert alloc.dual_gap <= 1e-3


# ------------------------------------------------------------------------------------------ top_k / threshold


def test_top_k_picks_the_k_best_customers(spark):
    pdf, tau = instance(400, seed=3)
    values = tau * BENEFIT - COST
    k = 37
    cfg = PolicyConfig(policy="top_k", top_k=k, holdout_share=0.0, explore_share=0.0, arms=economics())
    dec, summary = decide(spark.createDataFrame(pdf), cfg, ARMS)
    act, _ = actions(dec.toPandas(), pdf.customer_id)
    best = values.max(axis=1)
    expected = set(np.argsort(-best)[:k])
    assert set(np.nonzero(act >= 0)[0]) == expected
    assert (act[act >= 0] == values.argmax(axis=1)[act >= 0]).all()
    assert [r for r in summary.constraints if r["constraint"] == "top_k"][0]["used"] == k


def test_threshold_policy_min_value_eligibility_and_risk(spark):
    pdf, tau = instance(500, seed=4)
    risk = np.abs(tau) * 0.5  # e.g. predicted unsubscribe uplift
    for j, arm in enumerate(ARMS):
        pdf[f"uplift_{arm}__unsubscribe"] = risk[:, j]
    cfg = PolicyConfig(policy="threshold", min_value=1.0, holdout_share=0.0, explore_share=0.0,
                       risk=RiskConfig(outcome="unsubscribe", weight=4.0),
                       arms=economics(eligibility=(None, None, "x0 > 0")))
    dec, summary = decide(spark.createDataFrame(pdf), cfg, ARMS)
    act, d = actions(dec.toPandas(), pdf.customer_id)
    values = tau * BENEFIT - COST - 4.0 * risk
    values[pdf.x0.to_numpy() <= 0, 2] = -np.inf
    best = values.max(axis=1)
    expect = np.where(best >= 1.0, values.argmax(axis=1), -1)
    np.testing.assert_array_equal(act, expect)
    assert (d.reason[expect < 0 & (best < 1.0)] == "no arm above min_value").all()
    assert summary.passes == 0  # no constraint: no multiplier search


# ------------------------------------------------------------------------------------------ buckets


def test_buckets_shares_stable_and_disjoint(spark):
    from pyspark.sql import functions as F

    n = 40_000
    base = spark.range(n).select(F.format_string("c%07d", "id").alias("customer_id"),
                                 (F.col("id") % 3 == 0).alias("eligible_discount"))
    base = base.withColumn("eligible_email_a", F.lit(True)).withColumn("eligible_email_b", F.lit(False))
    cfg = PolicyConfig(holdout_share=0.1, explore_share=0.05, salt="spring")
    one = assign_buckets(base, cfg, ARMS)
    two = assign_buckets(base.repartition(7, "eligible_discount").orderBy(F.rand(3)), cfg, ARMS)
    shares = {r["bucket"]: r["n"] / n for r in one.groupBy("bucket").agg(F.count(F.lit(1)).alias("n")).collect()}
    for bucket, share in (("holdout", 0.1), ("explore", 0.05), ("policy", 0.85)):
        assert abs(shares[bucket] - share) < 4 * np.sqrt(share * (1 - share) / n), (bucket, shares)
    joined = one.alias("a").join(two.alias("b"), "customer_id")
    stats = joined.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum((F.col("a.bucket") != F.col("b.bucket")).cast("int")).alias("bucket_diff"),
        F.sum((~F.col("a.explore_arm").eqNullSafe(F.col("b.explore_arm"))).cast("int")).alias("arm_diff"),
        F.sum(((F.col("a.explore_arm") == "email_b")).cast("int")).alias("ineligible_arm"),
        F.sum(((F.col("a.explore_arm") == "discount") & ~F.col("a.eligible_discount")).cast("int")).alias("bad_disc"),
    ).collect()[0]
    assert stats["n"] == n and stats["bucket_diff"] == 0 and stats["arm_diff"] == 0
    assert stats["ineligible_arm"] == 0 and stats["bad_disc"] == 0
    # a different salt (campaign) draws different holdouts
    other = assign_buckets(base, PolicyConfig(holdout_share=0.1, explore_share=0.05, salt="autumn"), ARMS)
    overlap = (one.where("bucket = 'holdout'").join(other.where("bucket = 'holdout'"), "customer_id").count())
    assert abs(overlap / n - 0.01) < 0.005


# ------------------------------------------------------------------------------------------ errors


def test_bad_config_raises_policy_error(spark):
    pdf, _ = instance(50, seed=1)
    df = spark.createDataFrame(pdf)
    with pytest.raises(PolicyError, match="'sms'"):
        decide(df, PolicyConfig(policy="threshold", arms={"sms": ArmEconomics()}), ARMS)
    with pytest.raises(PolicyError, match=r"policy.arms.discount.eligibility.*x0 >>"):
        add_eligibility(df, PolicyConfig(arms=economics(eligibility=(None, None, "x0 >> 1"))), ARMS)
    with pytest.raises(PolicyError, match=r"discount.*no_such_column"):
        add_eligibility(df, PolicyConfig(arms=economics(eligibility=(None, None, "no_such_column = 1"))), ARMS)
    with pytest.raises(PolicyError, match="must be boolean"):
        add_eligibility(df, PolicyConfig(arms=economics(eligibility=("x0 + 1", None, None))), ARMS)
    with pytest.raises(PolicyError, match="policy.budget: required"):
        decide(df, PolicyConfig(policy="budget", arms=economics()), ARMS)
    with pytest.raises(PolicyError, match="risk outcome 'unsub'"):
        add_values(df, PolicyConfig(risk=RiskConfig(outcome="unsub", weight=1.0)), ARMS)
    with pytest.raises(PolicyError, match="exploration alone"):
        decide(df, PolicyConfig(policy="budget", budget=1.0, explore_share=0.5, holdout_share=0.0,
                                arms=economics()), ARMS)


# ------------------------------------------------------------------------------------------ pipelines


class FakeModel:
    """Stands in for a saved learner: uplift_<arm> = a linear function of x0 (known effects)."""

    def __init__(self, outcome, scale):
        self.outcome, self.scale = outcome, scale
        self.treatment_arms, self.control_arm = list(ARMS), "control"

    def transform(self, df):
        from pyspark.sql import functions as F

        for k, arm in enumerate(ARMS):
            df = df.withColumn(f"uplift_{arm}", self.scale * (F.lit(0.02 * (k + 1)) + 0.02 * F.col("x0")))
        return df


def _pipeline_cfg(tmp_path, **policy):
    raw = {"run": {"output_root": str(tmp_path / "out")},
           "data": {"source": "synthetic", "treatment_arms": ARMS, "control_arm": "control",
                    "outcomes": [{"name": "conversion"}, {"name": "unsub"}], "features": ["x0"]},
           "model": {"learners": ["t"]},
           "policy": {"campaign_id": "spring", "policy": "budget", "budget": 40.0, "holdout_share": 0.1,
                      "explore_share": 0.1, "salt": "s1",
                      "arms": {a: {"benefit": float(BENEFIT[k]), "cost": float(COST[k])} for k, a in enumerate(ARMS)},
                      **policy}}
    return config_from_dict(raw)


def test_score_and_decide_pipelines(spark, tmp_path, monkeypatch):
    import deltalake
    from pyspark.sql import functions as F

    import uplift_spark.learners as learners
    from uplift_spark.pipelines import decide as decide_stage
    from uplift_spark.pipelines import score as score_stage
    from uplift_spark.pipelines.context import RunContext

    cfg = _pipeline_cfg(tmp_path, arms={
        "email_a": {"benefit": 50.0, "cost": 0.5}, "email_b": {"benefit": 50.0, "cost": 1.0},
        "discount": {"benefit": 60.0, "cost": 2.0, "capacity": 10, "eligibility": "x0 > -0.5"}},
        risk={"outcome": "unsub", "weight": 2.0})
    ctx = RunContext(spark, cfg, "r1")
    pdf, _ = instance(400, seed=9)
    log = spark.createDataFrame(pdf[["customer_id", "x0"]]).withColumn("run_id", F.lit("r1"))
    ctx.store.write(log, "experiment_log", "r1")
    os.makedirs(ctx.model_dir, exist_ok=True)
    with open(os.path.join(ctx.model_dir, "manifest.json"), "w") as fh:
        json.dump({"model_version": "v1", "run_id": "r1", "control_arm": "control", "treatment_arms": ARMS,
                   "features": ["x0"], "models": [
                       {"learner": "t", "outcome": "conversion", "outcome_type": "binary", "path": "t_conversion"},
                       {"learner": "t", "outcome": "unsub", "outcome_type": "binary", "path": "t_unsub"}]}, fh)
    monkeypatch.setattr(learners, "load_entry",
                        lambda model_dir, entry: FakeModel(entry["path"].split("_")[1],
                                                           1.0 if "conv" in entry["path"] else 0.1))

    s = score_stage.run(ctx)
    assert s["rows"] == 3 * len(pdf) and s["model_version"] == "v1"
    scores = ctx.store.read("scores", run_id="r1").toPandas()
    assert {"uplift_conversion", "uplift_unsub", "value", "scored_at"} <= set(scores.columns)
    a = scores[scores.arm == "discount"].set_index("customer_id").loc[pdf.customer_id]
    tau = 0.06 + 0.02 * pdf.x0.to_numpy()
    np.testing.assert_allclose(a.uplift, tau, rtol=1e-9)
    np.testing.assert_allclose(a.value, tau * 60 - 2.0 - 2.0 * 0.1 * tau, rtol=1e-9)

    first = decide_stage.run(ctx)
    second = decide_stage.run(ctx)  # same run id: replaces, never duplicates
    assert first["contacts"] == second["contacts"]
    dec = deltalake.DeltaTable(ctx.store.location("decisions")).to_pandas()
    assert len(dec) == len(pdf) and dec.customer_id.is_unique and (dec.run_id == "r1").all()
    summary = deltalake.DeltaTable(ctx.store.location("decision_summary")).to_pandas()
    assert set(summary.kind) == {"allocation", "constraint", "total"}
    total = summary[summary.kind == "total"].iloc[0]  # all contacts; no calibration split in this run
    contacted = dec[dec.action != "none"]
    assert total.customers == len(contacted) and total.expected_value == pytest.approx(contacted.expected_value.sum())
    assert dec.expected_uplift_calibrated.isna().all() and pd.isna(total.expected_value_calibrated)
    budget_row = summary[summary.constraint == "budget"].iloc[0]
    cost = dec.action.map(dict(zip(ARMS, COST))).fillna(0.0)
    assert cost.sum() == pytest.approx(budget_row.used) and budget_row.used <= 40.0  # policy + explore
    assert (dec.action[dec.bucket == "policy"] == "discount").sum() + (dec.action[dec.bucket == "explore"] == "discount").sum() <= 10
    hold = dec[dec.bucket == "holdout"]
    assert (hold.action == "none").all() and (hold.reason == "holdout").all() and len(hold) > 10
    assert (hold.policy_action != "none").any()  # what the policy would have done is recorded
    ineligible = set(pdf.customer_id[pdf.x0 <= -0.5])
    assert not ((dec.action == "discount") & dec.customer_id.isin(ineligible)).any()
    explore = dec[dec.bucket == "explore"]
    assert explore.reason.str.startswith("explore").all()

    # bad eligibility SQL → PolicyError naming the arm, nothing new written
    version = deltalake.DeltaTable(ctx.store.location("decisions")).version()
    bad = RunContext(spark, _pipeline_cfg(tmp_path, arms={"discount": {"cost": 1.0, "eligibility": "x0 >>> 2"}}), "r1")
    with pytest.raises(PolicyError, match="discount"):
        decide_stage.run(bad)
    assert deltalake.DeltaTable(ctx.store.location("decisions")).version() == version
    assert not ctx.store.exists("decisions") or ctx.store.read("decisions", run_id="r2").count() == 0
