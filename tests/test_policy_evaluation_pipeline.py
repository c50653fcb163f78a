"""``evaluate-policy`` on the smoke pipeline: tables, the run's headline sentence, idempotent reruns, and
bad input (no randomized design, a budget too small for any contact) failing with nothing written."""

import dataclasses
import os

import pytest

from uplift_spark.cli import main
from uplift_spark.config import load_config
from uplift_spark.errors import DataError, ModelError, PolicyError
from uplift_spark.io import TableStore
from uplift_spark.pipelines import evaluate_policy
from uplift_spark.pipelines.context import RunContext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "conf", "smoke.yaml")
RUN_ID = "pe-run"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(spark, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pe"))
    stages = "ingest,validate,split,train,predict,score,decide,evaluate-policy"
    assert main(["run", "--conf-file", SMOKE, "--output", out, "--run-id", RUN_ID, "--stages", stages]) == 0
    return out


def _ctx(spark, cfg):
    return RunContext(spark=spark, cfg=cfg, run_id=RUN_ID)


def test_tables_and_headline(spark, smoke_run):
    cfg = load_config(SMOKE, output_root=smoke_run)
    store = TableStore(spark, cfg)
    ev = store.read("policy_evaluation", run_id=RUN_ID).toPandas()  # small: policies × metrics
    assert set(ev["split"]) == {"test", "oot"}
    values = ev[(ev.metric == "value") & (ev.policy == "policy")]
    assert set(values["estimator"]) == {"aipw", "ipw", "snipw"}
    assert (values["ci_low"] <= values["estimate"]).all() and (values["estimate"] <= values["ci_high"]).all()
    diffs = ev[(ev.metric == "difference") & (ev.policy == "policy")]
    assert {"random", "best_arm_random", "best_arm_all", "response"} <= set(diffs["baseline"])
    # spend of the re-solved policy within the scaled budget
    spend = ev[(ev.metric == "spend") & (ev.policy == "policy")]
    assert (spend["estimate"] <= spend["budget"] + 1e-6).all()
    curves = store.read("policy_curves", run_id=RUN_ID).toPandas()
    assert {"learner:t", "learner:x", "response", "random"} <= set(curves["policy"])
    assert (curves.groupby(["split", "policy"])["spend"].min() == 0).all()
    # rerun: same rows, no duplicates
    before = len(ev)
    summary = evaluate_policy.run(_ctx(spark, cfg))
    assert store.read("policy_evaluation", run_id=RUN_ID).count() == before
    assert "random at equal spend earns" in summary["headline"]["test"]["sentence"]


def test_bad_input_writes_nothing(spark, smoke_run):
    cfg = load_config(SMOKE, output_root=smoke_run)
    store = TableStore(spark, cfg)
    store.delete_run(["policy_evaluation", "policy_curves"], RUN_ID)
    no_design = cfg.replace(data=dataclasses.replace(cfg.data, propensity=None, allocation={}))
    with pytest.raises(DataError, match="no randomized assignment"):
        evaluate_policy.run(_ctx(spark, no_design))
    tiny = cfg.replace(policy=dataclasses.replace(cfg.policy, budget=1.0))
    with pytest.raises(PolicyError, match="too small for any contact"):
        evaluate_policy.run(_ctx(spark, tiny))
    no_model = cfg.replace(policy=dataclasses.replace(cfg.policy, outcome="churn"))
    with pytest.raises(ModelError, match="no saved model for the policy outcome 'churn'"):
        evaluate_policy.run(_ctx(spark, no_model))
    for name in ("policy_evaluation", "policy_curves"):
        assert store.read(name, run_id=RUN_ID).count() == 0


def test_calibrated_values_and_held_out_value_beside_the_predictions(spark, smoke_run):
    import numpy as np

    from uplift_spark.pipelines import decide as decide_stage

    cfg = load_config(SMOKE, output_root=smoke_run)
    store = TableStore(spark, cfg)
    evaluate_policy.run(_ctx(spark, cfg))  # the bad-input test above removed its tables
    dec = store.read("decisions", run_id=RUN_ID).toPandas()  # smoke run: a few thousand customers
    benefit = {a: e.benefit for a, e in cfg.policy.arms.items()}
    on = dec[dec.action != "none"]
    assert len(on) and on.expected_uplift_calibrated.notna().all()
    assert (dec.loc[dec.action == "none", ["expected_uplift_calibrated", "expected_value_calibrated"]] == 0).all().all()
    np.testing.assert_allclose(on.expected_value_calibrated - on.expected_value,
                               on.action.map(benefit) * (on.expected_uplift_calibrated - on.expected_uplift), atol=1e-9)
    for _, part in on.groupby("action"):  # a monotone map of each arm's prediction
        part = part.sort_values("expected_uplift")
        assert (np.diff(part.expected_uplift_calibrated.to_numpy()) >= -1e-12).all()
    summary = store.read("decision_summary", run_id=RUN_ID).toPandas()
    total = summary[summary.kind == "total"].iloc[0]
    assert total.expected_value == pytest.approx(on.expected_value.sum())
    assert total.expected_value_calibrated == pytest.approx(on.expected_value_calibrated.sum())
    # its interval: each arm's SE from the calibration bins (NumPy hat weights of the contacts' predictions),
    # added over arms, × the normal quantile
    from scipy.stats import norm

    from uplift_spark.pipelines.calibrate_values import calibration_maps
    from uplift_spark.policy import calibration as cal

    maps, _ = calibration_maps(_ctx(spark, cfg), list(cfg.data.treatment_arms))
    se = sum(abs(benefit[a]) * m.sum_se(cal.hat_weights(on.expected_uplift[on.action == a].to_numpy(),
                                                         m.predicted).sum(axis=0)) for a, m in maps.items())
    z = norm.ppf(0.5 + cfg.policy_evaluation.ci_level / 2)
    assert se > 0
    assert total.calibrated_ci_low == pytest.approx(total.expected_value_calibrated - z * se, rel=1e-9)
    assert total.calibrated_ci_high == pytest.approx(total.expected_value_calibrated + z * se, rel=1e-9)
    ev = store.read("policy_evaluation", run_id=RUN_ID).toPandas()
    gain = ev[(ev.split == "test") & (ev.policy == "policy") & (ev.baseline == "nobody") & (ev.estimator == "aipw")
              & (ev.metric == "gain")].iloc[0]
    assert total.held_out_split == "test"
    assert total.held_out_value == pytest.approx(gain.estimate * len(dec), rel=1e-9)
    assert total.held_out_ci_low == pytest.approx(gain.ci_low * len(dec), rel=1e-9)

    # calibration on the split evaluate-policy judges on is refused before anything is written
    version = store.read("decisions", run_id=RUN_ID).inputFiles()
    bad = cfg.replace(policy=dataclasses.replace(cfg.policy, calibration_split="test"))
    with pytest.raises(PolicyError, match="calibration_split"):
        decide_stage.run(_ctx(spark, bad))
    assert store.read("decisions", run_id=RUN_ID).inputFiles() == version
    # policy: threshold on calibrated values: every contact is worth ≥ min_value after calibration, and
    # expected_uplift still reports the model's prediction (the scores table's uplift of that arm)
    thr = cfg.replace(policy=dataclasses.replace(cfg.policy, policy="threshold", budget=None, calibrated=True,
                                                 holdout_share=0.0, explore_share=0.0))
    out = decide_stage.run(_ctx(spark, thr))
    assert out["calibrated"] is True
    dec2 = store.read("decisions", run_id=RUN_ID).toPandas()
    on2 = dec2[dec2.action != "none"]
    assert (on2.expected_value_calibrated >= cfg.policy.min_value - 1e-12).all()
    scores = store.read("scores", run_id=RUN_ID).select("customer_id", "arm", "uplift").toPandas()
    pred = on2.merge(scores, left_on=["customer_id", "action"], right_on=["customer_id", "arm"])
    assert len(pred) == len(on2)
    np.testing.assert_allclose(pred.expected_uplift, pred.uplift, atol=1e-12)
    decide_stage.run(_ctx(spark, cfg))  # leave the run's decisions as the configured policy made them
