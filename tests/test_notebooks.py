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
    for path in NOTEBOOKS:
        namespace = {"__name__": "__notebook__"}
        for i, code in enumerate(cells(path)):
            try:
                exec(compile(code, f"{os.path.basename(path)}[cell {i}]", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{os.path.basename(path)} cell {i} failed: {type(exc).__name__}: {exc}")
    report = glob.glob(str(tmp_path / "out" / "reports" / "*" / "report.html"))
    assert report, "notebook 3 should have written the HTML report"
