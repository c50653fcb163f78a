"""Learner and hyperparameter choice on ``valid`` (model.tune, policy.learner: auto) and uplift importance.

Validation scores are checked against a NumPy transcription of scikit-uplift's ``qini_auc_score``
(written out below from its definition); the chosen grid point / learner against the argmax of those
hand-computed scores; uplift importance against synthetic data whose outcome and effect are driven by
different features (known truth).
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learner_data import make_rct, write_run  # noqa: E402

from uplift_spark.config import ModelConfig, config_from_dict  # noqa: E402
from uplift_spark.errors import ConfigError, ModelError  # noqa: E402
from uplift_spark.learners.tuning import best_point, mean_score, tuning_grid, with_overrides  # noqa: E402


# ------------------------------------------------------------------------------------ NumPy reference
def _qini_curve(y, score, t):
    """sklift.metrics.qini_curve: points at each distinct score threshold, origin prepended."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, t = y[order].astype(float), score[order], t[order].astype(float)
    y_t, y_c = np.where(t == 1, y, 0.0), np.where(t == 0, y, 0.0)
    idx = np.r_[np.where(np.diff(score))[0], score.size - 1]
    n_t = np.cumsum(t)[idx]
    n_all = idx + 1.0
    n_c = n_all - n_t
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    values = np.cumsum(y_t)[idx] - np.cumsum(y_c)[idx] * ratio
    return np.r_[0.0, n_all], np.r_[0.0, values]


def qini_auc_numpy(y, score, t):
    """sklift.metrics.qini_auc_score(negative_effect=True): (actual − random) / (perfect − random)."""
    x_a, y_a = _qini_curve(y, score, t)
    x_p, y_p = _qini_curve(y, y * t - y * (1 - t), t)
    base = np.trapz([0.0, y_p[-1]], [0.0, x_p[-1]])
    return (np.trapz(y_a, x_a) - base) / (np.trapz(y_p, x_p) - base)


# ------------------------------------------------------------------------------------ pure helpers
def test_tuning_grid_configured_first_sized_to_rows_and_deduplicated():
    model = ModelConfig()
    grid = tuning_grid(model, 200_000)
    assert grid[0] == {} and len(grid) == 6
    assert {p.get("min_data_in_leaf") for p in grid} == {None, 1000}  # 0.5 % of the smallest arm's rows
    assert {p.get("num_leaves") for p in grid} == {None, 7} and {p.get("learning_rate") for p in grid} == {None, 0.025}
    small = tuning_grid(model, 1000)  # 5 % of 1,000 rows = the configured 50: those points collapse
    assert len(small) == 4 and all(p.get("min_data_in_leaf", 50) == 50 for p in small)
    assert tuning_grid(ModelConfig(tune_points=2), 200_000) == grid[:2]
    assert tuning_grid(ModelConfig(tune=False), 200_000) == [{}]
    cfg = config_from_dict({"model": {"tune_grid": {"num_leaves": [4, 15], "learning_rate": [0.05, 0.1]}}})
    assert tuning_grid(cfg.model, 10) == [{"num_leaves": 4, "learning_rate": 0.05}, {"num_leaves": 4, "learning_rate": 0.1},
                                          {"num_leaves": 15, "learning_rate": 0.05}, {"num_leaves": 15, "learning_rate": 0.1}]
    assert with_overrides(model.lightgbm, {"num_leaves": 4}).num_leaves == 4


def test_best_point_and_mean_score():
    assert best_point([0.1, 0.3, 0.2]) == 1
    assert best_point([0.3, 0.3, None]) == 0  # a tie keeps the configured (first) point
    assert best_point([None, float("nan"), -0.1]) == 2
    assert best_point([None, None]) == 0
    assert mean_score({"a": 0.2, "b": None, "c": 0.4}) == pytest.approx(0.3)
    assert mean_score({"a": None}) is None


