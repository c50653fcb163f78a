"""``pipelines/evaluate.py`` on a tiny predictions + experiment_log pair written to Delta."""

import numpy as np
import pandas as pd
import pytest

from uplift_spark.config import config_from_dict
from uplift_spark.pipelines import evaluate
from uplift_spark.pipelines.context import RunContext


@pytest.fixture(scope="module")
def tiny(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("eval_pipeline"))
    cfg = config_from_dict({
        "run": {"output_root": root},
        "data": {"control_arm": "control", "treatment_arms": ["email", "discount"],
                 "outcomes": [{"name": "conversion", "type": "binary"}, {"name": "revenue", "type": "continuous"}]},
        "evaluation": {"splits": ["valid", "test", "oot"], "curve_points": 11, "bootstrap_replicates": 10,
                       "top_k_percents": [10, 25], "n_deciles": 5, "n_segments": 2},
    })
    ctx = RunContext(spark=spark, cfg=cfg, run_id="evalrun1")
    rng = np.random.default_rng(3)
    n = 900
    ids = ["s%05d" % i for i in range(n)]
    arm = rng.choice(["control", "email", "discount"], n)
    x = rng.random(n)
    tau = {"control": 0.0, "email": 0.2, "discount": -0.1}
    effect = np.array([tau[a] * (x[i] > 0.5) for i, a in enumerate(arm)])
    conversion = (rng.random(n) < 0.2 + effect).astype(int)
    revenue = conversion * rng.gamma(2.0, 10.0, n)
    log = pd.DataFrame({"run_id": "evalrun1", "customer_id": ids, "arm": arm, "x0": x,
                        "conversion": conversion, "revenue": revenue})
    split = np.where(x * 1000 % 2 < 1, "valid", "test")
    rows = []
    for learner in ("t", "x"):
        for outcome in ("conversion", "revenue"):
            for a in ("email", "discount"):
                score = tau[a] * (x > 0.5) + rng.normal(0, 0.05, n)
                rows.append(pd.DataFrame({"run_id": "evalrun1", "learner": learner, "outcome": outcome,
                                          "customer_id": ids, "split": split, "arm": a, "uplift": score}))
    preds = pd.concat(rows, ignore_index=True)
    ctx.store.write(spark.createDataFrame(log), "experiment_log", "evalrun1")
    from uplift_spark.schemas import conform

    ctx.store.write(conform(spark.createDataFrame(preds), "predictions"), "predictions", "evalrun1")
    return ctx, log


def test_evaluate_run_writes_three_tables_idempotently(tiny):
    ctx, log = tiny
    summary = evaluate.run(ctx)
    assert summary["evaluated"] == 2 * 2 * 2 * 2  # learners x outcomes x splits x arms
    assert summary["splits"] == ["valid", "test"]  # oot absent: skipped, not an error
    counts = {t: ctx.store.read("uplift_curves" if t == "c" else t, run_id="evalrun1").count()
              for t in ("c", "uplift_metrics", "uplift_by_decile")}
    summary2 = evaluate.run(ctx)  # rerun: replaces, never duplicates
    assert summary2["rows"] == summary["rows"]
    for t, c in counts.items():
        assert ctx.store.read("uplift_curves" if t == "c" else t, run_id="evalrun1").count() == c
    assert counts["uplift_by_decile"] == 16 * 5

    metrics = ctx.store.read("uplift_metrics", run_id="evalrun1").toPandas()
    names_bin = set(metrics[metrics.outcome == "conversion"].metric)
    names_cont = set(metrics[metrics.outcome == "revenue"].metric)
    assert {"qini_auc", "uplift_auc", "qini_coefficient", "auuc", "ate", "uplift_at_10", "uplift_at_25",
            "n", "n_treated", "n_control"} <= names_bin
    assert "qini_auc" not in names_cont and "qini_area" in names_cont
    # ATE and counts against pandas on the same rows
    row = metrics[(metrics.learner == "t") & (metrics.arm == "email") & (metrics.outcome == "conversion")
                  & (metrics.split == "valid")].set_index("metric")
    split = np.where(log["x0"] * 1000 % 2 < 1, "valid", "test")
    sub = log[(split == "valid") & log["arm"].isin(["email", "control"])]
    ate = sub[sub.arm == "email"].conversion.mean() - sub[sub.arm == "control"].conversion.mean()
    assert row.loc["ate", "value"] == pytest.approx(ate, rel=1e-12)
    assert row.loc["ate", "ci_low"] < ate < row.loc["ate", "ci_high"]
    assert row.loc["n", "value"] == len(sub) and pd.isna(row.loc["n", "ci_low"])
    assert row.loc["qini_auc", "value"] > 0  # a real effect for x > 0.5, scores follow it

    curves = ctx.store.read("uplift_curves", run_id="evalrun1").toPandas()
    one = curves[(curves.learner == "t") & (curves.arm == "email") & (curves.outcome == "conversion")
                 & (curves.split == "valid")].sort_values("point")
    assert one["n"].iloc[0] == 0 and one["n"].iloc[-1] == len(sub) and len(one) == 11
    assert one["n_t"].iloc[-1] == (sub.arm == "email").sum()
    assert one["qini_low"].notna().iloc[1:].all()
    deciles = ctx.store.read("uplift_by_decile", run_id="evalrun1").toPandas()
    d = deciles[(deciles.learner == "t") & (deciles.arm == "discount") & (deciles.outcome == "conversion")
                & (deciles.split == "test")].sort_values("decile")
    assert list(d.decile) == [1, 2, 3, 4, 5] and (d.n_t + d.n_c).sum() > 0
