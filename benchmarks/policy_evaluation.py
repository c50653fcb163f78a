"""Held-out policy evaluation at scale: seconds of the score-moments pass and the exact cost-curve
thresholds vs one full-scan aggregation of the same table.

    python benchmarks/policy_evaluation.py --rows 10000000 [--arms 3] [--points 21] [--partitions 16]

Builds the per-customer frame ``evaluate-policy`` scores (actual arm, outcome, design propensities,
outcome models μ_k, two deterministic policies, two curves' predicted rewards, tie hash) with Spark SQL
on the executors, writes it to Parquet once, then times on the written table:
(1) one full-scan aggregation (Σ y, Σ y², count per arm) — the floor any estimate must pay;
(2) ``score_moments`` for the policies (AIPW/IPW/SNIPW columns, paired-difference cross sums);
(3) the cost curves: hull segments, range-partitioned sort, thresholds, and the moments with curve points.
Nothing row-level reaches the driver; the result JSON goes to benchmarks/results/policy_evaluation.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import print_table, write_result


def frame(spark, rows: int, k: int, partitions: int, seed: int):
    from pyspark.sql import functions as F

    x = F.randn(seed)
    w = (F.rand(seed + 1) * (k + 1)).cast("int")
    cols = [F.format_string("s%010d", F.col("id")).alias("customer_id"), w.alias("w"), x.alias("x")]
    cols += [F.lit(1.0 / (k + 1)).alias(f"e_{i}") for i in range(k + 1)]
    df = spark.range(0, rows, numPartitions=partitions).select(*cols)
    df = df.select("*", *[(F.lit(0.1) + F.lit(0.02 * i) * F.tanh(F.col("x") + i)).alias(f"mu_{i}") for i in range(k + 1)])
    df = df.withColumn("y", (F.rand(seed + 2) < F.col("mu_0") + F.when(F.col("w") > 0, 0.03).otherwise(0.0))
                       .cast("double"))
    df = df.select("*", *[((F.abs(F.hash("customer_id", F.lit(p))) % (k + 1))).cast("int").alias(f"act_{p}")
                          for p in range(2)])
    df = df.select("*", *[(F.col(f"mu_{kk}") - F.col("mu_0") + F.lit(0.01 * c) * F.randn(seed + 10 + c * k + kk))
                          .alias(f"r_{c}_{kk}") for c in range(2) for kk in range(1, k + 1)])
    return df.withColumn("tie", F.xxhash64("customer_id"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--arms", type=int, default=3)
    ap.add_argument("--points", type=int, default=21)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from uplift_spark.config import SparkConfig
    from uplift_spark.evaluation import cost_curves as cc
    from uplift_spark.evaluation.policy_scan import ScoreSpec, curve_thresholds, score_moments, segments
    from uplift_spark.session import get_spark

    spark = get_spark(SparkConfig(master="local[2]", shuffle_partitions=args.partitions,
                                  conf={"spark.ui.enabled": "false"}))
    k = args.arms
    costs = tuple(0.1 * (i + 1) for i in range(k))
    benefits = (10.0,) * k
    path = os.path.join(tempfile.mkdtemp(prefix="pe_bench_"), "frame.parquet")
    frame(spark, args.rows, k, args.partitions, args.seed).write.mode("overwrite").parquet(path)
    data = spark.read.parquet(path)
    timings = {}

    t = time.perf_counter()
    data.groupBy("w").agg(F.sum("y"), F.sum(F.col("y") * F.col("y")), F.count(F.lit(1))).collect()
    timings["full_scan_aggregation"] = time.perf_counter() - t

    t = time.perf_counter()
    mom = score_moments(data, ScoreSpec(k, benefits, costs, ("p0", "p1")))
    timings["policy_moments"] = time.perf_counter() - t

    t = time.perf_counter()
    n = args.rows
    segs = segments(data, 2, k, costs)
    full = {int(r["curve"]): float(r["s"]) for r in segs.groupBy("curve").agg(F.sum("dcost").alias("s")).collect()}
    grid = cc.spend_grid(max(full.values()) / n, args.points)
    ths = curve_thresholds(segs, {c: [b * n for b in grid] for c in range(2)}, args.partitions)
    timings["curve_thresholds"] = time.perf_counter() - t
    t = time.perf_counter()
    spec = ScoreSpec(k, benefits, costs, ("p0", "p1"), ("c0", "c1"), tuple(tuple(ths[c]) for c in range(2)))
    mom = score_moments(data, spec)
    timings["moments_with_curves"] = time.perf_counter() - t
    load = os.getloadavg()  # the machine may be shared: ratios to the full scan are the comparable figure
    base = timings["full_scan_aggregation"]
    rows = [{"step": s, "seconds": round(v, 2), "x_full_scan": round(v / base, 1)} for s, v in timings.items()]
    print_table(rows, ["step", "seconds", "x_full_scan"])
    print(f"load average (1/5/15 min) at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")
    write_result("policy_evaluation", {"rows": n, "load_average": list(load), "cores": os.cpu_count(), "arms": k, "points": args.points, "partitions": args.partitions,
                                       "score_columns": len(spec.layout()), "units": mom.units, "timings": timings})
    spark.stop()


if __name__ == "__main__":
    main()
