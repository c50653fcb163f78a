"""T/X learners on Spark: effect recovery, agreement with a plain-lightgbm reference, persistence,
SynapseML ↔ PyPI booster compatibility and the barrier-mode trainer (2 tasks on local[2])."""

import dataclasses
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learner_data import encode as _encode, make_rct  # noqa: E402

from uplift_spark.config import LightGBMConfig  # noqa: E402
from uplift_spark.errors import ModelError  # noqa: E402

ARMS = ["email_a", "email_b"]
FEATURES = ["x0", "x1", "x2", "c0"]
LGB = LightGBMConfig(num_iterations=60, learning_rate=0.1, num_leaves=8, min_data_in_leaf=40,
                     early_stopping_round=10, num_tasks=1, seed=3)


def _spark_df(spark, pdf):
    from pyspark.sql import functions as F

    return spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)


def _pehe(est, true):
    return float(np.sqrt(np.mean((np.asarray(est) - np.asarray(true)) ** 2)))


@pytest.fixture(scope="module")
def rct(spark):
    pdf = make_rct(n=6000, seed=1)
    return pdf, _spark_df(spark, pdf)


def _learner(cls, **kw):
    args = dict(outcomeCol="conversion", outcomeType="binary", treatmentArms=ARMS, featureCols=FEATURES,
                categoricalCols=["c0"], validationCol="is_valid", backend="synapseml", lightgbm=LGB,
                propensityPrefix="propensity")
    args.update(kw)
    return cls(**args)


@pytest.fixture(scope="module")
def fitted(rct):
    from uplift_spark.learners import TLearner, XLearner

    _, df = rct
    train = df.where("split != 'test'")
    return {"t": _learner(TLearner).fit(train), "x": _learner(XLearner).fit(train)}


@pytest.fixture(scope="module")
def test_scores(rct, fitted):
    _, df = rct
    test = df.where("split = 'test'")
    cols = ["customer_id"] + [f"true_uplift_{a}" for a in ARMS]
    out = {}
    for name, model in fitted.items():
        out[name] = model.transform(test).select(*cols, *model.uplift_columns.values()).toPandas() \
            .sort_values("customer_id").reset_index(drop=True)
    return out


def test_learners_recover_known_effects(test_scores):
    for name, pdf in test_scores.items():
        for arm in ARMS:
            true, est = pdf[f"true_uplift_{arm}"], pdf[f"uplift_{arm}"]
            constant = _pehe(np.full(len(true), true.mean()), true)
            assert _pehe(est, true) < 0.85 * constant, (name, arm, _pehe(est, true), constant)
            assert np.corrcoef(est, true)[0, 1] > 0.5, (name, arm)
        # sleeping dogs: email_a's true effect is negative where x0 < 0 and the model sees it
        harmed = pdf["true_uplift_email_a"] < -0.05
        assert pdf.loc[harmed, "uplift_email_a"].mean() < 0 < pdf.loc[~harmed, "uplift_email_a"].mean()


def test_model_metadata_and_columns(fitted):
    t, x = fitted["t"], fitted["x"]
    assert sorted(t.boosters) == ["mu_control", "mu_email_a", "mu_email_b"]  # control trained once, shared
    assert sorted(x.boosters) == ["mu_control", "mu_email_a", "mu_email_b", "tau0_email_a", "tau0_email_b",
                                  "tau1_email_a", "tau1_email_b"]
    assert x.uplift_columns == {"email_a": "uplift_email_a", "email_b": "uplift_email_b"}
    assert x.propensity["mode"] == "columns" and x.propensity["constant"]["email_a"] == pytest.approx(0.3 / 0.7)
    assert x.encoding.categorical == ("c0",) and x.encoding.categories["c0"] == ["a", "b", "c"]  # by frequency
    per_arm = x.training["fingerprint"]["per_arm"]
    assert set(per_arm) == {"control", "email_a", "email_b"}
    # distribution auto (the default): these arms fit one task, so every booster (stage 2 too) trains
    # per task on the arm's rows as they are (cached once per fit, never repartitioned)
    assert set(x.training["boosters"]) == set(x.boosters) and x.training["distribution"] == "auto"
    assert {b["strategy"] for b in x.training["boosters"].values()} == {"per_task"}
    assert x.training["repartitioned"] == {"control": False, "email_a": False, "email_b": False}


