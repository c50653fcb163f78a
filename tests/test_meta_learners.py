"""S-, R- and DR-learners: the pseudo-outcome and cross-fitting maths against NumPy, each Spark learner
against a NumPy + lightgbm implementation of the same algorithm (same folds, same parameters, one
task, deterministic), effect recovery on data with known effects, and bad-input errors.

The reference implementations below are written from the papers' formulas, not from the package:
only the feature encoding (``model.encoding``) and ``lightgbm_params`` are shared, as in
tests/test_learners.py.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learner_data import encode as _encode, make_rct  # noqa: E402

from uplift_spark.config import LightGBMConfig  # noqa: E402
from uplift_spark.errors import ConfigError, DataError, ModelError  # noqa: E402

ARMS = ["email_a", "email_b"]
FEATURES = ["x0", "x1", "x2", "c0"]
K = 2
LGB = LightGBMConfig(num_iterations=25, learning_rate=0.15, num_leaves=8, min_data_in_leaf=30,
                     early_stopping_round=5, num_tasks=1, seed=3)
CLIP = 0.01


def _pehe(est, true):
    return float(np.sqrt(np.mean((np.asarray(est) - np.asarray(true)) ** 2)))


def _with_folds(pdf):
    """The split's fold column: train rows get 0..K-1 by customer, valid/test rows -1."""
    pdf = pdf.copy()
    pdf["fold"] = np.where(pdf.split == "train", np.arange(len(pdf)) % K, -1)
    return pdf


def _learner(cls, **kw):
    args = dict(outcomeCol="conversion", outcomeType="binary", treatmentArms=ARMS, featureCols=FEATURES,
                categoricalCols=["c0"], validationCol="is_valid", backend="barrier", lightgbm=LGB,
                propensityPrefix="propensity", foldCol="fold", propensityClip=CLIP)
    args.update(kw)
    return cls(**args)


# ------------------------------------------------------------------ pure NumPy pieces (fast)


def test_pseudo_outcomes_follow_the_papers_formulas():
    from uplift_spark.learners.dr_learner import dr_pseudo_outcome
    from uplift_spark.learners.r_learner import r_pseudo_outcome

    rng = np.random.default_rng(0)
    n = 50
    y, w = rng.normal(size=n), (rng.random(n) < 0.4).astype(float)
    mu_k, mu_0, m, e = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.uniform(0.1, 0.9, n)
    phi = dr_pseudo_outcome(y, w, mu_k, mu_0, e)
    for i in range(n):  # Kennedy (2023), row by row
        expect = mu_k[i] - mu_0[i] + (y[i] - mu_k[i]) / e[i] if w[i] == 1 else \
            mu_k[i] - mu_0[i] - (y[i] - mu_0[i]) / (1 - e[i])
        assert phi[i] == pytest.approx(expect, rel=1e-12)
    z, wt = r_pseudo_outcome(y, w, m, e)
    # the weighted squared loss equals the R-loss for any candidate effect tau
    tau = rng.normal(size=n)
    np.testing.assert_allclose(wt * (z - tau) ** 2, ((y - m) - (w - e) * tau) ** 2, rtol=1e-10)


