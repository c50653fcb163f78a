"""Synthetic generator, Hillstrom loader and source readers, checked against independent references."""

import dataclasses
import math
import os

import numpy as np
import pytest
from pyspark.sql import functions as F

from uplift_spark.config import DataConfig, SyntheticConfig
from uplift_spark.datasets import (
    generate_synthetic, load_hillstrom, read_source, resolve_path, synthetic_data_config,
)
from uplift_spark.datasets.synthetic import harmed_threshold
from uplift_spark.errors import ConfigError, DataError
from uplift_spark.validation import contract_problems

HILLSTROM_FACTS = {  # /work/shared/data/README.md
    "Mens E-Mail": (21307, 0.1828, 0.0125, 1.4226),
    "Womens E-Mail": (21387, 0.1514, 0.0088, 1.0772),
    "No E-Mail": (21306, 0.1062, 0.0057, 0.6528),
}


def _fingerprint(df):
    """Order-independent digest of every value of every row."""
    return df.select(F.sum(F.xxhash64(*df.columns) % 1000003).alias("h"), F.count(F.lit(1)).alias("n")).first()


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_same_seed_same_data_whatever_the_partitioning(spark):
    cfg = SyntheticConfig(partitions=2, seed=5)
    a = _fingerprint(generate_synthetic(spark, cfg, n_rows=3000))
    b = _fingerprint(generate_synthetic(spark, dataclasses.replace(cfg, partitions=3), n_rows=3000))
    c = _fingerprint(generate_synthetic(spark, dataclasses.replace(cfg, seed=6), n_rows=3000))
    assert a["n"] == b["n"] == 3000
    assert a["h"] == b["h"]
    assert a["h"] != c["h"]


def test_synthetic_columns_match_the_contract_and_its_data_config(spark):
    cfg = SyntheticConfig(n_numeric=4, n_categorical=2, months=3, partitions=2)
    df = generate_synthetic(spark, cfg, n_rows=3000)
    data = synthetic_data_config(cfg)
    assert contract_problems(df.schema, data) == []
    expected = (["customer_id", "arm", "assigned_at", "features_at", "x0", "x1", "x2", "x3", "c0", "c1",
                 "opted_in", "days_since_contact", "conversion", "revenue"]
                + [f"propensity_{a}" for a in ("control", "email_a", "email_b", "discount")]
                + [f"true_uplift_{a}" for a in ("email_a", "email_b", "discount")])
    assert df.columns == expected
    assert data.features == ("x0", "x1", "x2", "x3", "c0", "c1")
    assert data.outcome_like_columns == ("true_uplift_email_a", "true_uplift_email_b", "true_uplift_discount")
    assert data.outcome("revenue").min == 0.0 and data.primary_outcome == "conversion"
    stats = df.select(
        F.count_distinct("customer_id").alias("ids"), F.min("customer_id").alias("first"),
        F.sum(F.when(F.col("features_at") >= F.col("assigned_at"), 1).otherwise(0)).alias("late"),
        F.min("assigned_at").alias("t0"), F.max("assigned_at").alias("t1"),
        F.max(F.abs(F.col("propensity_control") + F.col("propensity_email_a") + F.col("propensity_email_b")
                    + F.col("propensity_discount") - 1)).alias("psum"),
        F.min("revenue").alias("rmin"),
        F.sum(F.when((F.col("conversion") == 0) & (F.col("revenue") > 0), 1).otherwise(0)).alias("rev0"),
        F.count_distinct("c0").alias("levels"),
    ).first()
    assert stats["ids"] == 3000 and stats["first"] == "s0000000000"
    assert stats["late"] == 0
    assert str(stats["t0"]) >= "2025-01-01" and str(stats["t1"]) < "2025-04-01"
    assert stats["psum"] < 1e-12 and stats["rmin"] >= 0 and stats["rev0"] == 0 and stats["levels"] == 4


