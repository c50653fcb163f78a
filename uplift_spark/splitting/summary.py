"""Per split × arm × outcome counts and rates: the record that the split is balanced."""

from __future__ import annotations

from ..config import DataConfig


def summarize_splits(df_with_split, data_cfg: DataConfig):
    """``split, arm, outcome, rows, share, outcome_mean`` — one row per split × arm × outcome.

    ``rows`` counts experiment rows, ``share`` is the arm's share of the split's rows (compare it with
    the allocation), ``outcome_mean`` the outcome's mean in that split × arm (nulls ignored). One small
    aggregate over the data; the reshaping happens on the aggregated rows only. Without configured
    outcomes the single row per split × arm has ``outcome`` and ``outcome_mean`` null.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    arm = data_cfg.arm
    outcomes = [o for o in data_cfg.outcome_names if o in df_with_split.columns]
    means = [F.avg(F.col(o).cast("double")).alias(f"_m{i}") for i, o in enumerate(outcomes)]
    agg = df_with_split.groupBy(F.col("split"), F.col(arm).cast("string").alias("arm")).agg(
        F.count(F.lit(1)).alias("rows"), *means
    )
    agg = agg.withColumn("share", F.col("rows") / F.sum("rows").over(Window.partitionBy("split")))
    if outcomes:
        pairs = F.array(*[
            F.struct(F.lit(o).alias("outcome"), F.col(f"_m{i}").alias("outcome_mean")) for i, o in enumerate(outcomes)
        ])
        agg = agg.withColumn("_o", F.explode(pairs)).select("*", "_o.outcome", "_o.outcome_mean")
    else:
        agg = agg.withColumn("outcome", F.lit(None).cast("string")).withColumn(
            "outcome_mean", F.lit(None).cast("double")
        )
    return agg.select(
        "split", "arm", "outcome", F.col("rows").cast("long").alias("rows"),
        F.col("share").cast("double").alias("share"), F.col("outcome_mean").cast("double").alias("outcome_mean"),
    )