def test_matches_single_machine_lightgbm_reference(rct, fitted, test_scores):
    """Same data, same params, one task, deterministic: the learner's boosters (per task by default;
    SynapseML's native 3.3.5 with ``distribution: distributed``) reproduce PyPI lightgbm 4.6. Not
    bit-exact in general (row order inside the task changes float summation order of histograms), so
    we allow 1e-4 on the probability scale; early-stopping picks the same iteration because
    validation losses agree to ~1e-12."""
    import lightgbm as lgb

    from uplift_spark.learners import lightgbm_params

    pdf, _ = rct
    model = fitted["t"]
    params = lightgbm_params(LGB, "binary")
    params["num_threads"] = 1
    test = pdf[pdf.split == "test"].sort_values("customer_id").reset_index(drop=True)
    mu = {}
    for arm in ["control"] + ARMS:
        tr = pdf[(pdf.arm == arm) & (pdf.split == "train")]
        va = pdf[(pdf.arm == arm) & (pdf.split == "valid")]
        dtrain = lgb.Dataset(_encode(tr, model), tr.conversion.astype(float),
                             categorical_feature=model.encoding.categorical_indexes)
        dvalid = lgb.Dataset(_encode(va, model), va.conversion.astype(float), reference=dtrain)
        booster = lgb.train(params, dtrain, LGB.num_iterations, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(LGB.early_stopping_round, verbose=False)])
        mu[arm] = booster.predict(_encode(test, model), num_iteration=booster.best_iteration)
    got = test_scores["t"]
    for arm in ARMS:
        np.testing.assert_allclose(got[f"uplift_{arm}"], mu[arm] - mu["control"], atol=1e-4)


