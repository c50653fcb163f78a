"""The whole pipeline as a user runs it: `uplift-spark run`, twice with one run id, read back with delta-rs."""

import os

import pytest

from uplift_spark.cli import main
from uplift_spark.config import load_config
from uplift_spark.io import TableStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_ID = "e2e-run"  # = conftest.SMOKE_RUN_ID

# Tables every full run must fill for its run id (realized_uplift needs campaign outcomes, alerts may be empty).
MUST_HAVE_ROWS = (
    "experiment_log", "validation_report", "splits", "split_summary", "predictions", "feature_importance",
    "uplift_curves", "uplift_metrics", "uplift_by_decile", "scores", "decisions", "decision_summary",
    "policy_evaluation", "policy_curves", "drift_features", "drift_scores", "drift_policy",
)


@pytest.fixture(scope="module")
def pipeline_run(smoke_run):
    """The session's shared smoke run (tests/conftest.py): run once, then rerun SMOKE_RERUN_STAGES."""
    return smoke_run.out, smoke_run.first, smoke_run.second


@pytest.fixture(scope="module")
def smoke_conf(smoke_run):
    return smoke_run.conf


def test_every_table_is_written(pipeline_run):
    _, first, _ = pipeline_run
    for name in MUST_HAVE_ROWS:
        assert first.get(name, 0) > 0, f"{name} has no rows for the run"
    assert first["experiment_log"] == 8000
    assert first["splits"] == 8000
    assert first["decisions"] == 8000


def test_latest_points_at_the_validated_run(pipeline_run, smoke_conf):
    from uplift_spark.pipelines.context import latest_run_id

    out, _, _ = pipeline_run
    assert latest_run_id(load_config(smoke_conf, output_root=out)) == RUN_ID


def test_rerun_with_same_run_id_leaves_no_duplicates(pipeline_run):
    """Row counts per table: after the first run as delta-rs reads them, after the rerun as Spark does."""
    _, first, second = pipeline_run
    assert first == second


def test_models_and_report_exist(spark, pipeline_run, smoke_conf):
    """The saved models reproduce the predictions table, and the report shows the metrics table's numbers."""
    import re

    from pyspark.sql import functions as F

    from uplift_spark.learners import load_manifest, load_models
    from uplift_spark.report.text import fmt

    out, _, _ = pipeline_run
    store = TableStore(spark, load_config(smoke_conf, output_root=out))
    model_dir = os.path.join(out, "models", RUN_ID)
    manifest = load_manifest(model_dir)
    assert manifest["models"]
    sample = store.read("experiment_log", run_id=RUN_ID).orderBy("customer_id").limit(40)
    predictions = store.read("predictions", run_id=RUN_ID)
    checked = 0
    for entry, model in load_models(model_dir):
        for arm, col in model.uplift_columns.items():
            stored = predictions.where((F.col("learner") == entry["learner"]) & (F.col("outcome") == entry["outcome"])
                                       & (F.col("arm") == arm)).select("customer_id", F.col("uplift").alias("stored"))
            pairs = (model.transform(sample).select(F.col("customer_id").cast("string").alias("customer_id"), col)
                     .join(stored, "customer_id").collect())  # 40 rows
            assert len(pairs) == 40, (entry["learner"], arm)
            for row in pairs:
                assert abs(row[col] - row["stored"]) <= 1e-12, (entry["learner"], arm, row)
            checked += 1
    assert checked >= len(manifest["models"])

    report = os.path.join(out, "reports", RUN_ID, "report.html")
    html = open(report, encoding="utf-8").read()
    assert "Qini" in html and "<img" in html
    # evaluate-policy ran, so its section is rendered with the others (in the contents, before the glossary)
    assert 'href="#policy-value"' in html and html.index('<section id="policy-value">') < html.index('id="glossary"')
    outcome, split = re.search(r"outcome <b>([^<]+)</b> · split <b>([^<]+)</b>", html).groups()
    metrics = (store.read("uplift_metrics", run_id=RUN_ID)
               .where((F.col("outcome") == outcome) & (F.col("split") == split) & (F.col("metric") == "qini_auc"))
               .collect())  # learners × arms rows
    assert metrics
    for row in metrics:  # the metrics table shows each learner's and arm's Qini AUC to 4 digits
        assert f'<td class="num">{fmt(row["value"], 4)}' in html, row
