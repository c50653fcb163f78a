# Databricks notebook source
# MAGIC %md
# MAGIC # 3 · Read the evaluation
# MAGIC Decile calibration (do the top deciles really respond? who is harmed?) and the HTML report.

# COMMAND ----------

from pyspark.sql import functions as F

from uplift_spark.notebook import notebook_context, show
from uplift_spark.pipelines import report

ctx = notebook_context(globals().get("dbutils"))
primary = ctx.cfg.data.main_outcome

# COMMAND ----------

deciles = ctx.store.read("uplift_by_decile", run_id=ctx.run_id).where(F.col("outcome") == primary)
show(deciles.where(F.col("split") == "test").orderBy("learner", "arm", "decile"), n=60)

# COMMAND ----------

curves = ctx.store.read("uplift_curves", run_id=ctx.run_id)
print("curve points stored:", curves.count())

# COMMAND ----------

out = report.run(ctx)
print("report:", out)
