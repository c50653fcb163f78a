"""The monitor stage end to end on real Delta tables: drift flagged, alerts written, reruns idempotent."""

import os

import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import config_from_dict
from uplift_spark.monitoring import load_profile
from uplift_spark.pipelines import monitor
from uplift_spark.pipelines.context import RunContext
from uplift_spark.schemas import conform

RUN = "r1"


def experiment_log(n=3000, seed=21):
    rng = np.random.default_rng(seed)
    split = rng.choice(["train", "test", "oot"], p=[0.5, 0.25, 0.25], size=n)
    df = pd.DataFrame({
        "run_id": RUN,
        "customer_id": [f"s{i:06d}" for i in range(n)],
        "arm": rng.choice(["control", "email_a"], size=n),
        "assigned_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 150, size=n), unit="D"),
        "x0": rng.normal(size=n), "x1": rng.normal(size=n), "x2": rng.normal(size=n),
        "c0": rng.choice(["a", "b", "c"], size=n),
        "conversion": (rng.random(n) < 0.1).astype(int),
    })
    df.loc[split == "oot", "x0"] += 1.0  # the out-of-time months drifted
    df.loc[split == "oot", "x1"] -= 0.8
    return df, split


@pytest.fixture(scope="module")
def ctx(spark, tmp_path_factory):
    from pyspark.sql import functions as F

    root = str(tmp_path_factory.mktemp("monitor"))
    cfg = config_from_dict({
        "run": {"output_root": root},
        "data": {"source": "synthetic", "control_arm": "control", "treatment_arms": ["email_a"],
                 "features": ["x0", "x1", "x2", "c0"], "categorical_features": ["c0"],
                 "outcomes": [{"name": "conversion"}], "assigned_at": "assigned_at"},
        "model": {"learners": ["t"]},
        "policy": {"campaign_id": "spring", "arms": {"email_a": {"benefit": 10.0, "cost": 0.1}}, "budget": 1000.0},
    })
    context = RunContext(spark=spark, cfg=cfg, run_id=RUN)
    pdf, split = experiment_log()
    log_df = spark.createDataFrame(pdf)
    context.store.write(log_df, "experiment_log", RUN)
    splits = spark.createDataFrame(pd.DataFrame({"run_id": RUN, "customer_id": pdf.customer_id, "split": split, "fold": 0}))
    context.store.write(conform(splits, "splits"), "splits", RUN)
    # held-out predictions of the "t" model: uplift = 0.05 + 0.02·x0 (the stub model below scores the same way)
    preds = log_df.join(splits.select("customer_id", "split"), "customer_id").where(F.col("split") == "test").select(
        F.lit(RUN).alias("run_id"), F.lit("t").alias("learner"), F.lit("conversion").alias("outcome"), "customer_id",
        "split", F.lit("email_a").alias("arm"), (F.lit(0.05) + F.lit(0.02) * F.col("x0")).alias("uplift"))
    context.store.write(conform(preds, "predictions"), "predictions", RUN)
    # a decided campaign on the test customers with a known effect of +0.06, and its outcome feed
    rng = np.random.default_rng(5)
    test_ids = pdf.customer_id[split == "test"].to_numpy()
    hold = rng.random(len(test_ids)) < 0.3
    conv = rng.random(len(test_ids)) < np.where(hold, 0.10, 0.16)
    decided = pd.Timestamp("2025-06-01")
    dec = pd.DataFrame({"run_id": RUN, "campaign_id": "spring", "customer_id": test_ids,
                        "action": np.where(hold, "none", "email_a"), "expected_value": 0.5, "expected_uplift": 0.06,
                        "bucket": np.where(hold, "holdout", "policy"), "policy_action": "email_a",
                        "reason": "test", "decided_at": decided, "expected_uplift_calibrated": 0.06,
                        "expected_value_calibrated": 0.5})
    context.store.write(conform(spark.createDataFrame(dec), "decisions"), "decisions", RUN)
    outcomes_path = os.path.join(root, "outcomes")
    spark.createDataFrame(pd.DataFrame({"customer_id": test_ids[conv], "conversion": 1,
                                        "outcome_at": decided + pd.Timedelta(days=2)})).write.format("delta").save(outcomes_path)
    test_path = os.path.join(root, "test_batch")
    log_df.join(splits.where(F.col("split") == "test").select("customer_id"), "customer_id").write.format("delta").save(test_path)
    context.paths = {"outcomes": outcomes_path, "test": test_path}
    return context


