"""Monitoring modules against independent NumPy / SciPy references on small data."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from uplift_spark.config import MonitoringConfig, config_from_dict
from uplift_spark.errors import MonitoringError
from uplift_spark.monitoring import (
    build_feature_profile,
    build_policy_profile,
    build_score_profile,
    campaign_outcomes,
    collect_alerts,
    feature_drift,
    load_profile,
    policy_drift,
    psi,
    realized_uplift,
    save_profile,
    score_drift,
)

CFG = MonitoringConfig()
NUMERIC = ["x0", "x1", "x2", "x3"]


def customers(n, seed, shift=None, nulls=0.0):
    """Synthetic-like features: four standard normals and two categoricals (c1 with a long tail)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
    df["c0"] = rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=n)
    df["c1"] = rng.choice([f"v{i}" for i in range(30)], size=n)
    for col, delta in (shift or {}).items():
        df[col] = df[col] + delta
    if nulls:
        df.loc[rng.random(n) < nulls, "x2"] = np.nan
    df["customer_id"] = [f"s{i:06d}" for i in range(n)]
    return df


def numpy_psi(p_counts, q_counts, eps):
    """Independent PSI: shares floored at eps, renormalised, Σ (q − p) ln(q / p)."""
    p = np.asarray(p_counts, float) / np.sum(p_counts)
    q = np.asarray(q_counts, float) / np.sum(q_counts)
    p = np.maximum(p, eps)
    q = np.maximum(q, eps)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.fixture(scope="module")
def reference(spark):
    pdf = customers(3000, seed=1)
    sdf = spark.createDataFrame(pdf)
    profile = build_feature_profile(sdf, NUMERIC + ["c0", "c1"], ["c0", "c1"], MonitoringConfig(max_categories=10))
    return pdf, profile


def test_reference_profile_edges_and_shares(reference):
    pdf, profile = reference
    spec = profile["features"]["x0"]
    edges = np.array(spec["edges"])
    assert len(edges) == CFG.bins - 1 and np.all(np.diff(edges) > 0)
    # approxQuantile edges sit at the requested ranks (within its relative error)
    ranks = np.searchsorted(np.sort(pdf["x0"].to_numpy()), edges, side="right") / len(pdf)
    assert np.max(np.abs(ranks - np.arange(1, CFG.bins) / CFG.bins)) < 0.01
    counts = np.bincount(np.searchsorted(edges, pdf["x0"].to_numpy(), side="left"), minlength=len(edges) + 1)
    assert np.allclose(spec["shares"], counts / counts.sum())
    assert spec["mean"] == pytest.approx(pdf["x0"].mean(), abs=1e-9)
    assert spec["std"] == pytest.approx(pdf["x0"].std(ddof=1), rel=1e-9)
    # categorical: top 10 of 30 categories + an "other" bucket; the known list is complete
    c1 = profile["features"]["c1"]
    assert len(c1["categories"]) == 10 and len(c1["shares"]) == 11 and c1["known_complete"]
    freq = pdf["c1"].value_counts()
    assert c1["shares"][0] == pytest.approx(freq[c1["categories"][0]] / len(pdf))
    assert c1["shares"][-1] == pytest.approx(1 - sum(freq[c] for c in c1["categories"]) / len(pdf))


