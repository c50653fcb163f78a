# Databricks notebook source
# MAGIC %md
# MAGIC # 4 · Decisions and drift
# MAGIC Score customers, choose one action each under the budget (with holdout and exploration buckets),
# MAGIC check what the policy earns on held-out randomized customers against simple alternatives at equal
# MAGIC spend, then compare a new batch with the training reference.

# COMMAND ----------

from pyspark.sql import functions as F

from uplift_spark.notebook import notebook_context, show, show_png
from uplift_spark.pipelines import decide, evaluate_policy, monitor, score
from uplift_spark.report.policy_section import plot_policy_curves

ctx = notebook_context(globals().get("dbutils"))

# COMMAND ----------

print(score.run(ctx))
print(decide.run(ctx))
show(ctx.store.read("decision_summary", run_id=ctx.run_id))

# COMMAND ----------

# expected_value is the models' prediction; expected_value_calibrated maps it through the held-out
# calibration of predicted uplift (valid split)
decisions = ctx.store.read("decisions", run_id=ctx.run_id)
show(decisions.groupBy("bucket", "action").agg(F.count("*").alias("customers"),
                                               F.sum("expected_value").alias("expected_value"),
                                               F.sum("expected_value_calibrated").alias("expected_value_calibrated"))
     .orderBy("bucket", "action"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Does the policy beat the alternatives?
# MAGIC `evaluate-policy` re-solves the policy on the held-out `test` (and `oot`) customers and values it with
# MAGIC AIPW scores: the policy against treating nobody, random targeting with the same contacts, the best
# MAGIC single arm and response-model targeting, each as a paired difference with its CI.

# COMMAND ----------

result = evaluate_policy.run(ctx)
for split, line in result["headline"].items():
    print(line["sentence"])
evaluation = ctx.store.read("policy_evaluation", run_id=ctx.run_id)
show(evaluation.where((F.col("estimator") == "aipw") & F.col("metric").isin("gain", "difference"))
     .select("split", "policy", "baseline", "metric", "estimate", "ci_low", "ci_high", "p_value")
     .orderBy("split", "metric", "policy", "baseline"), n=40)
# predicted, calibrated and held-out value of the decisions side by side
show(ctx.store.read("decision_summary", run_id=ctx.run_id).where(F.col("kind") == "total"))

# COMMAND ----------

# multi-armed cost curves: AIPW gain over nobody per customer at each spend per customer
curves = ctx.store.read("policy_curves", run_id=ctx.run_id).toPandas()  # curves × grid points: small
show_png(plot_policy_curves(curves, "test"), f"{ctx.report_dir}/policy_curves_notebook.png")

# COMMAND ----------

print(monitor.run(ctx))
show(ctx.store.read("drift_features", run_id=ctx.run_id).orderBy(F.desc("psi")))
show(ctx.store.read("monitoring_alerts", run_id=ctx.run_id))
