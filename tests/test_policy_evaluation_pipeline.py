"""``evaluate-policy`` on the smoke pipeline: tables, the run's headline sentence, idempotent reruns, and
bad input (no randomized design, a budget too small for any contact) failing with nothing written."""

import dataclasses
import os

import pytest

from uplift_spark.cli import main
from uplift_spark.config import load_config
from uplift_spark.errors import DataError, PolicyError
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
    for name in ("policy_evaluation", "policy_curves"):
        assert store.read(name, run_id=RUN_ID).count() == 0