def test_synapseml_booster_text_loads_in_pypi_lightgbm(spark):
    """SynapseML 1.1.3 bundles native LightGBM 3.3.5; its model text must predict identically in 4.6."""
    import lightgbm as lgb
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from synapse.ml.lightgbm import LightGBMClassifier

    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 3))
    y = (rng.random(1500) < 1 / (1 + np.exp(-(x[:, 0] + x[:, 1] * x[:, 2])))).astype(float)
    df = spark.createDataFrame(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": y}))
    # repartition, not coalesce: a barrier stage refuses ancestors with another partition count
    data = VectorAssembler(inputCols=["a", "b", "c"], outputCol="features").transform(df).repartition(1)
    model = LightGBMClassifier(numIterations=25, numLeaves=8, verbosity=-1, deterministic=True,
                               useBarrierExecutionMode=True, numTasks=1).fit(data)
    native = model.transform(data).select("a", "b", "c", vector_to_array("probability")[1].alias("p")).toPandas()
    booster = lgb.Booster(model_str=model.getNativeModel())
    ours = booster.predict(native[["a", "b", "c"]].to_numpy())
    np.testing.assert_allclose(ours, native["p"].to_numpy(), rtol=0, atol=1e-9)


def test_save_load_scores_identically_and_refuses_tampering(rct, fitted, test_scores, tmp_path):
    from uplift_spark.learners import UpliftModel, load_uplift_model

    _, df = rct
    path = fitted["x"].save(str(tmp_path / "x_model"))
    meta = json.load(open(os.path.join(path, "metadata.json")))
    assert set(meta["files"]) == {f"{k}.txt" for k in fitted["x"].boosters}
    assert meta["learner"] == "x" and meta["features"] == FEATURES and meta["treatment_arms"] == ARMS
    assert meta["training"]["fingerprint"]["per_arm"]["control"]["rows"] > 0
    loaded = UpliftModel.load(path)
    again = loaded.transform(df.where("split = 'test'")).select("customer_id", "uplift_email_a", "uplift_email_b") \
        .toPandas().sort_values("customer_id").reset_index(drop=True)
    np.testing.assert_array_equal(again["uplift_email_a"], test_scores["x"]["uplift_email_a"])
    np.testing.assert_array_equal(again["uplift_email_b"], test_scores["x"]["uplift_email_b"])

    victim = os.path.join(path, "tau1_email_b.txt")
    with open(victim, "a", encoding="utf-8") as fh:
        fh.write("\n# tampered\n")
    with pytest.raises(ModelError, match="tau1_email_b.txt"):
        load_uplift_model(path)
    os.remove(victim)
    with pytest.raises(ModelError, match="tau1_email_b.txt.*missing"):
        load_uplift_model(path)


def test_x_learner_beats_t_learner_with_small_treated_arm(spark):
    """10% treated: the X-learner's effect model leans on the big control group (Künzel et al.)."""
    from uplift_spark.learners import TLearner, XLearner

    pdf = make_rct(n=8000, shares=(0.8, 0.1, 0.1), seed=4)
    df = _spark_df(spark, pdf)
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    lgb_cfg = LightGBMConfig(num_iterations=60, learning_rate=0.1, num_leaves=8, min_data_in_leaf=40,
                             early_stopping_round=10, num_tasks=1, seed=3)
    pehe = {}
    for name, cls in (("t", TLearner), ("x", XLearner)):
        model = _learner(cls, treatmentArms=["email_a"], lightgbm=lgb_cfg, propensityPrefix="").fit(train)
        out = model.transform(test).select("uplift_email_a", "true_uplift_email_a").toPandas()
        pehe[name] = _pehe(out["uplift_email_a"], out["true_uplift_email_a"])
        if name == "x":
            assert model.propensity["source"] == "empirical"
            assert model.propensity["constant"]["email_a"] == pytest.approx(1 / 9, abs=0.02)
    assert pehe["x"] <= pehe["t"] * 1.02, pehe


def test_feature_encoding_unseen_and_null_are_missing(spark):
    from uplift_spark.learners import FeatureEncoding, fit_encoding

    df = spark.createDataFrame(pd.DataFrame({"c": ["b", "a", "b", "c", "b", "a"], "n": [1, 2, 3, 4, 5, 6]}))
    enc = fit_encoding(df, ["n", "c"], ["c"])
    assert enc.categories["c"] == ["b", "a", "c"] and enc.categorical_indexes == [1]
    assert FeatureEncoding.from_json(json.loads(json.dumps(enc.to_json()))) == enc
    new = spark.createDataFrame([("a", 1.0), ("zzz", None), (None, 2.0)], "c string, n double")
    rows = enc.transform(new).collect()
    assert rows[0][1] == 1.0 and rows[0][0] == 1.0
    assert np.isnan(rows[1][1]) and np.isnan(rows[1][0]) and np.isnan(rows[2][1])


def test_barrier_trainer_two_tasks_matches_reference_quality(spark):
    """PyPI lightgbm in a Spark barrier stage with 2 tasks (data-parallel network) on local[2]."""
    import lightgbm as lgb
    from pyspark.sql import functions as F

    from uplift_spark.learners import BarrierTrainer, lightgbm_params

    rng = np.random.default_rng(9)
    n = 4000
    x = rng.normal(size=(n, 3))
    y = 2.0 * x[:, 0] - x[:, 1] ** 2 + rng.normal(scale=0.5, size=n)
    valid = rng.random(n) < 0.2
    pdf = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y, "v": valid})
    df = spark.createDataFrame(pdf).withColumn("v", F.col("v").cast("boolean"))
    cfg = LightGBMConfig(num_iterations=80, learning_rate=0.1, num_leaves=8, min_data_in_leaf=20,
                         early_stopping_round=5, num_tasks=2, seed=1)
    res = BarrierTrainer(spark, cfg).train(df, "y", ["a", "b", "c"], ["a", "b", "c"], "regression", [], "v")
    assert res.num_tasks == 2 and res.backend == "barrier"
    ours = lgb.Booster(model_str=res.model_str).predict(x[valid])
    params = lightgbm_params(cfg, "regression")
    ref = lgb.train(params, lgb.Dataset(x[~valid], y[~valid]), cfg.num_iterations)
    mse_ours = float(np.mean((ours - y[valid]) ** 2))
    mse_ref = float(np.mean((ref.predict(x[valid]) - y[valid]) ** 2))
    assert mse_ours < 1.15 * mse_ref and mse_ours < 0.5 * np.var(y[valid]), (mse_ours, mse_ref)
    assert 0 < res.best_iteration <= cfg.num_iterations


