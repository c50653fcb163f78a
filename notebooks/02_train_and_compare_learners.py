# Databricks notebook source
# MAGIC %md
# MAGIC # 2 · Train and compare learners
# MAGIC Split customers (out-of-time + stratified), train the T- and X-learners with distributed LightGBM,
# MAGIC score every split and compare the learners on held-out customers.

# COMMAND ----------

from pyspark.sql import functions as F

from uplift_spark.notebook import notebook_context, show
from uplift_spark.pipelines import evaluate, predict, split, train

ctx = notebook_context(globals().get("dbutils"))
print("run id:", ctx.run_id)

# COMMAND ----------

print(split.run(ctx))
show(ctx.store.read("split_summary", run_id=ctx.run_id).orderBy("split", "arm", "outcome"))

# COMMAND ----------

print(train.run(ctx))
importance = ctx.store.read("feature_importance", run_id=ctx.run_id)
show(importance.groupBy("learner", "feature").agg(F.avg("gain_share").alias("gain_share"))
     .orderBy(F.desc("gain_share")).limit(15))

# COMMAND ----------

print(predict.run(ctx))
print(evaluate.run(ctx))

# COMMAND ----------

# MAGIC %md Qini AUC (normalized like scikit-uplift) per learner and arm, with bootstrap intervals.

# COMMAND ----------

metrics = ctx.store.read("uplift_metrics", run_id=ctx.run_id)
show(metrics.where(F.col("metric").isin("qini_auc", "uplift_auc", "uplift_at_20"))
     .orderBy("outcome", "split", "arm", "metric", "learner"), n=50)
