# Databricks notebook source
# MAGIC %md
# MAGIC # 1 · Explore the experiment
# MAGIC Load the experiment log into Delta, run the data gates, and look at arms and outcomes.
# MAGIC Parameters (widgets or env vars): `conf_file` (`UPLIFT_CONF`), `output` (`UPLIFT_OUTPUT`).

# COMMAND ----------

from pyspark.sql import functions as F

from uplift_spark.errors import ValidationFailed
from uplift_spark.notebook import notebook_context, show
from uplift_spark.pipelines import ingest, validate

ctx = notebook_context(globals().get("dbutils"), new_run=True)  # validate records it as the latest run
print("run id:", ctx.run_id)

# COMMAND ----------

summary = ingest.run(ctx)
log = ctx.store.read("experiment_log", run_id=ctx.run_id)
print(summary)

# COMMAND ----------

# MAGIC %md Arm sizes and outcome means (aggregated on the executors).

# COMMAND ----------

data = ctx.cfg.data
outcome_means = [F.avg(F.col(o).cast("double")).alias(f"mean_{o}") for o in data.outcome_names]
by_arm = log.groupBy("arm").agg(F.count("*").alias("customers"), *outcome_means).orderBy("arm")
show(by_arm)

# COMMAND ----------

# MAGIC %md Data gates: schema, ids, arms, sample-ratio mismatch, covariate balance, leakage, outcome ranges.

# COMMAND ----------

try:
    validate.run(ctx)
    gate = "passed"
except ValidationFailed as exc:
    gate = f"FAILED: {exc}"
print("validation gate:", gate)
report = ctx.store.read("validation_report", run_id=ctx.run_id)
show(report.groupBy("check", "status").count().orderBy("check", "status"))
