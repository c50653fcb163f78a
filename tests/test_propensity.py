"""X-learner with ``model.propensity: estimate`` on an experiment whose assignment depends on a covariate.

The propensity booster is checked against the true assignment probability, and the effects against
the known true effect (the data are confounded by x1: it drives both assignment and outcome).
"""

import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import LightGBMConfig

FEATURES = ["x0", "x1", "x2"]
LGB = LightGBMConfig(num_iterations=60, learning_rate=0.1, num_leaves=8, min_data_in_leaf=40,
                     early_stopping_round=10, num_tasks=1, seed=3)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def confounded_rct(n=6000, seed=11):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    e = _sigmoid(1.2 * x[:, 1])  # P(email_a | x): depends on x1, which also drives the outcome
    arm = np.where(rng.random(n) < e, "email_a", "control")
    base = -0.8 + 0.6 * x[:, 1]
    p0, p1 = _sigmoid(base), _sigmoid(base + 1.5 * x[:, 0])
    conversion = (rng.random(n) < np.where(arm == "email_a", p1, p0)).astype(int)
    u = rng.random(n)
    return pd.DataFrame({"customer_id": [f"c{i:06d}" for i in range(n)], "arm": arm,
                         "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "conversion": conversion,
                         "split": np.where(u < 0.2, "valid", np.where(u < 0.4, "test", "train")),
                         "true_e": e, "true_uplift": p1 - p0})


@pytest.fixture(scope="module")
def fitted(spark):
    from pyspark.sql import functions as F

    from uplift_spark.learners import XLearner

    pdf = confounded_rct()
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)
    model = XLearner(outcomeCol="conversion", outcomeType="binary", controlArm="control", treatmentArms=["email_a"],
                     featureCols=FEATURES, categoricalCols=[], validationCol="is_valid", backend="synapseml",
                     lightgbm=LGB, propensity="estimate", propensityClip=0.02).fit(df.where("split != 'test'"))
    return pdf, df, model


def test_estimated_propensity_tracks_the_true_assignment_probability(fitted):
    import lightgbm as lgb

    pdf, _, model = fitted
    assert model.propensity["mode"] == "estimate" and "prop_email_a" in model.boosters
    test = pdf[pdf.split == "test"]
    booster = lgb.Booster(model_str=model.boosters["prop_email_a"])
    assert booster.feature_name() == model.encoding.booster_names
    est = booster.predict(test[FEATURES].to_numpy(dtype=np.float64))
    assert np.corrcoef(est, test.true_e)[0, 1] > 0.9
    assert np.mean(np.abs(est - test.true_e)) < 0.08
    # a constant (the arm share) would miss the covariate completely
    assert np.mean(np.abs(est - test.true_e)) < 0.5 * np.mean(np.abs(test.true_e.mean() - test.true_e))


def test_effects_with_estimated_propensity_recover_the_true_uplift(fitted):
    pdf, df, model = fitted
    scored = model.transform(df.where("split = 'test'")).select("customer_id", "uplift_email_a").toPandas()
    got = scored.merge(pdf[["customer_id", "true_uplift"]], on="customer_id")
    assert len(got) == int((pdf.split == "test").sum())
    assert np.corrcoef(got.uplift_email_a, got.true_uplift)[0, 1] > 0.75
    pehe = float(np.sqrt(np.mean((got.uplift_email_a - got.true_uplift) ** 2)))
    constant = float(np.sqrt(np.mean((got.true_uplift.mean() - got.true_uplift) ** 2)))
    assert pehe < 0.7 * constant