@pytest.mark.parametrize("raw, message", [
    ({"model": {"tune_grid": {"num_leaves": [4, 8, 16], "learning_rate": [0.05, 0.1, 0.2]}}},
     "model.tune_grid: 9 points; at most 6"),
    ({"model": {"tune_grid": {"num_leafs": [4, 8]}}}, "model.tune_grid: 'num_leafs' is not a model.lightgbm key"),
    ({"model": {"tune_grid": {"num_leaves": []}}}, "model.tune_grid.num_leaves: no values given"),
    ({"model": {"tune_points": 7}}, "model.tune_points"),
    ({"model": {"tune": "yes"}}, "model.tune: expected true/false"),
    ({"model": {"uplift_importance_rows": -1}}, "model.uplift_importance_rows"),
    ({"split": {"train": 0.8, "valid": 0.0, "test": 0.2}}, "model.tune: needs a valid split"),
    ({"model": {"learners": ["t"]}, "policy": {"learner": "x"}}, "policy.learner: 'x' is not 'auto' or one of"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_dict(raw)


def test_grid_value_out_of_range_is_a_config_error():
    cfg = config_from_dict({"model": {"tune_grid": {"num_leaves": [1, 8]}}})
    with pytest.raises(ConfigError, match="model.tune_grid: .*num_leaves"):
        tuning_grid(cfg.model, 1000)


def test_auto_uses_the_manifest_selection():
    from uplift_spark.pipelines.score import choose_models

    models = [{"learner": n, "outcome": o} for n in ("t", "x", "dr") for o in ("conversion", "revenue")]
    manifest = {"models": models, "selection": {"learner": "dr", "scores": {"t": 0.1, "x": 0.2, "dr": 0.3}}}
    got = choose_models(manifest, "auto", ["conversion", "revenue"], ("t", "x", "dr"))
    assert {o: e["learner"] for o, e in got.items()} == {"conversion": "dr", "revenue": "dr"}
    assert choose_models(manifest, "x", ["conversion"], ("t", "x"))["conversion"]["learner"] == "x"
    # a manifest written before selections existed keeps the configured preference order
    assert choose_models({"models": models}, "auto", ["revenue"], ("x", "t"))["revenue"]["learner"] == "x"
    with pytest.raises(ModelError, match="no saved model for outcome 'spend'"):
        choose_models(manifest, "auto", ["spend"], ("t",))


def test_surrogate_importance_ranks_the_effect_driver():
    from uplift_spark.learners.importance import surrogate_importance

    rng = np.random.default_rng(3)
    n = 3000
    x = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), "x2": rng.normal(size=n),
                      "c0": rng.choice(["a", "b", "c"], size=n)})
    effects = {"email_a": 0.05 * np.tanh(2 * x["x2"].to_numpy()) + 0.001 * x["x0"].to_numpy(),
               "email_b": 0.04 * (x["c0"] == "b").to_numpy() + 0.002 * x["x1"].to_numpy()}
    rows = pd.DataFrame(surrogate_importance(x, effects, categorical=["c0"], seed=5))
    assert len(rows) == 2 * 4
    np.testing.assert_allclose(rows.groupby("arm").gain_share.sum(), 1.0)
    top = rows[rows["rank"] == 1].set_index("arm")["feature"].to_dict()
    assert top == {"email_a": "x2", "email_b": "c0"}
    assert (rows.surrogate_r2 > 0.9).all() and (rows.sample_rows == n).all()
    again = pd.DataFrame(surrogate_importance(x, effects, categorical=["c0"], seed=5))
    pd.testing.assert_frame_equal(rows, again)  # seeded: the same sample gives the same table


