# Databricks notebook source
# MAGIC %md
# MAGIC # 4 · Decisions and drift
# MAGIC Score customers, choose one action each under the budget (with holdout and exploration buckets),
# MAGIC then compare a new batch with the training reference.

# COMMAND ----------

from pyspark.sql import functions as F

from uplift_spark.notebook import notebook_context, show
from uplift_spark.pipelines import decide, monitor, score

ctx = notebook_context(globals().get("dbutils"))

# COMMAND ----------

print(score.run(ctx))
print(decide.run(ctx))
show(ctx.store.read("decision_summary", run_id=ctx.run_id))

# COMMAND ----------

decisions = ctx.store.read("decisions", run_id=ctx.run_id)
show(decisions.groupBy("bucket", "action").agg(F.count("*").alias("customers"),
                                               F.sum("expected_value").alias("expected_value"))
     .orderBy("bucket", "action"))

# COMMAND ----------

print(monitor.run(ctx))
show(ctx.store.read("drift_features", run_id=ctx.run_id).orderBy(F.desc("psi")))
show(ctx.store.read("monitoring_alerts", run_id=ctx.run_id))
