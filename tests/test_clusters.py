"""Cluster-randomized experiments (data.cluster): whole-cluster splits, cluster gates, cluster-robust
bootstrap and standard errors, checked against NumPy references and simulations with known truth."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from uplift_spark.config import DataConfig, MonitoringConfig, OotConfig, OutcomeSpec, SplitConfig, SyntheticConfig
from uplift_spark.config import ValidationConfig
from uplift_spark.datasets import generate_synthetic, synthetic_data_config
from uplift_spark.evaluation.bootstrap import percentile_interval, poisson_weights
from uplift_spark.evaluation.cluster_agg import cluster_moments
from uplift_spark.evaluation.cluster_se import cluster_difference_se, cluster_mean_se
from uplift_spark.evaluation.scan import ScanSettings, scan_uplift
from uplift_spark.monitoring.realized import realized_uplift
from uplift_spark.splitting import assign_splits, resolve_cutoff
from uplift_spark.validation import failures, run_checks
from uplift_spark.validation.clusters import icc_anova

DATA = DataConfig(
    control_arm="control", treatment_arms=("a",), assigned_at="assigned_at", features=("x0",),
    outcomes=(OutcomeSpec("y"),), primary_outcome="y", cluster="household_id",
    allocation={"control": 0.5, "a": 0.5},
)


# --------------------------------------------------------------------------------- NumPy: the maths


def _clustered_sample(rng, clusters: int, mean_size: float, sigma_cluster: float, tau: float):
    """Outcome = tau*T + cluster effect + noise; the arm is drawn per cluster (50/50)."""
    sizes = rng.geometric(1.0 / mean_size, clusters)
    cid = np.repeat(np.arange(clusters), sizes)
    arm = rng.random(clusters) < 0.5
    u = rng.normal(0.0, sigma_cluster, clusters)
    t = arm[cid].astype(float)
    y = tau * t + u[cid] + rng.normal(0.0, 1.0, cid.size)
    return cid, t, y


def test_cluster_se_reduces_to_the_customer_se_and_matches_the_cr1_formula():
    rng = np.random.default_rng(3)
    y = rng.normal(size=500)
    mean, se = cluster_mean_se(y, np.ones_like(y))  # one customer per cluster
    assert mean == pytest.approx(y.mean())
    assert se == pytest.approx(y.std(ddof=1) / math.sqrt(y.size), rel=1e-12)

    cid, t, yy = _clustered_sample(rng, 80, 4.0, 1.0, 0.3)
    sums_t = np.bincount(cid, weights=yy * t, minlength=80)
    sums_c = np.bincount(cid, weights=yy * (1 - t), minlength=80)
    n_t = np.bincount(cid, weights=t, minlength=80)
    n_c = np.bincount(cid, weights=1 - t, minlength=80)
    keep_t, keep_c = n_t > 0, n_c > 0
    diff, se = cluster_difference_se(sums_t[keep_t], n_t[keep_t], sums_c[keep_c], n_c[keep_c])
    # reference: CR1 sandwich of each arm's ratio mean, written from the formula
    ref_var = 0.0
    for s, n in ((sums_t[keep_t], n_t[keep_t]), (sums_c[keep_c], n_c[keep_c])):
        m = s.sum() / n.sum()
        g = s.size
        ref_var += g / (g - 1) * np.sum((s - m * n) ** 2) / n.sum() ** 2
    assert diff == pytest.approx(yy[t == 1].mean() - yy[t == 0].mean(), rel=1e-12)
    assert se == pytest.approx(math.sqrt(ref_var), rel=1e-10)


def _coverage(draws: int, replicates: int, seed: int = 20):
    """Share of draws whose 95 % percentile bootstrap CI of the average effect covers the truth, for
    Poisson weights per cluster and per customer (the project's weight function, random hashes)."""
    rng = np.random.default_rng(seed)
    tau = 0.3
    hit = {"cluster": 0, "customer": 0}
    for _ in range(draws):
        cid, t, y = _clustered_sample(rng, 200, 6.0, 1.5, tau)
        cluster_hash = rng.integers(-2**63, 2**63 - 1, cid.max() + 1, dtype=np.int64)
        customer_hash = rng.integers(-2**63, 2**63 - 1, cid.size, dtype=np.int64)
        for kind, h in (("cluster", cluster_hash[cid]), ("customer", customer_hash)):
            w = poisson_weights(h, replicates)[:, 1:]
            est = (w * (y * t)[:, None]).sum(0) / (w * t[:, None]).sum(0) - \
                (w * (y * (1 - t))[:, None]).sum(0) / (w * (1 - t)[:, None]).sum(0)
            low, high = percentile_interval(est, 0.95)
            hit[kind] += low <= tau <= high
    return {k: v / draws for k, v in hit.items()}


def test_cluster_bootstrap_covers_the_truth_and_the_customer_bootstrap_does_not():
    cov = _coverage(draws=150, replicates=150)
    print("coverage of the 95% bootstrap CI over 150 draws:", cov)
    assert 0.90 <= cov["cluster"] <= 0.98
    assert cov["customer"] < 0.80  # design effect ~ 1 + (6-1)*0.69 = 4.5: customer-level CIs far too narrow


def test_icc_anova_matches_the_one_way_anova_reference():
    rng = np.random.default_rng(5)
    cid, t, y = _clustered_sample(rng, 300, 4.0, 1.0, 0.5)
    per_arm = []
    for arm in (0.0, 1.0):
        mask = t == arm
        c, yy = cid[mask], y[mask]
        n = np.bincount(c)[np.unique(c)].astype(float)
        s = np.bincount(c, weights=yy)[np.unique(c)]
        per_arm.append({"y_n": n.sum(), "y_nn": (n * n).sum(), "y_g": float(n.size), "y_s": s.sum(),
                        "y_ss": (yy * yy).sum(), "y_between": (s * s / n).sum()})
    got = icc_anova(per_arm)
    # reference: pandas group means, ANOVA mean squares
    df = pd.DataFrame({"c": cid, "t": t, "y": y})
    df["res"] = df.y - df.groupby("t").y.transform("mean")
    cm = df.groupby("c").agg(n=("y", "size"), m=("y", "mean"), t=("t", "first"))
    cm["arm_mean"] = cm.t.map(df.groupby("t").y.mean())
    G, N, A = len(cm), len(df), 2
    msb = (cm.n * (cm.m - cm.arm_mean) ** 2).sum() / (G - A)
    msw = ((df.y - df.c.map(cm.m)) ** 2).sum() / (N - G)
    n0 = (N - sum((g.n ** 2).sum() / g.n.sum() for _, g in cm.groupby("t"))) / (G - A)
    icc = (msb - msw) / (msb + (n0 - 1) * msw)
    assert got["icc"] == pytest.approx(icc, rel=1e-9)
    assert got["design_effect"] == pytest.approx(1 + (n0 - 1) * icc, rel=1e-9)
    assert 0.35 < got["icc"] < 0.65  # truth 1 / (1 + 1) = 0.5


# --------------------------------------------------------------------------------- Spark plumbing


def _households(spark, n=900, late_members=True, mix=0):
    """Customers c*, households h* of 1..5 members with one arm and time each; a few households get a
    later extra member (so they straddle any cutoff); ``mix`` households get a member in the other arm."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 6, n // 3)
    hh = np.repeat(np.arange(sizes.size), sizes)[:n]
    g = hh.max() + 1
    arm = np.where(rng.random(g) < 0.5, "control", "a")[hh].astype(object)
    day = rng.integers(0, 180, g)[hh]
    if late_members:
        day = np.where((hh % 37 == 5) & (np.arange(hh.size) % 2 == 1), day + 40, day)
    u = rng.normal(0, 1.5, g)[hh]
    y = ((u + 0.5 * (arm == "a") + rng.normal(size=hh.size)) > 0.8).astype(int)
    for k in range(mix):
        first = np.flatnonzero(hh == k)[0]
        if (hh == k).sum() > 1:
            arm[first] = "a" if arm[first] == "control" else "control"
    pdf = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(hh.size)],
        "household_id": [f"h{k:05d}" for k in hh],
        "arm": arm, "x0": rng.normal(size=hh.size), "y": y,
        "assigned_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(day, unit="D"),
    })
    return spark.createDataFrame(pdf), pdf


def test_split_assigns_whole_clusters_deterministically(spark):
    df, pdf = _households(spark)
    cfg = SplitConfig(oot=OotConfig(fraction=0.2), n_folds=3, min_rows_per_arm=1)
    cutoff = resolve_cutoff(df, DATA, cfg.oot)
    got = assign_splits(df, DATA, cfg, cutoff_micros=cutoff).toPandas()
    assert len(got) == len(pdf) and got.customer_id.is_unique
    m = pdf.merge(got, on="customer_id")
    per_hh = m.groupby("household_id").agg(splits=("split", "nunique"), folds=("fold", "nunique"),
                                           last=("assigned_at", "max"))
    assert (per_hh.splits == 1).all() and (per_hh.folds == 1).all()
    # out-of-time: a household with any assignment at/after the cutoff is wholly oot, and only those
    cut = pd.Timestamp(cutoff, unit="us")
    oot = m.groupby("household_id").split.first() == "oot"
    assert (oot == (per_hh["last"] >= cut)).all()
    straddling = m.groupby("household_id").assigned_at.agg(lambda s: s.min() < cut <= s.max())
    assert straddling.sum() > 0 and oot[straddling].all()
    # the in-time shares are shares of households (fractions 0.6/0.2/0.2 up to sampling error)
    shares = m[m.split != "oot"].groupby("household_id").split.first().value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.06 and abs(shares["test"] - 0.2) < 0.06
    # reruns and another partitioning give the same split
    again = assign_splits(df.repartition(5).orderBy(F.rand(2)), DATA, cfg).toPandas()
    pd.testing.assert_frame_equal(got.sort_values("customer_id").reset_index(drop=True),
                                  again.sort_values("customer_id").reset_index(drop=True))
    # without data.cluster the same log splits customers of one household apart
    plain = assign_splits(df, dataclasses.replace(DATA, cluster=None), cfg, cutoff_micros=cutoff).toPandas()
    assert (pdf.merge(plain, on="customer_id").groupby("household_id").split.nunique() > 1).any()


def test_validation_fails_mixed_clusters_with_column_and_count_only(spark):
    df, pdf = _households(spark, mix=7, late_members=False)
    results = run_checks(df, DATA, ValidationConfig(min_rows_per_arm=10))
    bad = [r for r in failures(results) if r.check == "cluster_arms"]
    assert len(bad) == 1
    msg = bad[0].message
    mixed = int((pdf.groupby("household_id").arm.nunique() > 1).sum())
    assert mixed >= 3
    assert "'household_id'" in msg and msg.startswith(f"{mixed} cluster(s)") and bad[0].metric == mixed
    assert not any(tok in msg for tok in list(pdf.customer_id) + list(pdf.household_id))


@pytest.fixture(scope="module")
def clean_checks(spark):
    clean, cpdf = _households(spark, late_members=False)
    return clean, cpdf, run_checks(clean, DATA, ValidationConfig(min_rows_per_arm=10))


def test_validation_counts_clusters_and_balances_cluster_means(clean_checks):
    clean, cpdf, checks = clean_checks
    results = {(r.check, r.column): r for r in checks}
    assert results[("cluster_arms", "household_id")].status == "pass"
    srm = results[("srm", "household_id")]
    hh = cpdf.groupby("household_id").arm.first().value_counts()
    from scipy.stats import chisquare
    assert srm.metric == pytest.approx(chisquare([hh["control"], hh["a"]]).pvalue, rel=1e-9)
    assert "clusters" in srm.message
    bal = results[("cluster_balance", "x0")]
    cm = cpdf.groupby("household_id").agg(x=("x0", "mean"), arm=("arm", "first"))
    mt, mc = cm[cm.arm == "a"].x, cm[cm.arm == "control"].x
    smd = (mt.mean() - mc.mean()) / math.sqrt((mt.var(ddof=0) + mc.var(ddof=0)) / 2)
    assert bal.metric == pytest.approx(abs(smd), rel=1e-9)
    deff = results[("design_effect", "y")]
    assert deff.metric > 1.3  # strong household effect
    assert not any(r.check == "srm" and r.column == "arm" for r in results.values())


def test_scan_bootstrap_weights_are_per_cluster_and_equal_the_numpy_path(spark):
    df, pdf = _households(spark, late_members=False)
    scored = df.withColumn("score", F.col("x0")).withColumn("t", (F.col("arm") == "a").cast("int"))
    settings = ScanSettings(replicates=30, seed=11, cut_fractions=(0.5,))
    res = scan_uplift(scored, "score", "t", "y", "customer_id", settings, cluster_col="household_id")
    hashes = scored.select("customer_id", F.xxhash64(F.col("household_id").cast("string"), F.lit(11)).alias("h")
                           ).toPandas().set_index("customer_id").h.reindex(pdf.customer_id).to_numpy()
    w = poisson_weights(hashes, 30)
    t = (pdf.arm == "a").to_numpy(float)
    y = pdf.y.to_numpy(float)
    ref = np.stack([w.sum(0), (w * t[:, None]).sum(0), (w * (y * t)[:, None]).sum(0),
                    (w * (y * (1 - t))[:, None]).sum(0)])
    np.testing.assert_allclose(res.totals, ref, rtol=1e-12)
    # every member shares its household's weight
    wdf = pd.DataFrame(w[:, 1:]).assign(hh=pdf.household_id.to_numpy())
    assert (wdf.groupby("hh").nunique().max() == 1).all()
    plain = scan_uplift(scored, "score", "t", "y", "customer_id", settings)
    assert not np.allclose(plain.totals[:, 1:], res.totals[:, 1:])
    np.testing.assert_allclose(plain.totals[:, 0], res.totals[:, 0])


def test_realized_uplift_cluster_se_matches_numpy(spark):
    rng = np.random.default_rng(9)
    cid, t, y = _clustered_sample(rng, 200, 3.0, 1.0, 0.2)
    pdf = pd.DataFrame({"customer_id": [f"c{i}" for i in range(cid.size)], "hh": [f"h{k}" for k in cid],
                        "bucket": np.where(t == 1, "policy", "holdout"), "action": "a", "policy_action": "a",
                        "y": y})
    df = spark.createDataFrame(pdf)
    cfg = MonitoringConfig()
    got = realized_uplift(df, ["y"], cfg, cluster_col="hh").iloc[0]
    sums_t = pdf[pdf.bucket == "policy"].groupby("hh").y.agg(["sum", "size"])
    sums_c = pdf[pdf.bucket == "holdout"].groupby("hh").y.agg(["sum", "size"])
    diff, se = cluster_difference_se(sums_t["sum"], sums_t["size"], sums_c["sum"], sums_c["size"])
    assert got.realized_uplift == pytest.approx(diff, rel=1e-12)
    assert got.se == pytest.approx(se, rel=1e-9)
    plain = realized_uplift(df, ["y"], cfg).iloc[0]
    assert plain.realized_uplift == pytest.approx(diff, rel=1e-12)
    assert got.se > 1.3 * plain.se  # the customer-level SE ignores the household correlation
    moments = cluster_moments(df.withColumn("g", F.lit(1)), "y", "hh", ["g"])[(1,)]
    assert moments.clusters == 200 and moments.n == cid.size


def test_synthetic_households_share_arm_time_and_are_in_the_contract(spark):
    cfg = SyntheticConfig(n_rows=3000, n_numeric=4, n_categorical=1, treatment_arms=("a",), cluster_size=3.0,
                          cluster_effect=2.0, partitions=2)
    pdf = generate_synthetic(spark, cfg).toPandas()
    per = pdf.groupby("household_id").agg(arms=("arm", "nunique"), times=("assigned_at", "nunique"),
                                          n=("arm", "size"))
    assert (per.arms == 1).all() and (per.times == 1).all()
    assert 2.5 < per.n.mean() < 3.6
    assert synthetic_data_config(cfg).cluster == "household_id"
    # the shared household shift makes outcomes correlated within households (ICC well above 0)
    # without cluster_size the columns and rows are the customer-randomized ones
    plain = generate_synthetic(spark, dataclasses.replace(cfg, cluster_size=None)).toPandas()
    assert "household_id" not in plain.columns and synthetic_data_config(SyntheticConfig()).cluster is None
    np.testing.assert_array_equal(plain.x0.to_numpy(), pdf.x0.to_numpy())
    # the shared household shift correlates outcomes within households: household means vary far more
    # than the same grouping of the customer-randomized outcomes
    def between(y):
        return pd.Series(y).groupby(pdf.household_id.to_numpy()).mean()[per.n >= 3].var()
    assert between(pdf.conversion.to_numpy()) > 1.5 * between(plain.conversion.to_numpy())


def test_report_says_cluster_randomized_with_clusters_per_arm(spark, clean_checks):
    from uplift_spark.report.clusters import cluster_sentence
    from uplift_spark.validation import to_frame

    df, pdf, checks = clean_checks
    frame = to_frame(spark, checks, "r1").toPandas()
    text = cluster_sentence(frame)
    per_arm = pdf.groupby("arm").household_id.nunique()
    assert "cluster-randomized by 'household_id'" in text
    assert f"control: {per_arm['control']:,}" in text and f"a: {per_arm['a']:,}" in text
    plain = to_frame(spark, run_checks(df, dataclasses.replace(DATA, cluster=None), ValidationConfig()), "r1")
    assert cluster_sentence(plain.toPandas()) is None