def test_true_uplift_matches_empirical_uplift_and_harmed_segment(spark):
    cfg = SyntheticConfig(seed=11, harmed_share=0.2, partitions=2)
    cut = harmed_threshold(cfg)
    df = generate_synthetic(spark, cfg, n_rows=40000).withColumn("harmed", F.col("x2") > F.lit(cut))
    arms = ("email_a", "email_b", "discount")
    rows = df.groupBy("harmed", "arm").agg(
        F.count(F.lit(1)).alias("n"), F.avg("conversion").alias("y"),
        *[F.avg(f"true_uplift_{a}").alias(f"tau_{a}") for a in arms],
        *[F.max(f"true_uplift_{a}").alias(f"max_{a}") for a in arms],
        *[F.min(f"true_uplift_{a}").alias(f"min_{a}") for a in arms],
    ).collect()
    cells = {(r["harmed"], r["arm"]): r for r in rows}
    for harmed in (False, True):
        ctrl = cells[(harmed, "control")]
        for arm in arms:
            t = cells[(harmed, arm)]
            empirical = t["y"] - ctrl["y"]
            # the truth averaged over both arms' rows (randomized: same population)
            truth = (t[f"tau_{arm}"] * t["n"] + ctrl[f"tau_{arm}"] * ctrl["n"]) / (t["n"] + ctrl["n"])
            se = math.sqrt(t["y"] * (1 - t["y"]) / t["n"] + ctrl["y"] * (1 - ctrl["y"]) / ctrl["n"])
            assert abs(empirical - truth) < 4 * se, (harmed, arm, empirical, truth, se)
            if harmed:  # sleeping dogs: every treatment hurts in the harmed segment, nowhere else
                assert max(c[f"max_{arm}"] for (h, _), c in cells.items() if h) < 0
                assert truth < -0.01
            else:
                assert min(c[f"min_{arm}"] for (h, _), c in cells.items() if not h) > 0
    share = sum(r["n"] for r in rows if r["harmed"]) / sum(r["n"] for r in rows)
    assert abs(share - 0.2) < 0.01


def test_drift_shifts_the_drift_features_in_later_months(spark):
    cfg = SyntheticConfig(months=4, drift_strength=1.5, seed=3, drift=True, partitions=2)
    df = generate_synthetic(spark, cfg, n_rows=16000)
    rows = df.groupBy(F.month("assigned_at").alias("m")).agg(
        F.avg("x0").alias("x0"), F.avg("x2").alias("x2"), F.stddev("x0").alias("sd")).collect()
    out = {True: {r["m"]: r for r in rows}}
    assert sorted(out[True]) == [1, 2, 3, 4]
    first, last = out[True][1], out[True][4]
    assert abs((last["x0"] - first["x0"]) - 1.5) < 0.12  # last month shifted by drift_strength std
    assert abs(out[True][3]["x0"] - first["x0"] - 1.0) < 0.12  # month 3 of 4: 2/3 of the way
    assert abs(last["x2"] - first["x2"]) < 0.12  # x2 is not a drift feature
    assert abs(first["sd"] - 1.0) < 0.06


def test_covariate_propensities_are_the_assignment_probabilities(spark):
    cfg = SyntheticConfig(propensity="covariate", allocation={"control": 0.4, "email_a": 0.2, "email_b": 0.2,
                                                              "discount": 0.2}, seed=9, partitions=2)
    df = generate_synthetic(spark, cfg, n_rows=20000).withColumn("hi", F.col("x0") > 0)
    arms = ("control", "email_a", "email_b", "discount")
    rows = df.groupBy("hi").agg(
        F.count(F.lit(1)).alias("n"),
        *[F.avg((F.col("arm") == a).cast("double")).alias(f"obs_{a}") for a in arms],
        *[F.avg(f"propensity_{a}").alias(f"p_{a}") for a in arms],
    ).collect()
    by = {r["hi"]: r for r in rows}
    for r in rows:
        for a in arms:
            se = math.sqrt(r[f"p_{a}"] * (1 - r[f"p_{a}"]) / r["n"])
            assert abs(r[f"obs_{a}"] - r[f"p_{a}"]) < 4 * se
    # covariate-dependent: email_a is more likely for high x0, email_b less
    assert by[True]["p_email_a"] > by[False]["p_email_a"] + 0.03
    assert by[True]["p_email_b"] < by[False]["p_email_b"] - 0.03
    assert synthetic_data_config(cfg).allocation["control"] == pytest.approx(0.4)


def test_synthetic_config_errors():
    with pytest.raises(ConfigError, match="synthetic.allocation: no share for arm 'email_b'"):
        synthetic_data_config(SyntheticConfig(allocation={"control": 1, "email_a": 1, "discount": 1}))
    with pytest.raises(ConfigError, match="drift_features: 'x9'"):
        synthetic_data_config(SyntheticConfig(drift=True, drift_features=("x9",)))


# ------------------------------------------------------------------------------------------ Hillstrom