def test_replay_early_stopping_matches_per_iteration_rule():
    """Syncing the validation loss every k iterations picks the iteration a per-iteration check picks."""
    from uplift_spark.learners.barrier_trainer import replay_early_stopping

    rng = np.random.default_rng(4)
    for trial in range(200):
        n_iter, rounds = int(rng.integers(5, 60)), int(rng.integers(1, 8))
        loss = np.cumsum(rng.normal(-0.01, 0.05, size=(2, n_iter)), axis=1) + 1.0
        rows = [float(rng.integers(0, 50)), float(rng.integers(1, 50))]  # one task may have no valid rows
        sums = loss * np.array(rows)[:, None]
        best, best_iter, stop_at = np.inf, 0, None  # reference: checked after every iteration
        for t in range(n_iter):
            score = sums[:, t].sum() / sum(rows)
            if score < best - 1e-15:
                best, best_iter = score, t
            if t - best_iter >= rounds:
                stop_at = t
                break
        k = int(rng.integers(1, 13))
        state, stopped = {"best": np.inf, "best_iter": 0}, None
        for first in range(0, n_iter, k):
            chunk = [[list(sums[j, first:first + k]), rows[j]] for j in range(2)]
            if replay_early_stopping(state, first, chunk, rounds):
                stopped = True
                break
        assert state["best_iter"] == best_iter, (trial, k)
        assert bool(stopped) == (stop_at is not None), (trial, k)


def test_barrier_trainer_early_stopping_equals_lightgbm(spark):
    """One barrier task (synced every 10 iterations) stops where lightgbm's own early_stopping does,
    with the same trees; two tasks keep exactly the best iteration's trees."""
    import lightgbm as lgb

    from uplift_spark.learners import BarrierTrainer, lightgbm_params

    rng = np.random.default_rng(21)
    n = 3000
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-0.4 * x[:, 0]))).astype(float)  # weak signal: stops early
    valid = rng.random(n) < 0.3
    pdf = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y, "v": valid})
    cfg = LightGBMConfig(num_iterations=60, learning_rate=0.3, num_leaves=16, min_data_in_leaf=5,
                         early_stopping_round=3, num_tasks=1, seed=5)
    df = spark.createDataFrame(pdf).repartition(1)
    res = BarrierTrainer(spark, cfg).train(df, "y", ["a", "b", "c"], ["a", "b", "c"], "binary", [], "v")
    params = dict(lightgbm_params(cfg, "binary"), num_threads=1, first_metric_only=True)
    dtrain = lgb.Dataset(x[~valid], y[~valid], feature_name=["a", "b", "c"])
    ref = lgb.train(params, dtrain, cfg.num_iterations,
                    valid_sets=[lgb.Dataset(x[valid], y[valid], reference=dtrain)],
                    callbacks=[lgb.early_stopping(cfg.early_stopping_round, verbose=False)])
    assert 1 < ref.best_iteration < cfg.num_iterations - cfg.early_stopping_round
    assert res.best_iteration == ref.best_iteration
    ours = lgb.Booster(model_str=res.model_str)
    assert ours.num_trees() == ref.best_iteration
    np.testing.assert_allclose(ours.predict(x), ref.predict(x, num_iteration=ref.best_iteration), atol=1e-10)

    two = BarrierTrainer(spark, dataclasses.replace(cfg, num_tasks=2)).train(
        spark.createDataFrame(pdf), "y", ["a", "b", "c"], ["a", "b", "c"], "binary", [], "v")
    assert two.num_tasks == 2 and 0 < two.best_iteration < cfg.num_iterations
    assert lgb.Booster(model_str=two.model_str).num_trees() == two.best_iteration


def test_known_propensity_sources():
    from uplift_spark.learners.propensity import known_propensity

    rows = {"control": 600, "a": 200, "b": 200}
    alloc = known_propensity([], "control", ["a", "b"], rows, {"control": 0.5, "a": 0.25, "b": 0.25}, None, 0.01)
    assert alloc["source"] == "allocation" and alloc["constant"]["a"] == pytest.approx(1 / 3)
    emp = known_propensity([], "control", ["a", "b"], rows, {}, None, 0.01)
    assert emp["source"] == "empirical" and emp["constant"]["b"] == pytest.approx(0.25)
    cols = known_propensity(["p_control", "p_a", "p_b"], "control", ["a", "b"], rows, {}, "p", 0.05,
                            {"a": 0.4, "b": 0.3})
    assert cols["mode"] == "columns" and cols["columns"]["a"] == "p_a" and cols["control_column"] == "p_control"