def test_every_table_reads_with_delta_rs(spark, pipeline_run, smoke_conf):
    """A CRM reading with delta-rs sees the same rows and columns Spark wrote."""
    from deltalake import DeltaTable

    out, _, second = pipeline_run
    store = TableStore(spark, load_config(smoke_conf, output_root=out))
    for name, rows in second.items():
        table = DeltaTable(store.location(name))
        frame = table.to_pandas()
        spark_cols = store.read(name).columns
        assert sorted(frame.columns) == sorted(spark_cols), name
        assert int((frame["run_id"] == RUN_ID).sum()) == rows, name


def test_decisions_respect_budget(spark, pipeline_run, smoke_conf):
    from pyspark.sql import functions as F

    out, _, _ = pipeline_run
    cfg = load_config(smoke_conf, output_root=out)
    store = TableStore(spark, cfg)
    decisions = store.read("decisions", run_id=RUN_ID)
    costs = {arm: econ.cost for arm, econ in cfg.policy.arms.items()}
    cost_expr = F.lit(0.0)
    for arm, cost in costs.items():
        cost_expr = F.when(F.col("action") == arm, F.lit(cost)).otherwise(cost_expr)
    spent = decisions.select(F.sum(cost_expr).alias("spent")).first()["spent"]
    assert spent <= cfg.policy.budget + 1e-6
    buckets = {r["bucket"] for r in decisions.select("bucket").distinct().collect()}
    assert buckets == {"policy", "holdout", "explore"}


def test_calibrated_value_comes_with_an_interval(spark, pipeline_run, smoke_conf):
    """decision_summary's total row: the calibrated value is an estimate, so it carries an interval."""
    out, _, _ = pipeline_run
    store = TableStore(spark, load_config(smoke_conf, output_root=out))
    total = store.read("decision_summary", run_id=RUN_ID).where("kind = 'total'").collect()
    assert len(total) == 1
    t = total[0]
    assert t["calibrated_ci_low"] < t["expected_value_calibrated"] < t["calibrated_ci_high"]


def test_pipeline_run_publishes_its_decisions(spark, smoke_run):
    """conf/smoke.yaml publishes inside `run` (and again in the rerun, changing nothing)."""
    from pyspark.sql import functions as F

    cfg = load_config(smoke_run.conf, output_root=smoke_run.out)
    store = TableStore(spark, cfg)
    campaign = cfg.policy.campaign_id
    dec = store.read("decisions", run_id=smoke_run.run_id)
    cur = store.read("decisions_current").where(F.col("campaign_id") == campaign)
    assert cur.count() == dec.count() == 8000
    differ = cur.alias("c").join(dec.alias("d"), "customer_id").where(F.col("c.action") != F.col("d.action"))
    assert differ.count() == 0
    log = store.read("publications").where(F.col("campaign_id") == campaign).collect()
    assert [r["run_id"] for r in log] == [smoke_run.run_id]  # the rerun's publication changed nothing
    expected = dec.where((F.col("action") != "none") | (F.col("bucket") == "holdout")).count()
    assert store.read("contact_history", run_id=smoke_run.run_id).count() == expected


def test_failed_gate_stops_the_run_and_writes_nothing_downstream(spark, tmp_path, hillstrom_path):
    """An experiment log with an arm the config does not know fails validation; no split is written."""
    import pandas as pd

    frame = pd.read_csv(hillstrom_path, nrows=3000)
    frame.loc[frame.index[:40], "segment"] = "SMS"  # an arm nobody configured
    csv = tmp_path / "bad.csv"
    frame.assign(customer_id=[f"b{i}" for i in range(len(frame))]).to_csv(csv, index=False)
    conf = tmp_path / "bad.yaml"
    text = open(os.path.join(ROOT, "conf", "hillstrom.yaml"), encoding="utf-8").read()
    text = text.replace("source: hillstrom ", "source: csv ").replace("  arm: arm ", "  arm: segment ")
    conf.write_text(text)
    out = str(tmp_path / "out")
    code = main(["run", "--conf-file", str(conf), "--data", str(csv), "--output", out, "--run-id", "bad-run"])
    assert code == 5  # ValidationFailed
    store = TableStore(spark, load_config(str(conf), output_root=out))
    assert store.exists("validation_report")
    report = store.read("validation_report", run_id="bad-run")
    failed = report.where("status = 'fail'").collect()
    assert any("SMS" in (r["message"] or "") or r["arm"] == "SMS" for r in failed)
    assert not store.exists("splits")
    assert not store.exists("predictions")
    from uplift_spark.pipelines.context import latest_run_id

    assert latest_run_id(load_config(str(conf), output_root=out)) is None  # a rejected run is never the latest