def test_out_of_fold_picks_the_booster_without_the_row_fold():
    from uplift_spark.learners.crossfit import out_of_fold, propensity_of

    fold = np.array([0, 1, 2, 1, -1, 0])
    table = {f"m_f{j}": np.arange(6) * 10.0 + j for j in range(3)}
    calls = []

    def preds(key):
        calls.append(key)
        return table[key]

    got = out_of_fold(preds, fold, "m", [0, 1, 2])
    np.testing.assert_array_equal(got, [0.0, 11.0, 22.0, 31.0, 41.0, 50.0])  # fold -1: mean of the 3 boosters
    assert set(calls) == {"m_f0", "m_f1", "m_f2"}
    prop = {"mode": "cross_fitted", "clip": 0.05, "constant": {}, "columns": {}, "control_column": None}
    e_tab = {f"e_a_f{j}": np.array([0.01, 0.5, 0.99, 0.3, 0.2, 0.7]) for j in range(3)}
    e = propensity_of(prop, "a", "a", lambda k: e_tab[k], {"__uplift_fold": fold}, 6, [0, 1, 2])
    np.testing.assert_allclose(e, [0.05, 0.5, 0.95, 0.3, 0.2, 0.7])
    cols = {"mode": "columns", "clip": 0.0, "constant": {"a": 0.25}, "columns": {"a": "p_a"}, "control_column": "p_c"}
    e = propensity_of(cols, "a", "a", None, {"p_a": np.array([0.2, 0.0]), "p_c": np.array([0.6, 0.0])}, 2, [0])
    np.testing.assert_allclose(e, [0.25, 0.25])  # 0.2 / 0.8, and 0/0 falls back to the constant


def test_s_learner_combine_predicts_each_arm_through_the_arm_feature():
    import lightgbm as lgb

    from uplift_spark.learners import FeatureEncoding, SLearnerModel

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 1))
    arm = rng.integers(0, 3, 600).astype(float)
    y = x[:, 0] + np.where(arm == 1, 2.0, np.where(arm == 2, -1.0, 0.0)) + rng.normal(scale=0.1, size=600)
    text = lgb.train({"objective": "regression", "verbosity": -1, "min_data_in_leaf": 5, "seed": 1},
                     lgb.Dataset(np.column_stack([x, arm]), y, categorical_feature=[1]), 30).model_to_string()
    model = SLearnerModel(outcome="y", outcome_type="continuous", control_arm="c", treatment_arms=["a", "b"],
                          encoding=FeatureEncoding(features=("x0",)), boosters={"s_pooled": text},
                          propensity={"mode": "unused"})
    got = model.predict_arrays(x)
    booster = lgb.Booster(model_str=text)
    base = booster.predict(np.column_stack([x, np.zeros(600)]))
    np.testing.assert_allclose(got["a"], booster.predict(np.column_stack([x, np.ones(600)])) - base, atol=1e-12)
    np.testing.assert_allclose(got["b"], booster.predict(np.column_stack([x, np.full(600, 2.0)])) - base, atol=1e-12)
    assert abs(np.mean(got["a"]) - 2.0) < 0.3 and abs(np.mean(got["b"]) + 1.0) < 0.3
    imp = model.feature_importance()
    assert {r["arm"] for r in imp} == {"a", "b"} and {r["feature"] for r in imp} == {"x0", "treatment_arm"}


# ------------------------------------------------------------------ config and bad input (fast)


def test_config_accepts_every_learner_and_defaults_folds_for_cross_fitting():
    from uplift_spark.config import config_from_dict

    cfg = config_from_dict({"model": {"learners": ["t", "x", "s", "r", "dr"]}})
    assert cfg.model.learners == ("t", "x", "s", "r", "dr") and cfg.split.n_folds == 5
    assert config_from_dict({"model": {"learners": ["t", "s"]}}).split.n_folds == 0
    assert config_from_dict({"model": {"learners": ["dr"]}, "split": {"n_folds": 3}}).split.n_folds == 3
    with pytest.raises(ConfigError, match="model.learners: 'rx' is not one of"):
        config_from_dict({"model": {"learners": ["t", "rx"]}})
    with pytest.raises(ConfigError, match="split.n_folds: 1 fold cannot cross-fit the 'r' learner"):
        config_from_dict({"model": {"learners": ["r"]}, "split": {"n_folds": 1}})


@pytest.fixture(scope="module")
def small(spark):
    from pyspark.sql import functions as F

    pdf = _with_folds(make_rct(n=600, seed=2))
    return spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").where("split != 'test'")


