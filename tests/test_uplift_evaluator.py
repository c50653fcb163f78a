"""UpliftEvaluator: exact metric against scikit-uplift, model selection in TrainValidationSplit
checked against fitting each grid point by hand, and save/load of its Params."""

import json

import numpy as np
import pytest

from learner_data import make_rct
from uplift_spark.config import LightGBMConfig

ARMS = ["email_a", "email_b"]
FEATURES = ["x0", "x1", "x2", "c0"]
LGB = LightGBMConfig(num_iterations=20, learning_rate=0.1, num_leaves=8, min_data_in_leaf=20,
                     early_stopping_round=0, num_tasks=1, seed=5)
RATIO, SEED = 0.7, 7


def _sklift(pdf, arm, metric):
    from sklift.metrics import qini_auc_score, uplift_auc_score

    rows = pdf[pdf["arm"].isin([arm, "control"])]
    args = (rows["conversion"].to_numpy(), rows[f"uplift_{arm}"].to_numpy(), (rows["arm"] == arm).astype(int).to_numpy())
    return float(qini_auc_score(*args) if metric == "qini_auc" else uplift_auc_score(*args))


@pytest.mark.slow  # five T-learner fits (two grid points, the refit, two by hand): ~100 s on a busy 2-core machine
def test_train_validation_split_picks_best_qini_auc(spark):
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
    from pyspark.sql import functions as F

    from uplift_spark.evaluation import UpliftEvaluator
    from uplift_spark.learners import TLearner
    from uplift_spark.learners.tuning import lightgbm_grid

    pdf = make_rct(n=1500, seed=4)
    df = spark.createDataFrame(pdf[["customer_id", "arm", *FEATURES, "conversion", "propensity_email_a",
                                    "propensity_email_b", "propensity_control"]]).cache()
    learner = TLearner(outcomeCol="conversion", outcomeType="binary", treatmentArms=ARMS, featureCols=FEATURES,
                       categoricalCols=["c0"], backend="synapseml", lightgbm=LGB, propensityPrefix="propensity")
    points = lightgbm_grid(learner, num_leaves=[2, 16])
    assert [json.loads(p)["num_leaves"] for p in points] == [2, 16]
    assert all(json.loads(p)["num_iterations"] == 20 for p in points)  # the learner's other settings kept
    grid = ParamGridBuilder().addGrid(learner.lightgbmParams, points).build()
    ev = UpliftEvaluator(arm="email_a")
    tvs_model = TrainValidationSplit(estimator=learner, estimatorParamMaps=grid, evaluator=ev,
                                     trainRatio=RATIO, seed=SEED).fit(df)

    # the same split as TrainValidationSplit._fit: rand(seed) >= trainRatio is the validation set
    r = df.select("*", F.rand(SEED).alias("_r"))
    train, valid = r.where(F.col("_r") < RATIO), r.where(F.col("_r") >= RATIO)
    by_hand = []
    for i, pm in enumerate(grid):
        scored = learner.fit(train, pm).transform(valid)
        spdf = scored.select("arm", "conversion", "uplift_email_a", "uplift_email_b").toPandas()
        by_hand.append(_sklift(spdf, "email_a", "qini_auc"))
        if i == 0:  # the other metric and the other arm against sklift on the same rows
            for arm, metric in (("email_a", "uplift_auc"), ("email_b", "qini_auc")):
                got = UpliftEvaluator(arm=arm, metricName=metric).evaluate(scored)
                assert got == pytest.approx(_sklift(spdf, arm, metric), abs=1e-12), (arm, metric)
    assert np.asarray(tvs_model.validationMetrics) == pytest.approx(np.asarray(by_hand), abs=1e-12)
    assert abs(by_hand[0] - by_hand[1]) > 1e-6  # the choice is not a tie
    best = json.loads(tvs_model.bestModel.learner_params["lightgbmParams"])
    assert best["num_leaves"] == json.loads(points[int(np.argmax(by_hand))])["num_leaves"]
    df.unpersist()


def test_evaluator_params_round_trip_and_errors(spark, tmp_path):
    from uplift_spark.errors import ConfigError, DataError
    from uplift_spark.evaluation.evaluator import UpliftEvaluator

    ev = UpliftEvaluator(metricName="uplift_auc", arm="Mens E-Mail", armCol="segment", controlArm="No E-Mail",
                         outcomeCol="visit", idCol="cid")
    path = str(tmp_path / "ev")
    ev.write().overwrite().save(path)
    back = UpliftEvaluator.load(path)
    assert type(back) is UpliftEvaluator and back.uid == ev.uid
    for name in ("metricName", "arm", "armCol", "controlArm", "outcomeCol", "idCol"):
        assert back.getOrDefault(name) == ev.getOrDefault(name), name
    assert back.isLargerBetter()
    assert UpliftEvaluator().setArm("b").getArm() == "b" and UpliftEvaluator().getMetricName() == "qini_auc"

    df = spark.createDataFrame([("1", "email_a", 1, 0.3)], "customer_id string, arm string, conversion int, uplift_email_a double")
    with pytest.raises(ConfigError, match="metricName: 'auc'"):
        UpliftEvaluator(arm="email_a", metricName="auc").evaluate(df)
    with pytest.raises(ConfigError, match="no treatment arm"):
        UpliftEvaluator().evaluate(df)
    with pytest.raises(DataError, match="UpliftEvaluator: missing column 'uplift_email_b'"):
        UpliftEvaluator(arm="email_b").evaluate(df)
