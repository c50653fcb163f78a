"""Every gate with a passing and a failing case, numbers checked against NumPy/SciPy references."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from uplift_spark.config import DataConfig, OutcomeSpec, SyntheticConfig, UpliftConfig, ValidationConfig
from uplift_spark.datasets import generate_synthetic, load_hillstrom, synthetic_data_config
from uplift_spark.errors import ValidationFailed
from uplift_spark.pipelines import validate
from uplift_spark.pipelines.context import RunContext
from uplift_spark.validation import failures, run_checks

ARMS = ("control", "t1", "t2")
DATA = DataConfig(
    source="parquet", control_arm="control", treatment_arms=("t1", "t2"), assigned_at="assigned_at",
    features=("x", "c", "x_late"), categorical_features=("c",), feature_observed_at={"x_late": "x_late_at"},
    feature_snapshot_at="features_at",
    outcomes=(OutcomeSpec("y"), OutcomeSpec("rev", "continuous", min=0.0), OutcomeSpec("z", "continuous")),
    propensity="propensity",
)


def _clean(n_per_arm=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_per_arm * 3

    def balanced():  # standardized within each arm: every SMD is exactly 0 on clean data
        v = rng.normal(size=(3, n_per_arm))
        return ((v - v.mean(1, keepdims=True)) / v.std(1, keepdims=True)).ravel()

    t = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s")
    pdf = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "arm": np.repeat(ARMS, n_per_arm),
        "assigned_at": t,
        "features_at": t - pd.Timedelta(days=2),
        "x_late_at": t - pd.Timedelta(hours=1),
        "x": balanced(),
        "x_late": balanced(),
        "c": np.tile(rng.choice(["a", "b", "c"], size=n_per_arm, p=[0.5, 0.3, 0.2]), 3),
        "y": rng.integers(0, 2, n),
        "rev": rng.exponential(10, n),
        "z": rng.normal(size=n),
    })
    for a in ARMS:
        pdf[f"propensity_{a}"] = 1 / 3
    return pdf


def _by(results, check, status=None):
    return [r for r in results if r.check == check and (status is None or r.status == status)]


def _smd(a, b):
    return (a.mean() - b.mean()) / math.sqrt((a.var(ddof=0) + b.var(ddof=0)) / 2)


def test_clean_data_passes_every_gate(spark):
    pdf = _clean()
    results = run_checks(spark.createDataFrame(pdf), DATA, ValidationConfig())
    assert failures(results, fail_on_warn=True) == []
    names = {r.check for r in results}
    assert {"schema", "row_count", "customer_id_nulls", "customer_id_duplicates", "unknown_arms", "arm_coverage",
            "arm_rows", "srm", "propensity_range", "balance", "leakage_time", "leakage_columns",
            "outcome_range", "outcome_nulls", "feature_nulls"} <= names
    bal = {(r.arm, r.column): r.metric for r in _by(results, "balance")}
    assert len(bal) == 2 * (2 + 3) and max(bal.values()) < 1e-9  # x, x_late and levels a/b/c per arm
    assert _by(results, "srm")[0].metric == pytest.approx(1.0)  # exactly equal arms


def test_dirty_data_fails_each_gate_with_a_named_message(spark):
    pdf = _clean(seed=1)
    pdf.loc[0, "customer_id"] = None                                 # null id
    pdf.loc[1, "customer_id"] = pdf.loc[2, "customer_id"]             # duplicate id
    pdf.loc[3:5, "arm"] = "t9"                                        # unknown arm (3 rows)
    pdf.loc[pdf.arm == "t1", "x"] += 1.0                              # imbalance in t1
    pdf.loc[10:11, "y"] = 2                                           # binary out of range
    pdf.loc[12, "rev"] = -1.0                                         # continuous below min
    pdf.loc[::2, "z"] = np.nan                                        # 50 % + nulls (max 0.4)
    pdf.loc[20:24, "features_at"] = pdf.loc[20:24, "assigned_at"]     # snapshot at assignment
    pdf.loc[30:33, "x_late_at"] = pdf.loc[30:33, "assigned_at"] + pd.Timedelta(days=1)
    pdf = pdf.drop(index=range(900, 1000))                            # t2 keeps 300 rows
    pdf["true_uplift_t1"] = 0.1
    data = dataclasses.replace(DATA, features=DATA.features + ("true_uplift_t1", "y_copy"),
                               outcome_like_columns=("y_copy",))
    pdf["y_copy"] = pdf["y"]
    cfg = ValidationConfig(min_rows_per_arm=350, smd_fail=0.5, max_null_share=0.4)
    results = run_checks(spark.createDataFrame(pdf), data, cfg)
    failed = {r.check for r in failures(results)}
    assert {"customer_id_nulls", "customer_id_duplicates", "unknown_arms", "arm_rows", "srm", "balance",
            "outcome_range", "outcome_nulls", "leakage_time", "leakage_columns"} <= failed
    assert _by(results, "customer_id_nulls")[0].metric == 1
    assert "1 'customer_id' value(s) appear more than once (1 extra row(s))" in _by(results, "customer_id_duplicates")[0].message
    unknown = _by(results, "unknown_arms", "fail")[0]
    assert unknown.arm == "t9" and unknown.metric == 3 and "3 row(s) have arm 't9'" in unknown.message
    short = _by(results, "arm_rows", "fail")
    assert [(r.arm, r.metric) for r in short] == [("t2", 300)]
    assert "fewer than min_rows_per_arm=350" in short[0].message
    srm = _by(results, "srm")[0]
    obs = np.array([397, 400, 300])  # control (3 rows moved to t9), t1, t2
    chi2 = ((obs - obs.sum() / 3) ** 2 / (obs.sum() / 3)).sum()
    from scipy.stats import chi2 as chi2_dist
    assert srm.metric == pytest.approx(chi2_dist.sf(chi2, 2), rel=1e-6) and srm.status == "fail"
    bal = {(r.arm, r.column): r for r in _by(results, "balance")}
    t1, ctl = pdf[pdf.arm == "t1"], pdf[pdf.arm == "control"]
    assert bal[("t1", "x")].metric == pytest.approx(abs(_smd(t1.x, ctl.x)), rel=1e-9)
    assert bal[("t1", "x")].status == "fail" and bal[("t1", "x")].metric > 0.5
    pt, pc = (t1.c == "b").mean(), (ctl.c == "b").mean()
    ref = abs(pt - pc) / math.sqrt((pt * (1 - pt) + pc * (1 - pc)) / 2)
    assert bal[("t1", "c=b")].metric == pytest.approx(ref, rel=1e-9)
    assert [r.arm for r in _by(results, "balance") if r.column == "x" and r.status != "pass"] == ["t1"]
    ranges = {r.column: r for r in _by(results, "outcome_range", "fail")}
    assert ranges["y"].metric == 2 and "outside {0, 1}" in ranges["y"].message
    assert ranges["rev"].metric == 1 and "outside [0.0, inf]" in ranges["rev"].message
    z_null = _by(results, "outcome_nulls", "fail")[0]
    assert z_null.column == "z" and z_null.metric >= 0.5
    late = {r.column: r for r in _by(results, "leakage_time", "fail")}
    assert late["features_at"].metric == 5 and "on 5 row(s)" in late["features_at"].message
    assert late["x_late"].metric == 4 and "feature 'x_late'" in late["x_late"].message
    leaked = {r.column for r in _by(results, "leakage_columns", "fail")}
    assert leaked == {"true_uplift_t1", "y_copy"}


def test_schema_gate_and_single_arm(spark):
    pdf = _clean(n_per_arm=50)
    pdf["arm"] = "control"
    pdf["x"] = pdf["x"].astype(str)  # wrong type
    df = spark.createDataFrame(pdf.drop(columns=["z"]))  # missing outcome
    results = run_checks(df, DATA, ValidationConfig())
    schema = {r.column: r.message for r in _by(results, "schema", "fail")}
    assert schema["z"] == "missing continuous outcome column 'z'"
    assert "numeric feature column 'x' has type string" in schema["x"]
    coverage = _by(results, "arm_coverage")[0]
    assert coverage.status == "fail" and "all 150 rows are in one arm ('control')" in coverage.message
    assert {r.arm for r in _by(results, "arm_rows", "fail")} == {"t1", "t2"}
    assert not [r for r in _by(results, "balance") if r.column == "x"]  # an unusable column is skipped


def test_srm_on_hillstrom_passes_and_fails_when_an_arm_is_subsampled(spark, hillstrom_path):
    df = load_hillstrom(spark, hillstrom_path).cache()
    data = DataConfig(control_arm="No E-Mail", treatment_arms=("Mens E-Mail", "Womens E-Mail"),
                      outcomes=(OutcomeSpec("visit"),),
                      allocation={"No E-Mail": 1 / 3, "Mens E-Mail": 1 / 3, "Womens E-Mail": 1 / 3})
    srm = _by(run_checks(df, data, ValidationConfig()), "srm")[0]
    obs = np.array([21306, 21307, 21387])
    ref = ((obs - 64000 / 3) ** 2 / (64000 / 3)).sum()
    from scipy.stats import chi2 as chi2_dist
    assert srm.status == "pass" and srm.metric == pytest.approx(chi2_dist.sf(ref, 2), rel=1e-9)
    thinned = df.where((F.col("arm") != "Mens E-Mail") | (F.xxhash64("customer_id") % 20 != 0))
    srm2 = _by(run_checks(thinned, data, ValidationConfig()), "srm")[0]
    assert srm2.status == "fail" and srm2.metric < 1e-6 and "Mens E-Mail" in srm2.message
    df.unpersist()


def test_known_propensities_weight_balance_and_srm(spark):
    cfg = SyntheticConfig(propensity="covariate", n_categorical=0, n_numeric=4, seed=4, partitions=2)
    df = generate_synthetic(spark, cfg, n_rows=8000).cache()
    data = synthetic_data_config(cfg)
    weighted = run_checks(df, data, ValidationConfig())
    assert failures(weighted) == []
    x0 = {r.arm: r for r in _by(weighted, "balance") if r.column == "x0"}
    assert all(r.metric < 0.1 for r in x0.values()) and "IPW-weighted" in x0["email_a"].message
    assert "against the known propensities" in _by(weighted, "srm")[0].message
    raw = run_checks(df, dataclasses.replace(data, propensity=None), ValidationConfig())
    raw_x0 = {r.arm: r for r in _by(raw, "balance") if r.column == "x0"}
    assert raw_x0["email_a"].status == "warn" and raw_x0["email_a"].metric > 0.1  # assignment depends on x0
    df.unpersist()


def _ctx(spark, tmp_path, data, validation=ValidationConfig()):
    cfg = UpliftConfig(data=data, validation=validation).with_output(str(tmp_path / "out"))
    return RunContext(spark, cfg, "run1")


def test_validate_pipeline_writes_report_raises_and_clears_downstream(spark, tmp_path):
    pdf = _clean(n_per_arm=150, seed=3)
    pdf.loc[0:3, "arm"] = "t9"
    pdf.loc[5, "customer_id"] = pdf.loc[6, "customer_id"]
    ctx = _ctx(spark, tmp_path, DATA)
    ctx.store.write(spark.createDataFrame(pdf).withColumn("run_id", F.lit("run1")), "experiment_log", "run1")
    splits = spark.createDataFrame([("run1", "c1", "train", 0), ("run0", "c1", "train", 0)],
                                   "run_id string, customer_id string, split string, fold int")
    ctx.store.write(splits.where("run_id = 'run1'"), "splits", "run1")
    ctx.store.write(splits.where("run_id = 'run0'"), "splits", "run0")
    with pytest.raises(ValidationFailed) as err:
        validate.run(ctx)
    msg = str(err.value)
    assert "unknown_arms[t9/arm] fail: 4 row(s) have arm 't9'" in msg
    assert "customer_id_duplicates" in msg and "run" not in {f.check for f in err.value.failures}
    assert {f.check for f in err.value.failures} == {"unknown_arms", "customer_id_duplicates"}
    # the diagnostic is written; downstream rows of this run are gone, other runs untouched
    report = ctx.store.read("validation_report", run_id="run1")
    assert report.where("status = 'fail'").count() == 2
    assert [r["run_id"] for r in ctx.store.read("splits").collect()] == ["run0"]
    # Spark's Delta table reads identically with delta-rs
    from deltalake import DeltaTable

    key = ["check", "arm", "column"]
    spark_pdf = report.toPandas().sort_values(key, na_position="first").reset_index(drop=True)
    rs = DeltaTable(ctx.store.location("validation_report")).to_pandas()
    rs = rs[spark_pdf.columns].sort_values(key, na_position="first").reset_index(drop=True)
    assert len(rs) == len(spark_pdf) > 40
    pd.testing.assert_frame_equal(rs.astype(object).where(rs.notna(), None),
                                  spark_pdf.astype(object).where(spark_pdf.notna(), None), check_dtype=False)


def test_validate_pipeline_passes_and_fail_on_warn(spark, tmp_path):
    pdf = _clean(n_per_arm=150, seed=5)
    pdf.loc[pdf.arm == "t2", "x"] += 0.3  # a warn-level imbalance only
    ctx = _ctx(spark, tmp_path, DATA)
    ctx.store.write(spark.createDataFrame(pdf).withColumn("run_id", F.lit("run1")), "experiment_log", "run1")
    summary = validate.run(ctx)
    assert summary["failed"] == 0 and summary["warned"] >= 1 and summary["srm_pvalue"] == pytest.approx(1.0)
    strict = _ctx(spark, tmp_path, DATA, ValidationConfig(fail_on_warn=True))
    with pytest.raises(ValidationFailed, match=r"balance\[t2/x\] warn"):
        validate.run(strict)
    assert strict.store.read("validation_report", run_id="run1").count() == summary["checks"]
