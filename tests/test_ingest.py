"""Ingest: real Delta experiment_log from Hillstrom and synthetic sources; bad inputs fail before writing."""

import dataclasses
import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

from uplift_spark.cli import main
from uplift_spark.config import DataConfig, OutcomeSpec, UpliftConfig, config_from_dict, load_config
from uplift_spark.errors import ConfigError, DataError
from uplift_spark.pipelines import ingest
from uplift_spark.pipelines.context import INGESTED, RunContext, latest_run_id

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HILLSTROM_FACTS = {  # /work/shared/data/README.md
    "Mens E-Mail": (21307, 0.1828, 0.0125, 1.4226),
    "Womens E-Mail": (21387, 0.1514, 0.0088, 1.0772),
    "No E-Mail": (21306, 0.1062, 0.0057, 0.6528),
}


def test_hillstrom_ingest_from_the_shipped_config(spark, tmp_path, hillstrom_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # data.path ../shared/data/hillstrom.csv is relative to the project root
    cfg = load_config(os.path.join(ROOT, "conf", "hillstrom.yaml"), output_root=str(tmp_path / "out"))
    assert cfg.data.primary_outcome == "visit"
    ctx = RunContext(spark, cfg, "h1")
    summary = ingest.run(ctx)
    assert summary["rows"] == 64000
    assert summary["arms"] == {arm: facts[0] for arm, facts in HILLSTROM_FACTS.items()}
    assert latest_run_id(cfg, INGESTED) == "h1" and latest_run_id(cfg) is None  # LATEST waits for validate
    log = ctx.store.read("experiment_log", run_id="h1")
    assert log.columns[:3] == ["run_id", "customer_id", "arm"]
    assert dict(log.dtypes)["customer_id"] == "string"
    for r in log.groupBy("arm").agg(F.avg("visit").alias("v"), F.avg("conversion").alias("c"),
                                    F.avg("spend").alias("s")).collect():
        _, visit, conv, spend = HILLSTROM_FACTS[r["arm"]]
        assert (r["v"], r["c"], r["s"]) == pytest.approx((visit, conv, spend), abs=5e-5)


def test_synthetic_ingest_is_idempotent_per_run(spark, tmp_path):
    cfg = load_config(os.path.join(ROOT, "conf", "synthetic.yaml"), output_root=str(tmp_path / "out"))
    cfg = cfg.replace(synthetic=dataclasses.replace(cfg.synthetic, n_rows=1500, partitions=2))
    ctx = RunContext(spark, cfg, "s1")
    first = ingest.run(ctx)
    again = ingest.run(ctx)
    assert first["rows"] == again["rows"] == 1500 and set(first["arms"]) == {"control", "email_a", "email_b", "discount"}
    log = ctx.store.read("experiment_log")
    assert log.count() == 1500 and log.select(F.count_distinct("customer_id")).first()[0] == 1500
    assert {"true_uplift_email_a", "propensity_control", "features_at", "opted_in"} <= set(log.columns)


def _csv_cfg(tmp_path, path, **data):
    base = dict(source="csv", path=str(path), customer_id="cid", arm="grp", control_arm="control",
                treatment_arms=("t",), features=("x",), outcomes=(OutcomeSpec("y"),))
    base.update(data)
    return UpliftConfig(data=DataConfig(**base)).with_output(str(tmp_path / "out"))


@pytest.mark.parametrize("case, message", [
    ("missing_file", "csv source '{path}': file or folder not found|data.path: file or folder not found: '{path}'"),
    ("missing_column", "missing numeric feature column 'x'"),
    ("wrong_type", "numeric feature column 'x' has type string"),
    ("id_clash", "column 'customer_id' exists but data.customer_id is 'cid'"),
])
def test_bad_inputs_fail_with_named_errors_and_write_nothing(spark, tmp_path, case, message):
    path = tmp_path / "in.csv"
    pdf = pd.DataFrame({"cid": ["a", "b"], "grp": ["control", "t"], "x": [1.0, 2.0], "y": [0, 1]})
    if case == "missing_column":
        pdf = pdf.drop(columns=["x"])
    elif case == "wrong_type":
        pdf["x"] = ["high", "low"]
    elif case == "id_clash":
        pdf["customer_id"] = [1, 2]
    if case != "missing_file":
        pdf.to_csv(path, index=False)
    ctx = RunContext(spark, _csv_cfg(tmp_path, path), "bad1")
    with pytest.raises(DataError) as err:
        ingest.run(ctx)
    assert any(m.format(path=path) in str(err.value) for m in message.split("|")), str(err.value)
    if case != "missing_file":
        assert str(path) in str(err.value)  # the source is named
    assert not ctx.store.exists("experiment_log")
    assert latest_run_id(ctx.cfg) is None


def test_empty_source_fails(spark, tmp_path):
    path = tmp_path / "empty.parquet"
    spark.createDataFrame([], "cid string, grp string, x double, y int").write.parquet(str(path))
    ctx = RunContext(spark, _csv_cfg(tmp_path, path, source="parquet"), "e1")
    with pytest.raises(DataError, match="has no rows"):
        ingest.run(ctx)
    assert not ctx.store.exists("experiment_log")


def test_cli_exit_code_names_the_missing_file(spark, tmp_path, capsys):
    conf = tmp_path / "c.yaml"
    conf.write_text("data:\n  source: hillstrom\n  path: nowhere/hillstrom.csv\n"
                    "  control_arm: No E-Mail\n  treatment_arms: [Mens E-Mail]\n")
    code = main(["ingest", "--conf-file", str(conf), "--output", str(tmp_path / "out")])
    assert code == DataError.exit_code
    assert "nowhere/hillstrom.csv" in capsys.readouterr().err


def test_malformed_yaml_and_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: csv\n   path: [oops\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="unknown config key validation.smd_wran"):
        config_from_dict({"validation": {"smd_wran": 0.2}})
    with pytest.raises(ConfigError, match="synthetic.drift: expected true/false"):
        config_from_dict({"synthetic": {"drift": "yes"}})
    for name in ("hillstrom.yaml", "synthetic.yaml"):  # the shipped configs list every section
        import yaml

        with open(os.path.join(ROOT, "conf", name), encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        assert {"run", "spark", "data", "validation", "split", "model", "evaluation", "report", "policy",
                "monitoring"} <= set(raw)