def test_combine_uplift_formulas():
    """τ_T = μ_k − μ_0; τ_X = e·τ0 + (1 − e)·τ1 with e from constant / columns / booster, clipped."""
    from uplift_spark.learners import model_class

    def combine_uplift(spec, preds, extra, n):  # each learner's Model class owns its formula
        return model_class(spec["learner"]).combine(spec, preds, extra, n)

    n = 4
    fake = {"mu_control": np.full(n, 0.1), "mu_a": np.array([0.2, 0.3, 0.1, 0.0]),
            "tau0_a": np.full(n, 0.5), "tau1_a": np.full(n, -0.5), "prop_a": np.array([0.0, 0.25, 0.5, 1.0])}
    preds = fake.__getitem__
    t = combine_uplift({"learner": "t", "control_key": "control", "arm_keys": {"A": "a"}, "propensity": {}},
                       preds, {}, n)
    np.testing.assert_allclose(t["A"], fake["mu_a"] - 0.1)
    base = {"learner": "x", "control_key": "control", "arm_keys": {"A": "a"}}
    est = combine_uplift(dict(base, propensity={"mode": "estimate", "clip": 0.1}), preds, {}, n)
    e = np.clip(fake["prop_a"], 0.1, 0.9)
    np.testing.assert_allclose(est["A"], e * 0.5 + (1 - e) * -0.5)
    const = combine_uplift(dict(base, propensity={"mode": "constant", "clip": 0.01, "constant": {"A": 0.2}}),
                           preds, {}, n)
    np.testing.assert_allclose(const["A"], 0.2 * 0.5 + 0.8 * -0.5)
    prop = {"mode": "columns", "clip": 0.01, "constant": {"A": 0.2}, "columns": {"A": "p_a"}, "control_column": "p_c"}
    cols = combine_uplift(dict(base, propensity=prop), preds,
                          {"p_a": np.array([0.3, 0.3, np.nan, 0.1]), "p_c": np.array([0.3, 0.1, 0.5, 0.3])}, n)
    e = np.array([0.5, 0.75, 0.2, 0.25])  # NaN row falls back to the training constant
    np.testing.assert_allclose(cols["A"], e * 0.5 + (1 - e) * -0.5)


def _persistent_rdds(spark) -> int:
    return spark.sparkContext._jsc.getPersistentRDDs().size()


def test_training_frame_skips_repartition_when_partitions_hold_both_classes(spark):
    """Input with exactly num_tasks partitions, each holding both classes, is cached as is (no shuffle);
    one partition per class is hash-repartitioned instead. Both train the same model as one-process
    lightgbm, and ``train`` on a DataFrame releases the cache it made."""
    import lightgbm as lgb

    from uplift_spark.learners import SynapseMLTrainer, lightgbm_params

    rng = np.random.default_rng(11)
    n = 3000
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))).astype(float)
    valid = rng.random(n) < 0.2
    pdf = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y, "v": valid})
    cfg = LightGBMConfig(num_iterations=40, learning_rate=0.1, num_leaves=8, min_data_in_leaf=20,
                         early_stopping_round=5, num_tasks=2, seed=2)
    trainer = SynapseMLTrainer(spark, cfg)
    mixed = spark.createDataFrame(pdf).repartition(2)  # round robin: both classes in both partitions
    by_class = spark.createDataFrame(pdf).repartitionByRange(2, "y")  # partition 0: y = 0 only

    frames = {"mixed": trainer.prepare(mixed, "y", "binary", "v"),
              "by_class": trainer.prepare(by_class, "y", "binary", "v")}
    try:
        assert frames["mixed"].repartitioned is False and frames["mixed"].n_tasks == 2
        assert frames["by_class"].repartitioned is True and frames["by_class"].n_tasks == 2
        for frame in frames.values():
            assert sum(frame.partition_rows) == int((~valid).sum()) and min(frame.partition_rows) > 0
            assert frame.valid_rows == int(valid.sum())
        preds = {k: lgb.Booster(model_str=trainer.train(f, "y", ["a", "b", "c"], ["a", "b", "c"], "binary",
                                                         [], "v").model_str).predict(x)
                 for k, f in frames.items()}
    finally:
        for frame in frames.values():
            frame.unpersist()
    params = dict(lightgbm_params(cfg, "binary"), num_threads=1)
    dtrain = lgb.Dataset(x[~valid], y[~valid])
    ref = lgb.train(params, dtrain, cfg.num_iterations, valid_sets=[lgb.Dataset(x[valid], y[valid], reference=dtrain)],
                    callbacks=[lgb.early_stopping(cfg.early_stopping_round, verbose=False)])
    expected = ref.predict(x, num_iteration=ref.best_iteration)
    np.testing.assert_allclose(preds["mixed"], expected, atol=1e-4)
    np.testing.assert_allclose(preds["by_class"], expected, atol=1e-4)

    before = _persistent_rdds(spark)
    # no validation rows at all: trained without early stopping (SynapseML itself fails on an empty set)
    no_valid = spark.createDataFrame(pdf.assign(v=False)).repartition(2)
    res = trainer.train(no_valid, "y", ["a", "b", "c"], ["a", "b", "c"], "binary", [], "v")
    assert lgb.Booster(model_str=res.model_str).num_trees() == cfg.num_iterations
    assert _persistent_rdds(spark) == before  # train() on a DataFrame releases the cache it made

    from pyspark import StorageLevel

    mine = mixed.persist(StorageLevel.MEMORY_ONLY)  # a caller's cache is used, and left to the caller
    frame = trainer.prepare(mine, "y", "binary", "v")
    frame.unpersist()
    assert frame.owns_cache is False and mine.storageLevel == StorageLevel.MEMORY_ONLY
    mine.unpersist()


