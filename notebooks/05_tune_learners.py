# Databricks notebook source
# MAGIC %md
# MAGIC # 5 · Tune a learner's LightGBM settings
# MAGIC `TrainValidationSplit` over a grid of LightGBM settings, scored by `UpliftEvaluator`: the exact
# MAGIC Qini AUC of one treatment arm (the number the evaluate stage writes), larger is better.
# MAGIC Tuning uses the `train` rows only; the best model is then checked once on `valid`.
# MAGIC A `CrossValidator` takes the same estimator, grid and evaluator (`foldCol` for your own folds).

# COMMAND ----------

from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
from pyspark.sql import functions as F

from uplift_spark.evaluation import UpliftEvaluator
from uplift_spark.learners import learner_class
from uplift_spark.learners.tuning import lightgbm_grid
from uplift_spark.notebook import notebook_context
from uplift_spark.pipelines.train import data_config, training_frame, treatment_arms

ctx = notebook_context(globals().get("dbutils"))
log_df = ctx.store.read_run("experiment_log", ctx.run_id)
data = data_config(ctx, log_df)
arms = treatment_arms(log_df, data)
# the evaluator's metrics are defined for binary outcomes: the primary one if binary, else the first binary
binary = [o.name for o in data.outcomes if o.type == "binary"]
outcome = data.main_outcome if data.main_outcome in binary else binary[0]
rows = training_frame(ctx, data, log_df)
train, valid = rows.where(F.col("split") == "train"), rows.where(F.col("split") == "valid")

# COMMAND ----------

learner = learner_class(ctx.cfg.model.learners[0]).from_config(data, ctx.cfg.model, outcome=outcome,
                                                                treatment_arms=arms)
points = lightgbm_grid(learner, num_leaves=[7, 15], learning_rate=[0.1])
grid = ParamGridBuilder().addGrid(learner.lightgbmParams, points).build()
evaluator = UpliftEvaluator(metricName="qini_auc", arm=arms[0], armCol=data.arm, controlArm=data.control_arm,
                            outcomeCol=outcome, idCol=data.customer_id)
tvs = TrainValidationSplit(estimator=learner, estimatorParamMaps=grid, evaluator=evaluator,
                           trainRatio=0.75, seed=ctx.cfg.split.seed)
tuned = tvs.fit(train)

# COMMAND ----------

for point, qini in zip(points, tuned.validationMetrics):
    print(f"{point[:60]}...  Qini AUC ({arms[0]}) = {qini:.4f}")
best = tuned.bestModel
print("held-out valid Qini AUC of the best point:", round(evaluator.evaluate(best.transform(valid)), 4))