@pytest.mark.parametrize("name", ["r", "dr"])
def test_cross_fitted_learner_names_fold_and_arm_below_minimum(small, name):
    from pyspark.sql import functions as F

    from uplift_spark.learners import learner_class

    est = _learner(learner_class(name), minRowsPerArm=60)
    # 600 rows: ~360 train, ~54 per fold and treatment arm < 60
    with pytest.raises(ModelError, match=rf"{name}-learner: fold \d, arm 'email_\w': \d+ training rows, "
                                         r"below split.min_rows_per_arm=60"):
        est.fit(small)
    no_folds = small.withColumn("fold", F.lit(-1))
    with pytest.raises(ModelError, match="training rows have no fold .*set split.n_folds"):
        _learner(learner_class(name), minRowsPerArm=1).fit(no_folds)
    with pytest.raises(DataError, match="fold column 'fold' is missing"):
        _learner(learner_class(name)).fit(small.drop("fold"))


# ------------------------------------------------------------------ Spark learners vs NumPy + lightgbm


def _params(objective):
    from uplift_spark.learners import lightgbm_params

    params = lightgbm_params(LGB, objective)
    params.update(num_threads=1, first_metric_only=True)
    return params


def _fit_ref(x, y, xv, yv, objective, cat, w=None, wv=None):
    """One booster as the trainers fit it: train rows, early stopping on the valid rows."""
    import lightgbm as lgb

    dtrain = lgb.Dataset(x, y, weight=w, categorical_feature=cat)
    dvalid = lgb.Dataset(xv, yv, weight=wv, reference=dtrain)
    booster = lgb.train(_params(objective), dtrain, LGB.num_iterations, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(LGB.early_stopping_round, verbose=False)])
    return lambda z: booster.predict(z, num_iteration=booster.best_iteration)


def _oof(pred_by_fold, fold):
    """Out of fold for train rows; validation rows (fold -1) get the mean of the fold models."""
    out = np.mean([p for p in pred_by_fold.values()], axis=0)
    for j, p in pred_by_fold.items():
        out[fold == j] = p[fold == j]
    return out


def _reference(name, pdf, model, test, outcome="conversion", propensity="known"):
    """NumPy + lightgbm S / R / DR with the same folds and parameters; uplift per arm on ``test``."""
    cat = model.encoding.categorical_indexes
    objective = "binary" if outcome == "conversion" else "regression"
    tv = pdf[pdf.split != "test"]
    xt = _encode(test, model)
    out = {}
    if name == "s":
        code = {a: float(i) for i, a in enumerate(["control", *ARMS])}
        xa = np.column_stack([_encode(tv, model), tv.arm.map(code).to_numpy()])
        tr = (tv.split == "train").to_numpy()
        f = _fit_ref(xa[tr], tv[outcome][tr], xa[~tr], tv[outcome][~tr], objective, [*cat, xa.shape[1] - 1])
        base = f(np.column_stack([xt, np.zeros(len(xt))]))
        return {a: f(np.column_stack([xt, np.full(len(xt), code[a])])) - base for a in ARMS}
    for arm in ARMS:
        pair = tv[tv.arm.isin([arm, "control"])]
        x, y = _encode(pair, model), pair[outcome].to_numpy(dtype=float)
        w = (pair.arm == arm).to_numpy(dtype=float)
        fold, valid = pair.fold.to_numpy(), (pair.split == "valid").to_numpy()

        def cross_fit(label, rows, obj):
            preds = {}
            for j in range(K):
                fit_rows = rows & ~valid & (fold != j)
                val_rows = rows & valid
                preds[j] = _fit_ref(x[fit_rows], label[fit_rows], x[val_rows], label[val_rows], obj, cat)(x)
            return _oof(preds, fold)

        if propensity == "known":
            e = np.full(len(pair), 0.3 / (0.3 + 0.4))  # the design: propensity_<arm> columns
        else:
            e = cross_fit(w, np.ones(len(pair), bool), "binary")
        e = np.clip(e, CLIP, 1 - CLIP)
        if name == "r":
            m = cross_fit(y, np.ones(len(pair), bool), objective)
            z, wt = (y - m) / (w - e), (w - e) ** 2
        else:
            mu_k, mu_0 = cross_fit(y, w == 1, objective), cross_fit(y, w == 0, objective)
            z = mu_k - mu_0 + w * (y - mu_k) / e - (1 - w) * (y - mu_0) / (1 - e)
            wt = None
        tau = _fit_ref(x[~valid], z[~valid], x[valid], z[valid], "regression", cat,
                       None if wt is None else wt[~valid], None if wt is None else wt[valid])
        out[arm] = tau(xt)
    return out