# ------------------------------------------------------------------------------------ Spark: exact scores
def test_validation_scores_equal_sklift_qini_auc_and_pick_the_best(spark):
    from uplift_spark.evaluation.selection import validation_scores

    rng = np.random.default_rng(11)
    n = 900
    x0 = rng.normal(size=n)
    arm = rng.choice(["control", "email_a", "email_b"], size=n)
    p = 0.2 + np.where(arm == "email_a", 0.15 * (x0 > 0), 0.0) + np.where(arm == "email_b", 0.05, 0.0)
    y = (rng.random(n) < p).astype(int)
    base = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "arm": arm, "conversion": y})
    # three candidates: informative, weakly informative, noise (continuous scores: no ties)
    cands, b_scores = {}, rng.normal(size=n)  # the same email_b scores for all: email_a decides
    for name, w in (("good", 1.0), ("weak", 0.2), ("noise", 0.0)):
        pdf = base.copy()
        pdf["uplift_email_a"] = w * x0 + rng.normal(scale=0.5, size=n)
        pdf["uplift_email_b"] = b_scores
        cands[name] = pdf
    wide = base.assign(**{f"{k}_{a}": v[f"uplift_{a}"] for k, v in cands.items() for a in ("email_a", "email_b")})
    df = spark.createDataFrame(wide)  # one frame; each candidate reads its own columns as uplift_<arm>
    frames = {k: df.select("customer_id", "arm", "conversion", *[df[f"{k}_{a}"].alias(f"uplift_{a}")
                                                                  for a in ("email_a", "email_b")]) for k in cands}
    got = validation_scores(frames, ["email_a", "email_b"],
                            "control", "arm", "conversion", "customer_id", binary=True)
    want = {}
    for name, pdf in cands.items():
        want[name] = {}
        for a in ("email_a", "email_b"):
            rows = pdf[pdf.arm.isin([a, "control"])]
            want[name][a] = qini_auc_numpy(rows.conversion.to_numpy(), rows[f"uplift_{a}"].to_numpy(),
                                           (rows.arm == a).astype(int).to_numpy())
            assert got[name][a] == pytest.approx(want[name][a], rel=1e-9, abs=1e-12)
    names = list(cands)
    by_hand = [np.mean(list(want[k].values())) for k in names]
    assert names[best_point([mean_score(got[k]) for k in names])] == names[int(np.argmax(by_hand))] == "good"