def test_hillstrom_loader_counts_means_and_stable_ids(spark, hillstrom_path):
    df = load_hillstrom(spark, hillstrom_path)
    assert df.columns[:2] == ["customer_id", "arm"] and "segment" not in df.columns
    rows = df.groupBy("arm").agg(F.count(F.lit(1)).alias("n"), F.avg("visit").alias("visit"),
                                 F.avg("conversion").alias("conv"), F.avg("spend").alias("spend")).collect()
    assert {r["arm"] for r in rows} == set(HILLSTROM_FACTS)
    for r in rows:
        n, visit, conv, spend = HILLSTROM_FACTS[r["arm"]]
        assert r["n"] == n
        assert r["visit"] == pytest.approx(visit, abs=5e-5)
        assert r["conv"] == pytest.approx(conv, abs=5e-5)
        assert r["spend"] == pytest.approx(spend, abs=5e-5)
    # independent reference: the file's own lines (NumPy), row k ↔ h{k:05d}
    raw = np.genfromtxt(hillstrom_path, delimiter=",", skip_header=1, usecols=(2,))
    picks = ["h00001", "h00002", "h31999", "h64000"]
    ref = {f"h{k + 1:05d}": raw[k] for k in (0, 1, 31998, 63999)}
    got = {r["customer_id"]: r["history"] for r in df.where(F.col("customer_id").isin(picks)).collect()}
    assert got == pytest.approx(ref)
    # ids do not depend on how the file is split
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "200000")
    try:
        split = load_hillstrom(spark, hillstrom_path)
        assert split.rdd.getNumPartitions() > 5
        got_split = {r["customer_id"]: r["history"] for r in split.where(F.col("customer_id").isin(picks)).collect()}
        stats = split.select(F.count_distinct("customer_id").alias("ids"), F.max("customer_id").alias("last")).first()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)
    assert got_split == got
    assert stats["ids"] == 64000 and stats["last"] == "h64000"


def test_hillstrom_missing_file_and_missing_column(spark, tmp_path):
    with pytest.raises(DataError, match="Hillstrom file not found"):
        load_hillstrom(spark, str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("recency,history\n1,2.0\n")
    with pytest.raises(DataError, match="missing column 'history_segment'"):
        load_hillstrom(spark, str(bad))


# ------------------------------------------------------------------------------------------ sources


def test_read_source_csv_parquet_delta_with_rename(spark, tmp_path):
    import pandas as pd

    pdf = pd.DataFrame({"cid": ["a", "b", "c"], "grp": ["control", "t", "t"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 1]})
    csv = tmp_path / "d.csv"
    pdf.to_csv(csv, index=False)
    sdf = spark.createDataFrame(pdf)
    sdf.write.parquet(str(tmp_path / "d.parquet"))
    sdf.write.format("delta").save(str(tmp_path / "d.delta"))
    for source, path in (("csv", csv), ("parquet", tmp_path / "d.parquet"), ("delta", tmp_path / "d.delta")):
        data = DataConfig(source=source, path=str(path), rename={"cid": "customer_id", "grp": "arm"})
        df = read_source(spark, data)
        assert set(df.columns) == {"customer_id", "arm", "x", "y"}
        assert sorted(r["x"] for r in df.collect()) == [1.0, 2.0, 3.0]
    with pytest.raises(DataError, match=r"data.rename \(source\): missing column 'nope'"):
        read_source(spark, DataConfig(source="csv", path=str(csv), rename={"nope": "arm"}))
    with pytest.raises(DataError, match="not a Delta table"):
        read_source(spark, DataConfig(source="delta", path=str(tmp_path / "d.parquet")))


def test_resolve_path_cwd_then_config_folder(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_path("conf/data.csv") == str(conf / "data.csv")  # from the cwd
    assert resolve_path("data.csv", str(conf / "x.yaml")) == str(conf / "data.csv")  # beside the config
    with pytest.raises(DataError, match="file or folder not found: 'missing.csv'"):
        resolve_path("missing.csv", str(conf / "x.yaml"))
    with pytest.raises(ConfigError, match="data.path: required"):
        resolve_path(None)
    assert os.path.isabs(resolve_path("conf"))


def test_shipped_synthetic_yaml_spells_out_the_generator_contract():
    from uplift_spark.config import load_config

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(root, "conf", "synthetic.yaml"))
    assert cfg.data == synthetic_data_config(cfg.synthetic)
    assert cfg.split.oot.fraction == 0.2 and set(cfg.policy.arms) == {"email_a", "email_b", "discount"}
