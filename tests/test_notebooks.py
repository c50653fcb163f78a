"""The Databricks-style source notebooks run top to bottom, in order, against one run."""

import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.py")))


def cells(path):
    """Code cells of a Databricks source notebook (``# COMMAND ----------`` separated, MAGIC = markdown)."""
    text = open(path, encoding="utf-8").read()
    assert text.startswith("# Databricks notebook source"), path
    for chunk in text.split("# COMMAND ----------"):
        code = "\n".join(line for line in chunk.splitlines() if not line.startswith("# MAGIC"))
        if code.strip() and code.strip() != "# Databricks notebook source":
            yield code


def test_notebooks_import_only_the_package():
    allowed = ("uplift_spark", "pyspark")
    for path in NOTEBOOKS:
        for line in open(path, encoding="utf-8"):
            if line.startswith(("import ", "from ")):
                module = line.split()[1]
                assert module.startswith(allowed), f"{os.path.basename(path)} imports {module}"


@pytest.mark.slow
def test_notebooks_run_top_to_bottom(spark, tmp_path, monkeypatch):
    conf = tmp_path / "nb.yaml"
    text = open(os.path.join(ROOT, "conf", "smoke.yaml"), encoding="utf-8").read()
    conf.write_text(text.replace("  learners: [t, x]", "  learners: [t]").replace("n_rows: 8000", "n_rows: 5000"))
    monkeypatch.setenv("UPLIFT_CONF", str(conf))
    monkeypatch.setenv("UPLIFT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.delenv("UPLIFT_RUN_ID", raising=False)
    assert len(NOTEBOOKS) >= 4
    spaces = {}
    for path in NOTEBOOKS:
        namespace = {"__name__": "__notebook__"}
        for i, code in enumerate(cells(path)):
            try:
                exec(compile(code, f"{os.path.basename(path)}[cell {i}]", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{os.path.basename(path)} cell {i} failed: {type(exc).__name__}: {exc}")
        spaces[os.path.basename(path)[:2]] = namespace
    # 01: every simulated customer ingested, all four arms present, the validation gate passed
    nb = spaces["01"]
    assert nb["summary"]["rows"] == 5000
    arms = {r["arm"]: r["customers"] for r in nb["by_arm"].collect()}  # one row per arm
    assert set(arms) == {"control", "email_a", "email_b", "discount"} and sum(arms.values()) == 5000
    assert nb["gate"] == "passed"
    # 02: the configured learner was evaluated with a finite Qini AUC per treatment arm
    metrics = spaces["02"]["metrics"].where("metric = 'qini_auc'").collect()  # learners x arms x splits
    assert {r["learner"] for r in metrics} == {"t"}
    assert {r["arm"] for r in metrics} == {"email_a", "email_b", "discount"}
    assert all(r["value"] == r["value"] and -2.0 < r["value"] < 2.0 for r in metrics)
    # 03: the report was written where the stage says, with the curves section
    report = glob.glob(str(tmp_path / "out" / "reports" / "*" / "report.html"))
    assert len(report) == 1 and os.path.samefile(spaces["03"]["out"]["report"], report[0])
    assert spaces["03"]["curves"].count() > 0 and "Qini" in open(report[0], encoding="utf-8").read()
    # 04: decisions use only configured actions
    actions = {r["action"] for r in spaces["04"]["decisions"].select("action").distinct().collect()}
    assert actions and actions <= {"none", "email_a", "email_b", "discount"}  # "none": do nothing
    # 05: one finite validation Qini AUC per grid point
    if "05" in spaces:
        nb = spaces["05"]
        scores = list(nb["tuned"].validationMetrics)
        assert len(scores) == len(nb["grid"]) == 2 and all(v == v for v in scores)