@pytest.fixture(scope="module")
def rct3(spark):
    from pyspark.sql import functions as F

    pdf = _with_folds(make_rct(n=4000, seed=1))
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)
    return pdf, df


# binary and continuous outcomes, known (design columns) and cross-fitted propensities
CASES = [("s", "conversion", "known"), ("s", "revenue", "known"), ("r", "conversion", "known"),
         ("dr", "conversion", "known"), ("dr", "revenue", "estimate")]


@pytest.fixture(scope="module")
def fitted3(rct3):
    from uplift_spark.learners import learner_class

    pdf, df = rct3
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    test_pdf = pdf[pdf.split == "test"].sort_values("customer_id").reset_index(drop=True)
    out = {}
    for name, outcome, prop in CASES:
        model = _learner(learner_class(name), outcomeCol=outcome,
                         outcomeType="binary" if outcome == "conversion" else "continuous",
                         propensity=prop).fit(train)
        cols = list(model.uplift_columns.values())
        scored = model.transform(test).select("customer_id", *cols).toPandas().sort_values("customer_id")
        out[(name, outcome, prop)] = (model, scored.reset_index(drop=True))
    return pdf, test_pdf, out


@pytest.mark.slow
def test_each_learner_equals_numpy_lightgbm_reference(fitted3):
    """One task, deterministic LightGBM, same folds and parameters: the Spark learners reproduce the
    NumPy + lightgbm algorithms to 1e-6 (the row order inside the task only changes float summation)."""
    pdf, test, out = fitted3
    for (name, outcome, prop), (model, scored) in out.items():
        ref = _reference(name, pdf, model, test, outcome, prop)
        for arm in ARMS:
            np.testing.assert_allclose(scored[f"uplift_{arm}"], ref[arm], atol=1e-6,
                                       err_msg=f"{name}/{outcome}/{prop}/{arm}")
        if name in ("r", "dr"):
            assert sorted(model.boosters) == [f"tau_{a}" for a in ARMS]  # nuisances are not saved
            assert model.training["cross_fitting"] == {"folds": [0, 1], "fold_col": "fold"}
            assert model.propensity["mode"] == ("cross_fitted" if prop == "estimate" else "columns")


@pytest.mark.slow
def test_every_learner_recovers_known_effects_on_the_test_split(fitted3):
    """3 arms, test split: PEHE below the constant-effect baseline and corr(τ̂, τ) > 0.6."""
    _, test, out = fitted3
    for (name, outcome, prop), (_, scored) in out.items():
        truth = "true_uplift_" if outcome == "conversion" else "true_uplift_revenue_"
        for arm in ARMS:
            true, est = test[f"{truth}{arm}"], scored[f"uplift_{arm}"]
            constant = _pehe(np.full(len(true), true.mean()), true)
            assert _pehe(est, true) < constant, (name, outcome, arm, _pehe(est, true), constant)
            assert np.corrcoef(est, true)[0, 1] > 0.6, (name, outcome, arm, np.corrcoef(est, true)[0, 1])


