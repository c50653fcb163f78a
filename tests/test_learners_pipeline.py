"""train + predict stages on real Delta tables: manifest, saved models, feature_importance, predictions."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learner_data import make_rct, write_run  # noqa: E402

from uplift_spark.errors import ModelError  # noqa: E402


def test_train_and_predict_stages(spark, tmp_path):
    from uplift_spark.config import config_from_dict
    from uplift_spark.learners import load_manifest, load_models
    from uplift_spark.pipelines import predict, train
    from uplift_spark.pipelines.context import RunContext

    cfg = config_from_dict({
        "run": {"output_root": str(tmp_path / "out")},
        "data": {"source": "parquet", "path": "unused", "control_arm": "control",
                 "treatment_arms": ["email_a", "email_b"], "features": ["x0", "x1", "x2", "c0"],
                 "categorical_features": ["c0"],
                 "outcomes": [{"name": "conversion", "type": "binary"}, {"name": "revenue", "type": "continuous"}],
                 "primary_outcome": "conversion"},
        "model": {"learners": ["t"], "outcomes": ["revenue"], "backend": "auto", "tune": False,
                  "lightgbm": {"num_iterations": 40, "learning_rate": 0.15, "num_leaves": 8,
                               "min_data_in_leaf": 30, "early_stopping_round": 5, "num_tasks": 1}},
    })
    run_id = "r1"
    ctx = RunContext(spark, cfg, run_id)
    pdf = make_rct(n=3000, seed=7)
    write_run(spark, ctx, pdf, run_id)

    summary = train.run(ctx)
    assert summary["models"] == 1 and summary["treatment_arms"] == ["email_a", "email_b"]
    manifest = load_manifest(ctx.model_dir)
    assert manifest["model_version"] == run_id and manifest["control_arm"] == "control"
    assert manifest["models"][0]["path"] == "t/revenue" and manifest["models"][0]["outcome_type"] == "continuous"
    (entry, model), = load_models(ctx.model_dir, learner="t", outcome="revenue")
    assert model.outcome_type == "continuous" and sorted(model.boosters) == ["mu_control", "mu_email_a", "mu_email_b"]
    meta = json.load(open(os.path.join(ctx.model_dir, "t", "revenue", "metadata.json")))
    n_train = int((pdf.split != "test").sum())
    assert sum(v["rows"] for v in meta["training"]["fingerprint"]["per_arm"].values()) == n_train

    fi = ctx.store.read_run("feature_importance", run_id).toPandas()
    assert len(fi) == 3 * 4 and set(fi.model) == {"mu_control", "mu_email_a", "mu_email_b"}
    np.testing.assert_allclose(fi.groupby("model").gain_share.sum(), 1.0)
    top = fi[fi.model == "mu_email_a"].sort_values("gain").feature.iloc[-2:]
    assert set(top) <= {"x0", "x1", "c0"}  # revenue depends on x1 (all arms) and x0 (email_a)

    out = predict.run(ctx)
    assert out["rows"] == 2 * len(pdf)
    preds = ctx.store.read_run("predictions", run_id)
    assert preds.columns == ["run_id", "learner", "outcome", "customer_id", "split", "arm", "uplift"]
    got = preds.where("split = 'test'").toPandas().pivot(index="customer_id", columns="arm", values="uplift")
    truth = pdf.set_index("customer_id").loc[got.index]
    for arm in ("email_a", "email_b"):
        assert np.corrcoef(got[arm], truth[f"true_uplift_revenue_{arm}"])[0, 1] > 0.7
    # idempotent rerun of predict: same row count, no duplicates
    predict.run(ctx)
    assert ctx.store.read_run("predictions", run_id).count() == 2 * len(pdf)

    # a hand-edited metadata.json (booster of one arm served under another's name) is refused by the
    # stage before anything is written; so is an edited manifest
    meta_path = os.path.join(ctx.model_dir, "t", "revenue", "metadata.json")
    original = open(meta_path, encoding="utf-8").read()
    with open(meta_path, "w", encoding="utf-8") as fh:
        fh.write(original.replace('"mu_email_a.txt"', '"mu_email_b.txt"'))
    with pytest.raises(ModelError, match="metadata.json fails its SHA-256"):
        predict.run(ctx)
    with open(meta_path, "w", encoding="utf-8") as fh:
        fh.write(original)
    manifest_path = os.path.join(ctx.model_dir, "manifest.json")
    text = open(manifest_path, encoding="utf-8").read()
    with open(manifest_path, "w", encoding="utf-8") as fh:
        fh.write(text.replace('"continuous"', '"binary"'))
    with pytest.raises(ModelError, match="manifest.json fails its SHA-256"):
        predict.run(ctx)
    assert ctx.store.read_run("predictions", run_id).count() == 2 * len(pdf)