def test_psi_and_ks_equal_numpy_on_the_same_bins(spark, reference):
    pdf, profile = reference
    batch = customers(2000, seed=2, shift={"x0": 0.3}, nulls=0.1)
    batch.loc[:99, "c0"] = "zzz"  # an unseen category
    out = feature_drift(spark.createDataFrame(batch), profile["features"], CFG).set_index("feature")
    for name in NUMERIC:
        edges = np.array(profile["features"][name]["edges"])
        ref_vals = pdf[name].to_numpy()
        new_vals = batch[name].to_numpy()
        ref_counts = np.bincount(np.searchsorted(edges, ref_vals), minlength=len(edges) + 1)
        new_ok = new_vals[~np.isnan(new_vals)]
        new_counts = np.bincount(np.searchsorted(edges, new_ok), minlength=len(edges) + 1)
        # PSI over the value bins plus a null bucket
        expected = numpy_psi(np.append(ref_counts, 0), np.append(new_counts, np.isnan(new_vals).sum()), CFG.psi_epsilon)
        assert out.loc[name, "psi"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        cdf_ref = np.cumsum(ref_counts)[:-1] / ref_counts.sum()
        cdf_new = np.cumsum(new_counts)[:-1] / new_counts.sum()
        assert out.loc[name, "ks"] == pytest.approx(np.max(np.abs(cdf_ref - cdf_new)), abs=1e-12)
    assert out.loc["x2", "null_share"] == pytest.approx(np.isnan(batch["x2"]).mean())
    assert out.loc["x2", "status"] != "ok"  # 10% nulls appeared
    # categorical PSI on the reference categories + other + null buckets
    spec = profile["features"]["c0"]
    cats = spec["categories"]
    ref_c = [np.sum(pdf["c0"] == c) for c in cats] + [np.sum(~pdf["c0"].isin(cats)), 0]
    new_c = [np.sum(batch["c0"] == c) for c in cats] + [np.sum(~batch["c0"].isin(cats)), 0]
    assert out.loc["c0", "psi"] == pytest.approx(numpy_psi(ref_c, new_c, CFG.psi_epsilon), rel=1e-9)
    assert out.loc["c0", "unseen_share"] == pytest.approx(100 / 2000)
    # the module's own PSI is the same formula
    assert psi([0.5, 0.5, 0.0], [0.4, 0.5, 0.1], 1e-4) == pytest.approx(numpy_psi([5, 5, 0], [4, 5, 1], 1e-4))


def test_drifted_features_are_flagged_and_stable_ones_are_not(spark, reference):
    _, profile = reference
    drifted = customers(3000, seed=3, shift={"x0": 0.8, "x1": -0.6})
    out = feature_drift(spark.createDataFrame(drifted), profile["features"], CFG).set_index("feature")
    assert out.loc["x0", "status"] == "alert" and out.loc["x1", "status"] == "alert"
    assert out.loc["x0", "psi"] > CFG.psi_alert and out.loc["x0", "ks"] > 0.2
    for name in ["x2", "x3", "c0", "c1"]:
        assert out.loc[name, "status"] == "ok", (name, out.loc[name].to_dict())
        assert out.loc[name, "psi"] < CFG.psi_warn
    alerts = collect_alerts(CFG, features=out.reset_index())
    assert sorted(alerts["subject"]) == ["x0", "x1"]
    assert alerts["retrain_recommended"].all()
    assert "x0" in alerts.loc[alerts["subject"] == "x0", "message"].iloc[0]


def test_no_drift_means_no_alert(spark, reference):
    _, profile = reference
    same = customers(3000, seed=4)
    out = feature_drift(spark.createDataFrame(same), profile["features"], CFG)
    assert (out["status"] == "ok").all(), out.to_dict("records")
    assert out["psi"].max() < CFG.psi_warn
    assert collect_alerts(CFG, features=out).empty


def scores_frame(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for arm, mu in (("email_a", 0.03), ("discount", 0.01)):
        up = rng.normal(mu + shift, 0.02, size=n)
        rows.append(pd.DataFrame({"arm": arm, "uplift": up, "value": up * 10 - 0.1}))
    return pd.concat(rows, ignore_index=True)


def test_score_profile_and_drift(spark):
    ref_pdf = scores_frame(2000, 5)
    profile = build_score_profile(spark.createDataFrame(ref_pdf), bins=10)
    a = profile["arms"]["email_a"]["uplift"]
    x = ref_pdf.loc[ref_pdf.arm == "email_a", "uplift"].to_numpy()
    assert a["mean"] == pytest.approx(x.mean()) and a["std"] == pytest.approx(x.std(ddof=1))
    assert a["negative_share"] == pytest.approx((x < 0).mean())
    assert len(a["edges"]) == 9 and sum(a["shares"]) == pytest.approx(1.0)

    stable = score_drift(spark.createDataFrame(scores_frame(2000, 6)), profile, CFG)
    assert (stable["status"] == "ok").all(), stable.to_dict("records")

    shifted_pdf = scores_frame(2000, 7, shift=-0.03)
    shifted = score_drift(spark.createDataFrame(shifted_pdf), profile, CFG).set_index(["arm", "metric"])
    row = shifted.loc[("email_a", "uplift")]
    y = shifted_pdf.loc[shifted_pdf.arm == "email_a", "uplift"].to_numpy()
    assert row["mean_shift"] == pytest.approx((y.mean() - x.mean()) / x.std(ddof=1), rel=1e-6)
    assert row["negative_share"] == pytest.approx((y < 0).mean())
    edges = np.array(a["edges"])
    expected = numpy_psi(np.bincount(np.searchsorted(edges, x), minlength=10),
                         np.bincount(np.searchsorted(edges, y), minlength=10), CFG.psi_epsilon)
    assert row["psi"] == pytest.approx(expected, rel=1e-9)
    assert row["status"] == "alert"
    alerts = collect_alerts(CFG, scores=shifted.reset_index())
    assert "email_a" in set(alerts["subject"]) and alerts["retrain_recommended"].any()


def test_policy_profile_and_drift(spark):
    def decisions(shares, n=1000):
        rows = []
        i = 0
        for (action, bucket), share in shares.items():
            for _ in range(int(share * n)):
                rows.append((f"s{i}", action, bucket, action if bucket == "policy" else "email_a"))
                i += 1
        return spark.createDataFrame(rows, ["customer_id", "action", "bucket", "policy_action"])

    ref = build_policy_profile(decisions({("email_a", "policy"): 0.5, ("none", "policy"): 0.45, ("none", "holdout"): 0.05}),
                               {"campaign_id": "c1", "budget": 1000.0, "costs": {"email_a": 2.0}})
    assert ref["actions"] == {"email_a": 0.5, "none": 0.5}
    assert ref["budget_use"] == pytest.approx(500 * 2.0 / 1000.0)
    same = policy_drift(ref, ref, CFG)
    assert (same["status"] == "ok").all()
    cur = build_policy_profile(decisions({("email_a", "policy"): 0.8, ("none", "policy"): 0.15, ("none", "holdout"): 0.05}),
                               {"budget_use": 1.2})
    moved = policy_drift(cur, ref, CFG)
    share = moved[(moved.metric == "action_share") & (moved.action == "email_a")].iloc[0]
    assert share["status"] == "warn" and share["difference"] == pytest.approx(0.3)
    budget = moved[moved.metric == "budget_use"].iloc[0]
    assert budget["status"] == "warn" and budget["current"] == pytest.approx(1.2)
    mix = moved[moved.metric == "mix_psi"].iloc[0]
    p = np.array([0.5, 0.45, 0.05])  # cells email_a|policy, none|policy, none|holdout
    q = np.array([0.8, 0.15, 0.05])
    assert mix["current"] == pytest.approx(numpy_psi(p, q, CFG.psi_epsilon))
    alerts = collect_alerts(CFG, policy=moved)
    assert len(alerts) >= 2 and not alerts["retrain_recommended"].any()


def campaign(spark, n=8000, seed=11, effects=None, base=0.10):
    """Decisions (80% policy / 20% holdout) and an outcome feed listing converters only."""
    effects = effects or {"email_a": 0.06, "email_b": 0.0}
    rng = np.random.default_rng(seed)
    ids = [f"s{i:06d}" for i in range(n)]
    policy_action = rng.choice(list(effects), size=n)
    holdout = rng.random(n) < 0.2
    action = np.where(holdout, "none", policy_action)
    p = base + np.where(holdout, 0.0, [effects[a] for a in policy_action])
    conv = (rng.random(n) < p).astype(int)
    decided = pd.Timestamp("2025-03-01")
    dec = pd.DataFrame({"customer_id": ids, "campaign_id": "spring", "action": action,
                        "bucket": np.where(holdout, "holdout", "policy"), "policy_action": policy_action,
                        "expected_uplift": [effects[a] for a in policy_action], "decided_at": decided})
    out = pd.DataFrame({"customer_id": np.array(ids)[conv == 1], "conversion": 1,
                        "outcome_at": decided + pd.Timedelta(days=3)})
    # conversions dated before the decision must not count
    early = pd.DataFrame({"customer_id": np.array(ids)[:200][conv[:200] == 0], "conversion": 1,
                          "outcome_at": decided - pd.Timedelta(days=1)})
    outcomes = pd.concat([out, early], ignore_index=True)
    return dec, outcomes, conv


def test_realized_uplift_recovers_the_known_effect(spark):
    dec, outcomes, conv = campaign(spark)
    per_customer = campaign_outcomes(spark.createDataFrame(dec), spark.createDataFrame(outcomes),
                                     {"conversion": "binary"}, CFG)
    res = realized_uplift(per_customer, ["conversion"], CFG, expected_outcome="conversion").set_index("action")
    assert set(res.index) == {"email_a", "email_b"}
    for action, true_effect in (("email_a", 0.06), ("email_b", 0.0)):
        row = res.loc[action]
        assert row["ci_low"] <= true_effect <= row["ci_high"], row.to_dict()
        t = conv[(dec.bucket == "policy") & (dec.action == action)]
        c = conv[(dec.bucket == "holdout") & (dec.policy_action == action)]
        assert row["n_treated"] == len(t) and row["n_holdout"] == len(c)
        assert row["realized_uplift"] == pytest.approx(t.mean() - c.mean(), abs=1e-12)
        se = math.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
        assert row["se"] == pytest.approx(se, rel=1e-9)
        welch = stats.ttest_ind(t, c, equal_var=False)
        assert (row["realized_uplift"] / row["se"]) == pytest.approx(welch.statistic, rel=1e-9)
        assert row["expected_uplift"] == pytest.approx(true_effect)
        assert row["status"] == "ok"
    assert res.loc["email_a", "ci_low"] > 0  # the effect is detected


def test_realized_uplift_alerts_on_harm(spark):
    dec, outcomes, _ = campaign(spark, effects={"email_a": -0.07, "email_b": 0.0}, seed=12, base=0.2)
    dec["expected_uplift"] = 0.03
    per_customer = campaign_outcomes(spark.createDataFrame(dec), spark.createDataFrame(outcomes),
                                     {"conversion": "binary"}, CFG)
    res = realized_uplift(per_customer, ["conversion"], CFG).set_index("action")
    assert res.loc["email_a", "status"] == "alert" and res.loc["email_a", "ci_high"] < 0
    assert res.loc["email_b", "status"] == "warn"  # expected +0.03, realized ≈ 0
    alerts = collect_alerts(CFG, realized=res.reset_index())
    assert alerts.loc[alerts["subject"] == "email_a", "retrain_recommended"].all()


def test_profile_roundtrip_is_json(tmp_path, reference):
    _, profile = reference
    path = save_profile({**profile, "scores": {"arms": {}, "x": float("nan")}}, str(tmp_path))
    text = open(path, encoding="utf-8").read()
    assert "NaN" not in text
    back = load_profile(str(tmp_path))
    assert back["features"]["x0"]["edges"] == profile["features"]["x0"]["edges"]
    with pytest.raises(MonitoringError, match="no reference profile"):
        load_profile(str(tmp_path / "missing"))


def test_monitoring_config_keys():
    cfg = config_from_dict({"monitoring": {"psi_warn": 0.2, "psi_alert": 0.3, "missing_outcome": "drop"}})
    assert cfg.monitoring.psi_alert == 0.3 and cfg.monitoring.missing_outcome == "drop"
    with pytest.raises(Exception, match="missing_outcome"):
        config_from_dict({"monitoring": {"missing_outcome": "guess"}})