# ------------------------------------------------------------------------------------ the train stage
@pytest.mark.slow  # 4 LightGBM learner fits (t, x × 2 grid points) + 1: ~1-2 min on a busy 2-core machine
def test_train_tunes_chooses_auto_and_writes_uplift_importance(spark, tmp_path):
    from uplift_spark.learners import load_manifest, load_models
    from uplift_spark.pipelines import train
    from uplift_spark.pipelines.context import RunContext
    from uplift_spark.pipelines.score import choose_models

    cfg = config_from_dict({
        "run": {"output_root": str(tmp_path / "out"), "seed": 3},
        "data": {"source": "parquet", "path": "unused", "control_arm": "control",
                 "treatment_arms": ["email_a", "email_b"], "features": ["x0", "x1", "x2", "c0"],
                 "categorical_features": ["c0"],
                 "outcomes": [{"name": "conversion", "type": "binary"}, {"name": "revenue", "type": "continuous"}],
                 "primary_outcome": "conversion"},
        "model": {"learners": ["t", "x"], "outcomes": ["conversion"], "backend": "auto",
                  "tune": True, "tune_grid": {"num_leaves": [2, 8]}, "uplift_importance_rows": 1500,
                  "lightgbm": {"num_iterations": 30, "learning_rate": 0.15, "min_data_in_leaf": 30,
                               "early_stopping_round": 5, "num_tasks": 1}},
        "policy": {"learner": "auto"},
    })
    run_id = "r1"
    ctx = RunContext(spark, cfg, run_id)
    pdf = make_rct(n=3000, seed=7)
    write_run(spark, ctx, pdf, run_id)

    summary = train.run(ctx)
    manifest = load_manifest(ctx.model_dir)
    valid = pdf[pdf.split == "valid"]
    for learner in ("t", "x"):
        rec = manifest["tuning"][learner]
        assert rec["metric"] == "qini_auc" and rec["split"] == "valid" and rec["tuned"] is True
        assert [g["params"] for g in rec["grid"]] == [{"num_leaves": 2}, {"num_leaves": 8}]
        scores = [g["score"] for g in rec["grid"]]
        assert rec["best"] == int(np.argmax(scores)) and rec["params"] == rec["grid"][rec["best"]]["params"]
        (entry, model), = load_models(ctx.model_dir, learner=learner, outcome="conversion")
        assert entry["tuned_params"] == rec["params"]
        assert json.loads(model.learner_params["lightgbmParams"])["num_leaves"] == rec["params"]["num_leaves"]
        # the saved (chosen) model's validation score, by hand with NumPy, is the recorded best
        feats = valid[["x0", "x1", "x2", "c0"]]
        scored = model.transform(spark.createDataFrame(valid)).toPandas().set_index("customer_id").loc[valid.customer_id]
        by_arm = []
        for a in ("email_a", "email_b"):
            m = (valid.arm.isin([a, "control"])).to_numpy()
            by_arm.append(qini_auc_numpy(valid.conversion.to_numpy()[m], scored[f"uplift_{a}"].to_numpy()[m],
                                         (valid.arm.to_numpy()[m] == a).astype(int)))
        assert len(feats) and max(scores) == pytest.approx(np.mean(by_arm), rel=1e-9)
    sel = manifest["selection"]
    best = max(("t", "x"), key=lambda n: (sel["scores"][n], n == "t"))
    assert sel["learner"] == summary["selected_learner"] == best
    assert sel["scores"] == {n: max(g["score"] for g in manifest["tuning"][n]["grid"]) for n in ("t", "x")}
    assert choose_models(manifest, cfg.policy.learner, ["conversion"], ("t", "x"))["conversion"]["learner"] == best

    ui = ctx.store.read_run("uplift_importance", run_id).toPandas()
    assert set(ui.learner) == {"t", "x"} and set(ui.arm) == {"email_a", "email_b"} and len(ui) == 2 * 2 * 4
    top = ui[ui["rank"] == 1].set_index(["learner", "arm"])["feature"]
    # email_a's effect is driven by x0, email_b's by c0 == "b"; the outcome itself mostly by x1
    assert set(top.xs("email_a", level="arm")) == {"x0"} and set(top.xs("email_b", level="arm")) == {"c0"}
    fi = ctx.store.read_run("feature_importance", run_id).toPandas()
    assert fi[(fi.learner == "t") & (fi.model == "mu_control")].sort_values("gain").feature.iloc[-1] == "x1"
    train.run(ctx)  # idempotent per run id
    assert ctx.store.read_run("uplift_importance", run_id).count() == len(ui)


def test_report_choice_section_shows_selection_grid_and_drivers():
    from uplift_spark.report.choice_section import choice_data, choice_section

    manifest = {
        "selection": {"learner": "x", "outcome": "conversion", "split": "valid", "metric": "qini_auc",
                      "arms": ["email_a"], "scores": {"t": 0.11, "x": 0.23}},
        "tuning": {"t": {"best": 0, "grid": [{"params": {}, "score": 0.11}, {"params": {"num_leaves": 7}, "score": 0.05}]},
                   "x": {"best": 1, "grid": [{"params": {}, "score": 0.2}, {"params": {"num_leaves": 7}, "score": 0.23}]}},
    }
    imp = pd.DataFrame({"learner": ["x", "x", "t"], "outcome": "conversion", "arm": "email_a",
                        "feature": ["x0", "x1", "x9"], "gain_share": [0.8, 0.2, 1.0], "rank": [1, 2, 1],
                        "surrogate_r2": 0.9})
    data = choice_data(manifest, imp, top=1)
    assert data["drivers"]["feature"].tolist() == ["x0"]  # the selected learner's top driver only
    assert data["grid"]["chosen"].tolist() == [True, False, False, True]
    html = choice_section(data)
    assert "<b>x</b>" in html and "0.2300" in html and "x0" in html and "x9" not in html
    assert choice_section(choice_data({}, None)) == ""
