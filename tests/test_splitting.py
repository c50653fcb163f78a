"""Honest splits: determinism, customer level, out-of-time order, stratified balance, clear failures."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from uplift_spark.config import DataConfig, OotConfig, OutcomeSpec, SplitConfig, UpliftConfig, RunConfig
from uplift_spark.errors import ConfigError, SplitError
from uplift_spark.splitting import (
    assign_splits, check_splits, expected_splits, resolve_cutoff, summarize_splits,
)
from uplift_spark.splitting.assign import attach_splits

N = 3000  # customers
ARMS = ("control", "a", "b")
RATES = {"control": 0.20, "a": 0.30, "b": 0.25}
DAY_US = 86_400 * 1_000_000

DATA = DataConfig(
    control_arm="control", treatment_arms=("a", "b"), assigned_at="assigned_at",
    features=("x0",), outcomes=(OutcomeSpec("conversion"), OutcomeSpec("revenue", "continuous", min=0.0)),
    primary_outcome="conversion",
)
NO_TIME = dataclasses.replace(DATA, assigned_at=None)


def _log(spark, n=N, second_rows=300, tiny_arm=None):
    """An experiment log: one row per customer over 180 days, plus a second, later row (+40 days, same
    arm) for ``second_rows`` customers, some of whom therefore straddle any cutoff."""
    arm_ix = (F.abs(F.xxhash64(F.col("id"), F.lit("arm"))) % 3 + 1).cast("int")
    arm = F.element_at(F.array(*[F.lit(a) for a in ARMS]), arm_ix)
    if tiny_arm:
        arm = F.when(F.col("id") % 500 == 7, F.lit(tiny_arm)).otherwise(arm)
    base = spark.range(n).select(
        "id",
        F.format_string("c%06d", "id").alias("customer_id"),
        arm.alias("arm"),
        F.expr(f"timestamp'2025-01-01' + make_interval(0,0,0,0,0,0, id * {180 * 86400 // n})").alias("assigned_at"),
        F.rand(5).alias("x0"),
    )
    rows = base.unionByName(
        base.where(F.col("id") % (n // second_rows) == 3).withColumn(
            "assigned_at", F.col("assigned_at") + F.expr("INTERVAL 40 DAYS"))
    )
    rate = F.when(F.col("arm") == "a", RATES["a"]).when(F.col("arm") == "b", RATES["b"]).otherwise(RATES["control"])
    u = F.rand(11)
    return rows.select(
        "customer_id", "arm", "assigned_at", "x0",
        (u < rate).cast("int").alias("conversion"),
        F.when(u < rate, F.exp(F.rand(13) * 3)).otherwise(F.lit(0.0)).alias("revenue"),
    ).drop("id")


@pytest.fixture(scope="module")
def log_df(spark):
    df = _log(spark).repartition(3).cache()
    assert df.count() == N + 300
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def log_pd(log_df):
    # Test-side reference only (3,300 rows): the module itself never collects customer rows.
    return log_df.toPandas()


def _fingerprint(splits):
    """Order-independent fingerprint of a split table (one job, not two exceptAll scans)."""
    h = F.xxhash64("customer_id", "split", "fold")
    return tuple(splits.agg(F.count("*"), F.sum(h % 1000003), F.sum(F.abs(h) % 999983)).first())


def _same(a, b) -> bool:
    return _fingerprint(a) == _fingerprint(b)


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("method", ["hash", "rank"])
def test_same_seed_same_split_across_runs_and_partitionings(log_df, method):
    cfg = SplitConfig(oot=OotConfig(fraction=0.25), n_folds=3, method=method)
    cutoff = resolve_cutoff(log_df, DATA, cfg.oot)
    first = _fingerprint(assign_splits(log_df, DATA, cfg, cutoff_micros=cutoff))
    assert first[0] == N
    assert _fingerprint(assign_splits(log_df, DATA, cfg)) == first  # rerun, cutoff recomputed
    reshuffled = log_df.repartition(7, "arm").orderBy(F.rand(3))
    assert _fingerprint(assign_splits(reshuffled, DATA, cfg, cutoff_micros=cutoff)) == first
    assert _fingerprint(assign_splits(log_df.coalesce(1), DATA, cfg, cutoff_micros=cutoff)) == first
    other = assign_splits(log_df, DATA, dataclasses.replace(cfg, seed=cfg.seed + 1), cutoff_micros=cutoff)
    moved = assign_splits(log_df, DATA, cfg, cutoff_micros=cutoff).alias("x").join(
        other.alias("y"), "customer_id").where("x.split != y.split").count()
    assert moved > 0.25 * N, "a different seed must give a different split"


def test_new_customers_do_not_move_old_ones(log_df):
    cfg = SplitConfig(n_folds=4)
    old = log_df.where(F.col("customer_id") < "c001500")
    before = assign_splits(old, NO_TIME, cfg)
    after = assign_splits(log_df, NO_TIME, cfg).join(before.select("customer_id"), "customer_id")
    assert before.count() == 1500
    assert _same(before, after)


# ------------------------------------------------------------------------------------------ balance


def test_split_arm_shares_and_outcome_rates_match_full_data(log_df, log_pd):
    cfg = SplitConfig(train=0.6, valid=0.2, test=0.2)
    splits = assign_splits(log_df, NO_TIME, cfg)
    summary = summarize_splits(attach_splits(log_df, splits, NO_TIME), NO_TIME).toPandas()
    check_splits(summary.to_dict("records"), NO_TIME, cfg, expected=("train", "valid", "test"))

    n_rows = len(log_pd)
    full_share = log_pd.groupby("arm").size() / n_rows
    full_rate = log_pd.groupby("arm")["conversion"].mean()
    full_rev = log_pd.groupby("arm")["revenue"].agg(["mean", "std"])
    conv = summary[summary.outcome == "conversion"].set_index(["split", "arm"])
    rev = summary[summary.outcome == "revenue"].set_index(["split", "arm"])
    for split, frac in (("train", 0.6), ("valid", 0.2), ("test", 0.2)):
        n_split = conv.loc[split, "rows"].sum()
        # Customers are assigned independently with P = frac: rows per split within 4 sigma.
        assert abs(n_split / n_rows - frac) < 4 * math.sqrt(frac * (1 - frac) / n_rows) + 0.01
        for arm in ARMS:
            p = full_share[arm]
            assert abs(conv.loc[(split, arm), "share"] - p) < 4 * math.sqrt(p * (1 - p) / n_split)
            n_arm = conv.loc[(split, arm), "rows"]
            r = full_rate[arm]
            assert abs(conv.loc[(split, arm), "outcome_mean"] - r) < 4 * math.sqrt(r * (1 - r) / n_arm)
            assert abs(rev.loc[(split, arm), "outcome_mean"] - full_rev.loc[arm, "mean"]) < (
                4 * full_rev.loc[arm, "std"] / math.sqrt(n_arm))
    # the summary's rows add up to the data, with the arm shares of each split summing to one
    assert conv["rows"].sum() == n_rows
    assert np.allclose(conv.groupby(level="split")["share"].sum(), 1.0)
    # independent recount of one cell straight from the joined rows
    joined = attach_splits(log_df, splits, NO_TIME)
    direct = joined.where("split = 'valid' AND arm = 'a'").agg(F.count("*"), F.avg("conversion")).first()
    assert direct[0] == conv.loc[("valid", "a"), "rows"]
    assert direct[1] == pytest.approx(conv.loc[("valid", "a"), "outcome_mean"])


def _rank_reference(n: int, cuts) -> dict:
    """Customers ranked r = 1..n in a stratum go to train while (r - 0.5)/n < train, etc."""
    pos = (np.arange(1, n + 1) - 0.5) / n
    t1, t2 = cuts
    return {"train": int((pos < t1).sum()), "valid": int(((pos >= t1) & (pos < t2)).sum()),
            "test": int((pos >= t2).sum())}


def test_rank_method_matches_fractions_exactly_per_stratum(log_df):
    cfg = SplitConfig(train=0.5, valid=0.3, test=0.2, method="rank", n_folds=5)
    got = assign_splits(log_df, NO_TIME, cfg, with_stratum=True)
    counts = got.groupBy("stratum", "split").count().toPandas().pivot(index="stratum", columns="split",
                                                                      values="count").fillna(0)
    assert len(counts) == 6  # 3 arms × binary outcome
    for stratum, row in counts.iterrows():
        n = int(row.sum())
        assert {k: int(row[k]) for k in ("train", "valid", "test")} == _rank_reference(n, (0.5, 0.8)), stratum
    folds = got.where("split = 'train'").groupBy("stratum", "fold").count().toPandas()
    for stratum, grp in folds.groupby("stratum"):
        assert sorted(grp["fold"]) == [0, 1, 2, 3, 4]
        assert grp["count"].max() - grp["count"].min() <= 1, stratum  # folds exact within a stratum


def test_folds_only_on_train_and_balanced(log_df):
    cfg = SplitConfig(n_folds=4)
    got = assign_splits(log_df, NO_TIME, cfg).groupBy("split", "fold").count().toPandas()
    assert set(got.loc[got.split != "train", "fold"]) == {-1}
    train = got[got.split == "train"].set_index("fold")["count"]
    assert sorted(train.index) == [0, 1, 2, 3]
    n_train = train.sum()
    assert (abs(train / n_train - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n_train)).all()
    none = assign_splits(log_df, NO_TIME, SplitConfig()).agg(F.min("fold"), F.max("fold")).first()
    assert tuple(none) == (-1, -1)


def test_continuous_outcome_bins_use_quantiles(log_df, log_pd):
    data = dataclasses.replace(DATA, primary_outcome="revenue")  # timestamps, but no oot configured
    cfg = SplitConfig(continuous_bins=4, quantile_error=0.0)
    got = assign_splits(log_df, data, cfg, with_stratum=True)
    counts = got.groupBy("stratum").count().toPandas().set_index("stratum")["count"]
    # reference: each customer's earliest row, bins from exact (inverted-CDF) quantiles with NumPy
    first = log_pd.sort_values(["customer_id", "assigned_at"]).groupby("customer_id").first()
    y = first["revenue"].to_numpy()
    edges = sorted(set(np.quantile(y, [0.25, 0.5, 0.75], method="inverted_cdf")))
    bins = 1 + sum((y > e).astype(int) for e in edges)
    ref = pd.Series(1, index=first.index).groupby([first["arm"], bins]).sum()
    for (arm, b), n in ref.items():
        assert counts[f"{arm}|q{b}"] == n
    assert counts.sum() == N


# ------------------------------------------------------------------------------------------ out of time


@pytest.mark.parametrize("oot", [OotConfig(cutoff="2025-05-15"), OotConfig(last_days=45), OotConfig(fraction=0.3)],
                         ids=["cutoff", "last_days", "fraction"])
def test_out_of_time_is_later_and_customer_level(log_df, log_pd, oot):
    cfg = SplitConfig(oot=oot)
    cutoff = resolve_cutoff(log_df, DATA, oot)
    t_us = log_pd["assigned_at"].astype("datetime64[us]").astype("int64").to_numpy()
    lo, hi = t_us.min(), t_us.max()
    expected = {
        "cutoff": int(pd.Timestamp("2025-05-15").value // 1000),
        "last_days": int(hi - 45 * DAY_US),
        "fraction": int(hi - round(0.3 * (hi - lo))),
    }[[k for k in ("cutoff", "last_days", "fraction") if getattr(oot, k) is not None][0]]
    assert cutoff == expected

    splits = assign_splits(log_df, DATA, cfg, cutoff_micros=cutoff, with_stratum=True)
    rows = attach_splits(log_df, splits, DATA).select(
        "customer_id", "split", F.expr("unix_micros(assigned_at)").alias("t"))
    stats = rows.groupBy(F.col("split") == "oot").agg(
        F.min("t").alias("lo"), F.max("t").alias("hi"), F.countDistinct("customer_id").alias("c")).collect()
    by = {r[0]: r for r in stats}
    assert by[False]["hi"] < cutoff  # no in-time row is at/after the cutoff
    # every oot customer has an assignment at/after the cutoff; every single-row oot customer's row
    # is later than every train/valid/test row
    per_customer = rows.where("split = 'oot'").groupBy("customer_id").agg(
        F.max("t").alias("last"), F.count("*").alias("n"), F.min("t").alias("first"))
    agg = per_customer.agg(F.min("last"), F.min(F.when(F.col("n") == 1, F.col("first")))).first()
    assert agg[0] >= cutoff and agg[1] > by[False]["hi"]
    # customers never straddle splits: one split per customer, and every customer is present
    assert splits.count() == splits.select("customer_id").distinct().count() == N
    assert rows.groupBy("customer_id").agg(F.countDistinct("split").alias("k")).where("k > 1").count() == 0
    # straddlers (rows on both sides of the cutoff) are wholly oot, and the flag says so
    ref = log_pd.assign(t=t_us).groupby("customer_id")["t"].agg(["min", "max"])
    n_straddle = int(((ref["min"] < cutoff) & (ref["max"] >= cutoff)).sum())
    assert n_straddle > 0
    assert splits.where("straddles").count() == n_straddle
    assert splits.where("split = 'oot'").count() == int((ref["max"] >= cutoff).sum())


def test_no_timestamps_means_no_oot(log_df):
    cfg = SplitConfig(oot=OotConfig(fraction=0.3))
    assert resolve_cutoff(log_df, NO_TIME, cfg.oot) is None
    got = {r["split"] for r in assign_splits(log_df, NO_TIME, cfg).select("split").distinct().collect()}
    assert got == {"train", "valid", "test"}
    assert expected_splits(cfg, with_oot=False) == ("train", "valid", "test")


def test_hillstrom_stratified_split(spark, hillstrom_path):
    raw = spark.read.csv(hillstrom_path, header=True, inferSchema=True)
    df = raw.select(
        F.format_string("h%06d", F.monotonically_increasing_id()).alias("customer_id"),
        F.col("segment").alias("arm"), "visit", "conversion", "spend",
    ).cache()
    data = DataConfig(control_arm="No E-Mail", treatment_arms=("Mens E-Mail", "Womens E-Mail"),
                      outcomes=(OutcomeSpec("visit"), OutcomeSpec("conversion"), OutcomeSpec("spend", "continuous")),
                      primary_outcome="visit")
    cfg = SplitConfig(train=0.7, valid=0.15, test=0.15, oot=OotConfig(fraction=0.2))
    splits = assign_splits(df, data, cfg)
    summary = summarize_splits(attach_splits(df, splits, data), data).collect()
    totals = check_splits(summary, data, cfg, expected=expected_splits(cfg, with_oot=False))
    assert sum(totals.values()) == 64000 and set(totals) == {"train", "valid", "test"}
    full = {r["segment"]: (r["n"], r["v"]) for r in raw.groupBy("segment").agg(
        F.count("*").alias("n"), F.avg("visit").alias("v")).collect()}
    for r in summary:
        if r["outcome"] != "visit":
            continue
        n_full, v_full = full[r["arm"]]
        p = n_full / 64000
        n_split = totals[r["split"]]
        assert abs(r["share"] - p) < 4 * math.sqrt(p * (1 - p) / n_split)
        assert abs(r["outcome_mean"] - v_full) < 4 * math.sqrt(v_full * (1 - v_full) / r["rows"])
    df.unpersist()


# ------------------------------------------------------------------------------------------ failures


def _rows(counts):
    return [{"split": s, "arm": a, "outcome": "y", "rows": n, "share": 0.0, "outcome_mean": 0.0}
            for (s, a), n in counts.items()]


def test_check_splits_names_split_and_arm():
    cfg = SplitConfig(min_rows_per_arm=20)
    ok = {(s, a): 50 for s in ("train", "valid", "test") for a in ARMS}
    assert check_splits(_rows(ok), DATA, cfg, expected=("train", "valid", "test")) == {
        "train": 150, "valid": 150, "test": 150}
    cases = [
        ({**ok, ("valid", "control"): 0}, "split 'valid' has no control rows (arm 'control')"),
        ({k: v for k, v in ok.items() if k != ("test", "b")}, "split 'test' has no rows for treatment arm 'b'"),
        ({**ok, ("train", "a"): 0, ("train", "b"): 0}, "split 'train' has no treated rows"),
        ({**ok, ("test", "a"): 7}, "split 'test', arm 'a': 7 rows, below split.min_rows_per_arm=20"),
    ]
    for counts, message in cases:
        with pytest.raises(SplitError) as err:
            check_splits(_rows(counts), DATA, cfg, expected=("train", "valid", "test"))
        assert message in str(err.value)
    with pytest.raises(SplitError, match="split 'oot' has no rows"):
        check_splits(_rows(ok), DATA, cfg, expected=("train", "valid", "test", "oot"))


def test_tiny_arm_fails_with_its_name(spark):
    data = dataclasses.replace(NO_TIME, treatment_arms=("a", "b", "rare"))
    df = _log(spark, n=2500, tiny_arm="rare")  # 5 customers in arm 'rare'
    cfg = SplitConfig(min_rows_per_arm=20)
    summary = summarize_splits(attach_splits(df, assign_splits(df, data, cfg), data), data).collect()
    with pytest.raises(SplitError, match=r"arm 'rare': \d rows, below split.min_rows_per_arm=20"):
        check_splits(summary, data, cfg, expected=expected_splits(cfg, False))


def test_bad_cutoffs_and_null_timestamps_fail_clearly(spark, log_df):
    with pytest.raises(ConfigError, match="split.oot.cutoff: cannot parse 'next tuesday'"):
        resolve_cutoff(log_df, DATA, OotConfig(cutoff="next tuesday"))
    nulls = log_df.withColumn("assigned_at", F.when(F.col("customer_id") == "c000010", None)
                              .otherwise(F.col("assigned_at")))
    with pytest.raises(SplitError, match="column 'assigned_at' has 1 null"):
        resolve_cutoff(nulls, DATA, OotConfig(last_days=30))
    with pytest.raises(SplitError, match="empty experiment log"):
        resolve_cutoff(log_df.limit(0), DATA, OotConfig(fraction=0.2))


# ------------------------------------------------------------------------------------------ pipeline


def test_split_pipeline_writes_idempotently_and_cleans_up_on_failure(spark, log_df, tmp_path, monkeypatch):
    from pyspark.sql import DataFrame

    from uplift_spark.pipelines import split as split_stage
    from uplift_spark.pipelines.context import RunContext
    from uplift_spark.schemas import TABLE_COLUMNS

    cfg = UpliftConfig(run=RunConfig(output_root=str(tmp_path)), data=DATA,
                       split=SplitConfig(oot=OotConfig(last_days=40), n_folds=3))
    ctx = RunContext(spark=spark, cfg=cfg, run_id="r1")
    ctx.store.write(log_df.withColumn("run_id", F.lit("r1")), "experiment_log", "r1")

    # no collect/toPandas of anything as large as the customers inside the stage
    sizes = []
    real_collect = DataFrame.collect

    def counting_collect(self):
        out = real_collect(self)
        sizes.append(len(out))
        return out

    def no_topandas(self):
        raise AssertionError("the split stage must not call toPandas")

    monkeypatch.setattr(DataFrame, "collect", counting_collect)
    monkeypatch.setattr(DataFrame, "toPandas", no_topandas)
    first = split_stage.run(ctx)
    monkeypatch.undo()
    assert sizes and max(sizes) <= 50

    second = split_stage.run(ctx)  # rerun: same rows, no duplicates
    assert first["customers"] == second["customers"]
    assert sum(first["customers"].values()) == N and first["oot_customers_with_earlier_rows"] > 0
    splits = ctx.store.read("splits", run_id="r1")
    assert [(f.name, f.dataType.simpleString()) for f in splits.schema.fields] == list(TABLE_COLUMNS["splits"])
    assert splits.count() == N and splits.select("customer_id").distinct().count() == N
    summary = ctx.store.read("split_summary", run_id="r1")
    assert summary.columns == [c for c, _ in TABLE_COLUMNS["split_summary"]]
    assert summary.count() == 4 * 3 * 2  # splits × arms × outcomes
    assert summary.where("outcome = 'conversion'").agg(F.sum("rows")).first()[0] == N + 300
    expected = assign_splits(log_df, DATA, cfg.split).withColumn("run_id", F.lit("r1"))
    assert _same(splits.select("customer_id", "split", "fold"), expected.select("customer_id", "split", "fold"))

    # another run's rows stay; a failing split of r1 removes r1's stale rows and leaves r2 alone
    ctx.store.write(splits.limit(5).withColumn("run_id", F.lit("r2")), "splits", "r2")
    bad = RunContext(spark=spark, cfg=cfg.replace(split=dataclasses.replace(cfg.split, min_rows_per_arm=10_000)),
                     run_id="r1")
    with pytest.raises(SplitError, match="below split.min_rows_per_arm=10000"):
        split_stage.run(bad)
    assert ctx.store.read("splits", run_id="r1").count() == 0
    assert ctx.store.read("split_summary", run_id="r1").count() == 0
    assert ctx.store.read("splits", run_id="r2").count() == 5
