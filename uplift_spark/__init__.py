"""uplift_spark: uplift modeling for multi-arm marketing experiments on Spark.

Layers (imports point down only): ``jobs`` → ``pipelines`` → modules (io, datasets, validation,
splitting, learners, evaluation, report, policy, monitoring) → core (errors, config, session, schemas).
"""

__version__ = "0.1.0"
