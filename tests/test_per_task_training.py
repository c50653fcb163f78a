"""model.distribution: per-task boosters equal single-process lightgbm; auto picks per booster by size."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learner_data import make_rct  # noqa: E402

from uplift_spark.config import LightGBMConfig  # noqa: E402
from uplift_spark.errors import ModelError  # noqa: E402

CFG = LightGBMConfig(num_iterations=60, learning_rate=0.3, num_leaves=16, min_data_in_leaf=5,
                     early_stopping_round=3, seed=5)


def _data(seed, n=3000):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x[:, 2] = rng.integers(0, 4, n)  # a categorical code
    y_bin = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x[:, 0] - 0.3 * (x[:, 2] == 1)))).astype(float)
    y_reg = x[:, 0] * 2.0 + (x[:, 2] == 3) + rng.normal(size=n)
    valid = rng.random(n) < 0.3
    return x, y_bin, y_reg, valid


def _reference(x, y, valid, objective, cat):
    """lightgbm.train in this process with the parameters the trainers map LightGBMConfig to."""
    import lightgbm as lgb

    from uplift_spark.learners import lightgbm_params

    params = dict(lightgbm_params(CFG, objective), num_threads=1, first_metric_only=True)
    dtrain = lgb.Dataset(x[~valid], y[~valid], feature_name=["a", "b", "c"], categorical_feature=cat or "auto")
    return lgb.train(params, dtrain, CFG.num_iterations, valid_sets=[lgb.Dataset(x[valid], y[valid], reference=dtrain)],
                     callbacks=[lgb.early_stopping(CFG.early_stopping_round, first_metric_only=True, verbose=False)])


def test_per_task_boosters_equal_single_process_lightgbm(spark):
    """Two independent boosters (binary, regression) trained side by side in ONE Spark job, each on its
    own rows in one task, equal lightgbm.train on the same rows and parameters to 1e-9."""
    import lightgbm as lgb

    from uplift_spark.learners.per_task_trainer import PerTaskTrainer
    from uplift_spark.learners.trainer_base import BoosterSpec

    x, y_bin, _, valid = _data(21)
    x2, _, y_reg, valid2 = _data(22, n=2500)
    mk = lambda x, y, v: spark.createDataFrame(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y, "v": v}))
    # several input partitions (slices of the pandas frame, in order): the task reads them in order
    df_bin, df_reg = mk(x, y_bin, valid), mk(x2, y_reg, valid2)
    assert df_bin.rdd.getNumPartitions() > 1
    trainer = PerTaskTrainer(spark, CFG)
    sc = spark.sparkContext
    sc.setJobGroup("per_task_many", "per-task training")
    try:
        res = trainer.train_many([BoosterSpec(df_bin, "y", ["a", "b", "c"], ["a", "b", "c"], "binary", [2], "v"),
                                  BoosterSpec(df_reg, "y", ["a", "b", "c"], ["a", "b", "c"], "regression", [2], "v")])
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    for got, (xx, yy, vv, obj) in zip(res, [(x, y_bin, valid, "binary"), (x2, y_reg, valid2, "regression")]):
        ref = _reference(xx, yy, vv, obj, [2])
        assert 1 < ref.best_iteration < CFG.num_iterations, obj  # early stopping did stop
        assert got.strategy == "per_task" and got.num_tasks == 1 and got.best_iteration == ref.best_iteration
        ours = lgb.Booster(model_str=got.model_str)
        assert ours.num_trees() == ref.best_iteration
        np.testing.assert_allclose(ours.predict(xx), ref.predict(xx, num_iteration=ref.best_iteration),
                                   rtol=0, atol=1e-9)
    # one training job (with prepare's cache fills and class-count jobs before it)
    jobs = [sc.statusTracker().getJobInfo(j) for j in sc.statusTracker().getJobIdsForGroup("per_task_many")]
    assert len(jobs) >= 1
    assert len(trainer.trained) == 2


def test_per_task_rejects_single_class_booster(spark):
    from uplift_spark.learners.per_task_trainer import PerTaskTrainer

    df = spark.createDataFrame(pd.DataFrame({"a": [0.1, 0.2, 0.3], "y": [1.0, 1.0, 1.0]}))
    with pytest.raises(ModelError, match="single class"):
        PerTaskTrainer(spark, CFG).train(df, "y", ["a"], ["a"], "binary")


def test_memory_rule():
    from uplift_spark.learners.per_task_trainer import booster_bytes, memory_bytes

    assert memory_bytes("1g") == 2 ** 30 and memory_bytes("512m") == 512 * 2 ** 20 and memory_bytes("2048") == 2 ** 31
    assert memory_bytes("4096k") == 4 * 2 ** 20
    with pytest.raises(ModelError, match="memory setting"):
        memory_bytes("lots")
    assert booster_bytes(2_500_000, 20) == 400_000_000


def test_default_threshold_from_driver_memory_on_local_master(spark):
    """local[2] with 3g driver memory: a quarter of it shared by 2 concurrent tasks."""
    from uplift_spark.learners.per_task_trainer import default_per_task_max_bytes, memory_bytes

    mem = memory_bytes(spark.sparkContext.getConf().get("spark.driver.memory", "1g"))
    slots = 2 // int(spark.conf.get("spark.task.cpus", "1") or 1)
    assert spark.sparkContext.master == "local[2]"
    assert default_per_task_max_bytes(spark) == int(mem * 0.25 / slots)


def test_auto_picks_per_booster_by_size(spark):
    """The same learner fit: a tiny threshold sends every booster to the distributed backend, the
    default threshold trains them per task; both give the same uplift ranking quality."""
    from pyspark.sql import functions as F

    from uplift_spark.learners import TLearner
    from uplift_spark.learners.distribution import DistributionTrainer
    from uplift_spark.learners.trainers import make_trainer

    # the rule itself: below the threshold per_task, at or above it distributed
    router = make_trainer(spark, CFG, "barrier", "auto", 1000)
    assert isinstance(router, DistributionTrainer)
    assert router.choose(41, 3) == "per_task" and router.choose(42, 3) == "distributed"
    assert make_trainer(spark, CFG, "barrier", "per_task", 1).choose(10 ** 9, 20) == "per_task"
    with pytest.raises(ModelError, match="distribution"):
        make_trainer(spark, CFG, "barrier", "sometimes")

    pdf = make_rct(n=3000, seed=4)
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)
    lgb = LightGBMConfig(num_iterations=20, learning_rate=0.2, num_leaves=8, min_data_in_leaf=30,
                         early_stopping_round=5, num_tasks=1, seed=3)
    common = dict(outcomeCol="conversion", treatmentArms=["email_a"], featureCols=["x0", "x1", "x2", "c0"],
                  categoricalCols=["c0"], validationCol="is_valid", backend="barrier", lightgbm=lgb)
    small = TLearner(perTaskMaxBytes=1, **common).fit(df)
    auto = TLearner(**common).fit(df)
    assert {b["strategy"] for b in small.training["boosters"].values()} == {"distributed"}
    assert {b["backend"] for b in small.training["boosters"].values()} == {"barrier"}
    assert small.training["backend"] == "barrier"
    assert set(auto.training["boosters"]) == {"mu_control", "mu_email_a"}
    assert {b["strategy"] for b in auto.training["boosters"].values()} == {"per_task"}
    assert auto.training["backend"] == "per_task" and auto.training["distribution"] == "auto"
    test = df.where("split = 'test'")
    for model in (small, auto):
        scored = model.transform(test).select("uplift_email_a", "true_uplift_email_a").toPandas()
        assert scored.corr().iloc[0, 1] > 0.3
