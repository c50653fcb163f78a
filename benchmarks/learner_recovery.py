"""Effect recovery of the T- and X-learner on synthetic multi-arm data with known effects.

Prints, per learner and treatment arm, on the held-out test split: PEHE = sqrt(mean((τ̂ − τ)²)), the PEHE of
the best constant (the true mean effect: what an ATE-only model achieves), the Pearson correlation of τ̂
with τ, and the training seconds. Aggregates are computed in Spark (nothing row-level is collected).

    python benchmarks/learner_recovery.py --rows 200000 [--backend auto|synapseml|barrier] [--iterations 150]
"""

import argparse
import json
import os
import sys
import time


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--learners", default="t,x")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from uplift_spark.config import LightGBMConfig, ModelConfig, SparkConfig, SyntheticConfig
    from uplift_spark.datasets import generate_synthetic, synthetic_data_config
    from uplift_spark.learners import learner_class
    from uplift_spark.schemas import slug, uplift_column
    from uplift_spark.session import get_spark

    spark = get_spark(SparkConfig(master=args.master, shuffle_partitions=4, conf={"spark.ui.enabled": "false"}))
    syn = SyntheticConfig(n_rows=args.rows, seed=args.seed, partitions=4)
    data = synthetic_data_config(syn)
    df = generate_synthetic(spark, syn)
    # customer-level split from a seeded hash: 60% train, 20% valid (early stopping), 20% test
    u = (F.pmod(F.xxhash64(F.lit(args.seed), "customer_id"), F.lit(1000)) / 1000.0)
    df = df.withColumn("split", F.when(u < 0.6, "train").when(u < 0.8, "valid").otherwise("test")) \
        .withColumn("is_valid", F.col("split") == "valid").persist(StorageLevel.MEMORY_AND_DISK)
    rows = df.count()
    model_cfg = ModelConfig(backend=args.backend, lightgbm=LightGBMConfig(
        num_iterations=args.iterations, learning_rate=0.1, num_leaves=31, min_data_in_leaf=100,
        early_stopping_round=15, seed=1))
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    results = {"rows": rows, "arms": list(data.treatment_arms), "backend": args.backend, "learners": {}}
    for learner in args.learners.split(","):
        est = learner_class(learner).from_config(data, model_cfg, outcome="conversion", validation_col="is_valid")
        start = time.perf_counter()
        model = est.fit(train)
        seconds = time.perf_counter() - start
        scored = model.transform(test)
        aggs = []
        for arm in data.treatment_arms:
            est_c, true_c = F.col(uplift_column(arm)), F.col(f"true_uplift_{slug(arm)}")
            aggs += [F.sqrt(F.avg((est_c - true_c) ** 2)).alias(f"pehe_{slug(arm)}"),
                     F.stddev_pop(true_c).alias(f"const_{slug(arm)}"),
                     F.corr(est_c, true_c).alias(f"corr_{slug(arm)}"),
                     F.avg(est_c).alias(f"ate_hat_{slug(arm)}"), F.avg(true_c).alias(f"ate_{slug(arm)}")]
        agg = scored.agg(*aggs).first().asDict()
        per_arm = {arm: {k: round(float(agg[f"{k}_{slug(arm)}"]), 5) for k in ("pehe", "const", "corr", "ate_hat", "ate")}
                   for arm in data.treatment_arms}
        results["learners"][learner] = {"seconds": round(seconds, 1), "backend": model.training["backend"],
                                        "boosters": len(model.boosters), "arms": per_arm}
        print(f"{learner}-learner ({model.training['backend']}, {len(model.boosters)} boosters, {seconds:.1f}s)")
        for arm, m in per_arm.items():
            print(f"  {arm:<10} PEHE {m['pehe']:.4f} (constant {m['const']:.4f})  corr {m['corr']:.3f}  "
                  f"ATE est {m['ate_hat']:+.4f} true {m['ate']:+.4f}")
    df.unpersist()
    print("RESULT " + json.dumps(results))
    return results


if __name__ == "__main__":
    main()