@pytest.fixture(autouse=True)
def stub_model(monkeypatch):
    """Stand-in for the saved learner (the UpliftModel API): adds uplift_email_a = 0.05 + 0.02·x0."""
    from pyspark.sql import functions as F

    monkeypatch.setattr(monitor, "_manifest", lambda ctx: {
        "models": [{"learner": "t", "outcome": "conversion", "path": "t"}], "treatment_arms": ["email_a"],
        "features": ["x0", "x1", "x2", "c0"], "categorical_features": ["c0"], "primary_outcome": "conversion"})
    monkeypatch.setattr(monitor, "_score", lambda ctx, entry, df, arms=(): (
        df.withColumn("uplift_email_a", F.lit(0.05) + F.lit(0.02) * F.col("x0")), ["email_a"]))


def counts(ctx, batch_id):
    return {name: ctx.store.read(name, run_id=RUN, batch_id=batch_id).count()
            for name in monitor.MONITOR_TABLES if ctx.store.exists(name)}


def test_default_batch_flags_drift_and_rerun_keeps_one_copy(ctx):
    summary = monitor.run(ctx, outcomes=ctx.paths["outcomes"])
    assert summary["batch_id"] == "oot"
    assert sorted(summary["features_drifted"]) == ["x0", "x1"]
    assert summary["retrain_recommended"] is True
    feats = ctx.store.read("drift_features", run_id=RUN, batch_id="oot").toPandas().set_index("feature")
    assert set(feats.index) == {"x0", "x1", "x2", "c0"}
    assert feats.loc["x0", "status"] == "alert" and feats.loc["x2", "status"] == "ok"
    assert feats["batch_time"].notna().all() and str(feats["batch_time"].max()) >= "2025-05-01"
    scores = ctx.store.read("drift_scores", run_id=RUN, batch_id="oot").toPandas().set_index("metric")
    assert scores.loc["uplift", "status"] == "alert" and scores.loc["uplift", "mean_shift"] > 0.8
    alerts = ctx.store.read("monitoring_alerts", run_id=RUN, batch_id="oot").toPandas()
    assert {"x0", "x1"} <= set(alerts["subject"]) and alerts["retrain_recommended"].any()
    realized = ctx.store.read("realized_uplift", run_id=RUN, batch_id="oot").toPandas().set_index("action")
    row = realized.loc["email_a"]
    assert row["ci_low"] <= 0.06 <= row["ci_high"] and row["expected_uplift"] == pytest.approx(0.06)
    profile = load_profile(ctx.model_dir)
    assert {"features", "scores", "policy"} <= set(profile)
    assert profile["policy"]["campaign_id"] == "spring"
    first = counts(ctx, "oot")
    assert first["drift_features"] == 4 and first["realized_uplift"] >= 1

    monitor.run(ctx, outcomes=ctx.paths["outcomes"])  # same batch id again
    assert counts(ctx, "oot") == first


def test_stable_batch_from_a_delta_path_raises_no_alert(ctx):
    summary = monitor.run(ctx, batch=ctx.paths["test"], batch_id="test-batch")
    assert summary["features_drifted"] == [] and summary["retrain_recommended"] is False
    feats = ctx.store.read("drift_features", run_id=RUN, batch_id="test-batch").toPandas()
    assert (feats["status"] == "ok").all() and feats["psi"].max() < 0.1
    assert ctx.store.read("monitoring_alerts", run_id=RUN, batch_id="test-batch").count() == 0
    # the other batch's rows are untouched
    assert ctx.store.read("drift_features", run_id=RUN, batch_id="oot").count() == 4
