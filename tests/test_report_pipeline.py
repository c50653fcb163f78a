"""Report pipeline on real Delta tables: Spark segment aggregation vs pandas, files written, missing tables."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from test_report import ARMS, RUN, fake_sections, simulate
from uplift_spark.config import DataConfig, OutcomeSpec, ReportConfig, RunConfig, UpliftConfig
from uplift_spark.pipelines import report as report_stage
from uplift_spark.pipelines.context import RunContext
from uplift_spark.report import png_size, segment_uplift, strongest_features
from uplift_spark.schemas import TABLE_COLUMNS, conform


def _config(root):
    data = DataConfig(source="synthetic", control_arm="control", treatment_arms=ARMS, features=("x0", "x1", "c0", "flag"),
                      categorical_features=("c0",), outcomes=(OutcomeSpec("conversion"),),
                      primary_outcome="conversion")
    return UpliftConfig(run=RunConfig(output_root=str(root)), data=data,
                        report=ReportConfig(segment_features=2, segment_bins=4, segment_min_rows=20))


def _write(ctx, pdf, name):
    df = ctx.spark.createDataFrame(pdf).coalesce(1)
    if name in TABLE_COLUMNS:
        df = conform(df, name)
    ctx.store.write(df, name, ctx.run_id)


@pytest.fixture(scope="module")
def run_ctx(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("report_run")
    ctx = RunContext(spark=spark, cfg=_config(root), run_id=RUN)
    frame, tau, scores = simulate(n=3000, seed=5)
    frame["flag"] = (frame["x0"] > 0.8).astype(int)             # a 0/1 feature: segments by value
    frame["true_uplift_email_a"] = tau["email_a"][: len(frame)]  # never a segment feature
    ctx.store.write(spark.createDataFrame(frame.assign(run_id=RUN)).coalesce(2), "experiment_log", RUN)
    rows = []
    split = np.where(np.arange(len(frame)) % 3 == 0, "train", "test")
    for learner in ("t", "x"):
        for arm in ARMS:
            rows.append(pd.DataFrame({"run_id": RUN, "learner": learner, "outcome": "conversion",
                                      "customer_id": frame["customer_id"], "split": split, "arm": arm,
                                      "uplift": scores[learner][arm][: len(frame)]}))
    _write(ctx, pd.concat(rows, ignore_index=True), "predictions")
    fakes = fake_sections(with_monitoring=False)
    imp = fakes.feature_importance.copy()
    imp.loc[imp.feature == "c0", "gain_share"] = 0.9             # make c0 and x1 the strongest two
    imp.loc[imp.feature == "x0", "gain_share"] = 0.0
    for name, pdf in (("uplift_curves", fakes.curves), ("uplift_metrics", fakes.metrics),
                      ("uplift_by_decile", fakes.deciles), ("feature_importance", imp),
                      ("validation_report", fakes.validation), ("split_summary", fakes.split_summary)):
        _write(ctx, pdf, name)
    return ctx, frame, split


def test_report_stage_writes_html_and_pngs(run_ctx, tmp_path):
    ctx, frame, split = run_ctx
    summary = report_stage.run(ctx)
    path = summary["report"]
    assert path == os.path.join(ctx.report_dir, "report.html") and os.path.isfile(path)
    assert summary["outcome"] == "conversion" and summary["split"] == "test" and summary["segment_learner"] == "x"
    assert summary["missing_sections"] == ["decision_summary", "drift_features", "realized_uplift"]
    html_text = open(path, encoding="utf-8").read()
    pngs = sorted(f for f in os.listdir(ctx.report_dir) if f.endswith(".png"))
    assert pngs == summary["figures"] and len(pngs) >= 7
    for name in pngs:
        with open(os.path.join(ctx.report_dir, name), "rb") as fh:
            assert png_size(fh.read())["width"] > 300
    assert len(re.findall(r'src="data:image/png;base64,', html_text)) == len(pngs)
    assert "decision_summary&#x27; does not exist yet" in html_text
    assert "drift_features&#x27; does not exist yet" in html_text
    assert "true_uplift" not in html_text                      # truths are never sliced as segments
    # c0 (categorical) and x1 are the strongest features: both appear as segments
    assert "c0: north" in html_text or "north" in html_text
    # a rewrite replaces the files and leaves no stale PNG of an earlier attempt behind
    folder = str(tmp_path / "again")
    report_stage.write_report(folder, html_text, {name: b"old" for name in pngs})
    open(os.path.join(folder, "99_stale.png"), "wb").write(b"x")
    report_stage.write_report(folder, "<html></html>", {pngs[0]: b"png"})
    assert sorted(os.listdir(folder)) == [pngs[0], "report.html"]
    assert open(os.path.join(folder, "report.html")).read() == "<html></html>"


def test_segment_aggregation_matches_pandas(run_ctx, spark):
    ctx, frame, split = run_ctx
    from pyspark.sql import functions as F

    log_df = ctx.store.read("experiment_log", run_id=RUN).select(
        "customer_id", F.col("arm").alias("actual_arm"), "conversion", "c0", "flag", "x1")
    preds = ctx.store.read("predictions", run_id=RUN, learner="x", outcome="conversion").where("split = 'test'")
    joined = preds.select("customer_id", "arm", "uplift").join(log_df, "customer_id")
    seg = segment_uplift(joined, ["c0", "flag", "x1"], ["c0"], control_arm="control", outcome_col="conversion",
                         bins=4)
    test = frame[split == "test"].reset_index(drop=True)
    _, _, scores = simulate(n=3000, seed=5)
    for arm in ARMS:
        pred = scores["x"][arm][: len(frame)][split == "test"]
        for feature, groups in (("c0", {f"{v}": test.c0 == v for v in ("north", "south", "west")}),
                                ("flag", {"= 0": test.flag == 0, "= 1": test.flag == 1})):
            for label, mask in groups.items():
                row = seg[(seg.arm == arm) & (seg.feature == feature) & (seg.segment == label)].iloc[0]
                yt = test.conversion[mask & (test.arm == arm)]
                yc = test.conversion[mask & (test.arm == "control")]
                assert row.n == mask.sum() and row.n_t == len(yt) and row.n_c == len(yc)
                assert row.predicted == pytest.approx(pred[mask.to_numpy()].mean(), rel=1e-9)
                assert row.observed == pytest.approx(yt.mean() - yc.mean(), rel=1e-9, abs=1e-12)
                se = np.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))
                assert row.se == pytest.approx(se, rel=1e-9)
        # numeric x1 is cut at approximate quartiles: 4 bins covering every row once
        x1 = seg[(seg.arm == arm) & (seg.feature == "x1")]
        assert len(x1) == 4 and x1.n.sum() == len(test)
        assert x1.sort_values("order").n.between(0.2 * len(test), 0.3 * len(test)).all()
    # email_b is harmed where x1 > 0.5: its top x1 bin shows a clearly lower observed uplift than the bottom
    b = seg[(seg.arm == "email_b") & (seg.feature == "x1")].sort_values("order")
    assert b.observed.iloc[-1] < b.observed.iloc[0] and b.predicted.iloc[-1] < 0


def test_strongest_features_skips_unknown_columns():
    imp = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 2, "feature": ["x0", "c0_onehot", "x1", "x0", "x1", "x0"],
                        "gain_share": [0.2, 0.5, 0.1, 0.2, 0.7, 0.3]})
    assert strongest_features(imp, ["x0", "x1"], 2) == {"a": ["x0", "x1"], "b": ["x1", "x0"]}


def test_report_with_no_tables_at_all(spark, tmp_path):
    ctx = RunContext(spark=spark, cfg=_config(tmp_path), run_id="empty-run")
    summary = report_stage.run(ctx)
    html_text = open(summary["report"], encoding="utf-8").read()
    assert summary["figures"] == [] and len(summary["missing_sections"]) == 10
    assert "No evaluation results yet" in html_text
    assert "uplift_curves&#x27; does not exist yet" in html_text
    assert "Segments not available" in html_text