@pytest.mark.slow
def test_save_load_round_trips_the_new_learners(fitted3, tmp_path):
    """Trained S/R/DR models (binary and continuous) reload as their class and predict identically."""
    from uplift_spark.learners import UpliftModel, model_class

    pdf, test, out = fitted3
    for (name, outcome, prop), (model, scored) in out.items():
        path = str(tmp_path / f"{name}_{outcome}_{prop}")
        model.write().save(path)
        x = _encode(test, model)
        before = model.predict_arrays(x)
        for arm in ARMS:  # the NumPy path equals the Spark scoring of the same rows
            np.testing.assert_allclose(before[arm], scored[f"uplift_{arm}"], atol=1e-12)
        for loaded in (UpliftModel.load(path), model_class(name).load(path)):
            assert type(loaded) is type(model) and loaded.boosters == model.boosters
            assert loaded.propensity == model.propensity
            after = loaded.predict_arrays(x)
            for arm in ARMS:
                np.testing.assert_array_equal(after[arm], before[arm])


@pytest.mark.slow
def test_dr_and_x_beat_t_on_a_small_arm(spark):
    """One arm at 10% of customers: DR and X borrow strength from the large control group."""
    from pyspark.sql import functions as F

    from uplift_spark.learners import DRLearner, TLearner, XLearner

    # 24,000 rows: ~1,400 treated training rows in the 10% arm. DR's pseudo-outcomes carry 1/e ≈ 9× noise, so
    # at 8,000 rows (~500 treated) its final regression is noisier than T (PEHE 0.114 vs 0.088 measured)
    pdf = _with_folds(make_rct(n=24000, shares=(0.8, 0.1, 0.1), seed=4))
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    cfg = LightGBMConfig(num_iterations=60, learning_rate=0.1, num_leaves=8, min_data_in_leaf=40,
                         early_stopping_round=10, num_tasks=1, seed=3)
    pehe = {}
    for name, cls in (("t", TLearner), ("x", XLearner), ("dr", DRLearner)):
        model = _learner(cls, treatmentArms=["email_a"], lightgbm=cfg, propensityPrefix="").fit(train)
        got = model.transform(test).select("uplift_email_a", "true_uplift_email_a").toPandas()
        pehe[name] = _pehe(got["uplift_email_a"], got["true_uplift_email_a"])
    print("PEHE on the 10% arm:", pehe)
    assert pehe["dr"] < pehe["t"] and pehe["x"] < pehe["t"], pehe


def test_train_stage_checks_folds_of_every_learner_before_writing(spark, tmp_path):
    """``model.learners: [t, dr]`` with too few rows per fold and arm: the train stage names the fold and
    arm before fitting anything, so no model folder or manifest is written (even the T-learner's)."""
    from pyspark.sql import functions as F

    from uplift_spark.config import config_from_dict
    from uplift_spark.pipelines import train
    from uplift_spark.pipelines.context import RunContext

    cfg = config_from_dict({
        "run": {"output_root": str(tmp_path / "out")},
        "data": {"source": "parquet", "path": "unused", "control_arm": "control",
                 "treatment_arms": ARMS, "features": FEATURES, "categorical_features": ["c0"],
                 "outcomes": [{"name": "conversion", "type": "binary"}]},
        "model": {"learners": ["t", "dr"], "backend": "barrier"},
        "split": {"min_rows_per_arm": 200},
    })
    assert cfg.split.n_folds == 5
    ctx = RunContext(spark, cfg, "r1")
    pdf = make_rct(n=3000, seed=7)
    pdf["fold"] = np.where(pdf.split == "train", np.arange(len(pdf)) % 5, -1)
    ctx.store.write(spark.createDataFrame(pdf.drop(columns=["split", "fold"])).withColumn("run_id", F.lit("r1")),
                    "experiment_log", "r1")
    ctx.store.write(spark.createDataFrame(pdf[["customer_id", "split", "fold"]]).select(
        F.lit("r1").alias("run_id"), "customer_id", "split", F.col("fold").cast("int")), "splits", "r1")
    with pytest.raises(ModelError, match=r"dr-learner: fold \d, arm '\w+': \d+ training rows, "
                                         r"below split.min_rows_per_arm=200"):
        train.run(ctx)
    assert not os.path.exists(ctx.model_dir)
