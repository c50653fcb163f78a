"""``uplift-spark predict``: score every experiment-log row of the run with every saved model.

Writes ``predictions`` in long format (run_id, learner, outcome, customer_id, split, arm, uplift): one row
per customer × treatment arm × model, in one Delta commit. Rows without a split (none expected) carry
split ``none`` so evaluation never silently drops them.
"""

from __future__ import annotations

from typing import Dict

from ..joins import join_customers
from ..learners import load_manifest, load_models
from ..logs import get_logger
from ..schemas import conform
from .context import RunContext, Stopwatch
from .train import data_config

log = get_logger("predict")


def long_format(scored, model, customer_col: str, learner: str, outcome: str, run_id: str):
    """One row per customer × treatment arm from the model's ``uplift_<arm>`` columns."""
    from pyspark.sql import functions as F

    pairs = F.array(*[F.struct(F.lit(arm).alias("arm"), F.col(col).cast("double").alias("uplift"))
                      for arm, col in model.uplift_columns.items()])
    return scored.select(
        F.lit(run_id).alias("run_id"), F.lit(learner).alias("learner"), F.lit(outcome).alias("outcome"),
        F.col(customer_col).cast("string").alias("customer_id"),
        F.coalesce(F.col("split"), F.lit("none")).alias("split"), F.explode(pairs).alias("p"),
    ).select("run_id", "learner", "outcome", "customer_id", "split", "p.arm", "p.uplift")


def run(ctx: RunContext, **_ignored) -> Dict[str, object]:
    from functools import reduce

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    watch = Stopwatch()
    store, run_id = ctx.store, ctx.run_id
    manifest = load_manifest(ctx.model_dir)
    log_df = store.read_run("experiment_log", run_id)
    data = data_config(ctx, log_df)
    splits = store.read_run("splits", run_id).select(F.col("customer_id").alias("__split_customer"), "split")
    base = join_customers(log_df, splits, log_df[data.customer_id] == splits["__split_customer"], "left").drop("__split_customer")
    base = base.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        parts = []
        for entry, model in load_models(ctx.model_dir):
            scored = model.transform(base)
            parts.append(long_format(scored, model, data.customer_id, entry["learner"], entry["outcome"], run_id))
        predictions = reduce(lambda a, b: a.unionByName(b), parts)
        location = store.write(conform(predictions, "predictions"), "predictions", run_id)
        rows = store.read_run("predictions", run_id).count()
    finally:
        base.unpersist()
    return {"models": len(manifest["models"]), "rows": rows, "predictions": location,
            "model_version": manifest["model_version"], "seconds": round(watch(), 1)}