def test_task_plan_and_class_checks():
    from uplift_spark.learners.frames import cores_of_master, plan_tasks

    assert plan_tasks({0.0: 900, 1.0: 100}, "y", 4, True) == 4
    assert plan_tasks({0.0: 900, 1.0: 25}, "y", 4, True) == 2  # 10 minority rows per task at least
    assert plan_tasks({"rows": 3}, "y", 4, False) == 1
    with pytest.raises(ModelError, match="'y' has a single class"):
        plan_tasks({0.0: 50}, "y", 2, True)
    with pytest.raises(ModelError, match="'y' has values other than 0/1"):
        plan_tasks({0.0: 50, 1.0: 5, 2.0: 1}, "y", 2, True)
    assert [cores_of_master(m) for m in ("local", "local[2]", "local[3,2]", "local-cluster[2,1,1024]",
                                          "spark://h:7077", "yarn")] == [1, 2, 3, 1, 0, 0]


def test_auto_task_count_never_exceeds_local_slots(spark):
    """num_tasks = 0 follows spark.default.parallelism, but a barrier stage cannot have more tasks than
    slots: the test session has default parallelism 4 on local[2] (this hung the pipeline once)."""
    from uplift_spark.learners.frames import task_count as _task_count, local_slots

    assert [local_slots(m) for m in ("local[2]", "local-cluster[2,3,1024]", "yarn")] == [2, 6, 0]
    assert spark.sparkContext.defaultParallelism == 4
    assert _task_count(spark, LightGBMConfig(num_tasks=0)) == 2
    assert _task_count(spark, LightGBMConfig(num_tasks=3)) == 3  # explicit setting is the user's call


def test_learner_counts_classes_once_and_rejects_non_binary_outcome(spark):
    """The binary check comes from the fit's one fingerprint aggregate, before any booster is trained."""
    from pyspark.sql import functions as F

    from uplift_spark.learners import TLearner

    pdf = make_rct(n=600, seed=3)
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid") \
        .withColumn("conversion", F.when(F.col("customer_id") == "s0000005", 2).otherwise(F.col("conversion")))
    assert pdf.loc[5, "split"] == "train"
    arm = pdf.loc[5, "arm"]
    before = _persistent_rdds(spark)
    with pytest.raises(ModelError, match=f"'conversion' has 1 values other than 0/1 in arm '{arm}'"):
        _learner(TLearner).fit(df)
    assert _persistent_rdds(spark) == before  # the fit released its caches on failure too


def test_fit_encoding_ranks_every_categorical_in_one_pass(spark):
    """Codes of several categorical columns (one job) equal pandas' frequency ranking, ties by value."""
    from uplift_spark.learners import fit_encoding

    rng = np.random.default_rng(8)
    n = 500
    pdf = pd.DataFrame({"c1": rng.choice(["x", "y", "z", "w", None], size=n, p=[0.4, 0.2, 0.2, 0.1, 0.1]),
                        "c2": rng.integers(0, 12, size=n).astype(str), "n": rng.normal(size=n)})
    enc = fit_encoding(spark.createDataFrame(pdf), ["n", "c1", "c2"], ["c1", "c2"], max_categories=5)
    for c in ("c1", "c2"):
        counts = pdf[c].dropna().value_counts()
        expected = sorted(counts.index, key=lambda v: (-counts[v], v))[:5]
        assert enc.categories[c] == expected, c
    assert enc.categorical_indexes == [1, 2]
