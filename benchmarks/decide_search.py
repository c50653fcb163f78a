"""Decide stage: seconds, multiplier-search passes and Spark jobs of ``policy.decide`` on synthetic scores.

    python benchmarks/decide_search.py --rows 200000 [--sample-rows 50000] [--grid-points 128]

Builds one wide row per customer (``uplift_<arm>`` for email_a / email_b / discount with the shapes of
the synthetic data: small positive effects, a harmed tail, ``opted_in``) on the executors, and runs
``decide`` with the policy of ``benchmarks/end_to_end.py`` (conf/smoke.yaml: budget 0.15·rows, discount
capacity rows/10, email arms only for opted-in customers: budget and capacity both bind). Times the
search (``decide`` returns after it) and the decisions (written to the ``noop`` sink), counts the
Spark jobs of each, and checks the allocation against the limits. ``--sample-rows 0`` = the full-data
search only (the behaviour before the sample bracket).
"""

from __future__ import annotations

import argparse
import os
import time

import yaml

from _common import ROOT, print_table, write_result


def wide_scores(spark, rows: int, partitions: int, seed: int):
    from pyspark.sql import functions as F

    x0 = F.randn(seed)
    harmed = F.rand(seed + 1) < 0.1
    cols = [F.format_string("s%09d", F.col("id")).alias("customer_id"),
            (F.rand(seed + 2) < 0.6).cast("int").alias("opted_in")]
    for k, (arm, mean, sd) in enumerate((("email_a", 0.02, 0.03), ("email_b", 0.025, 0.03), ("discount", 0.06, 0.05))):
        tau = F.lit(mean) + F.lit(sd) * F.randn(seed + 10 + k) + 0.01 * x0
        cols.append(F.when(harmed, -F.abs(tau)).otherwise(tau).alias(f"uplift_{arm}"))
    return spark.range(0, rows, numPartitions=partitions).select(*cols)


def policy_config(rows: int, sample_rows: int, grid_points: int, budget_share: float = 0.15,
                  capacity_share: float = 0.1):
    from uplift_spark.config import config_from_dict

    with open(os.path.join(ROOT, "conf", "smoke.yaml"), "r", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh.read())
    pol = raw["policy"]
    pol["budget"] = budget_share * rows
    pol["arms"]["discount"]["capacity"] = max(1, int(capacity_share * rows))
    pol["grid_points"] = grid_points
    if sample_rows is not None:
        pol["search_sample_rows"] = sample_rows
    return config_from_dict({"policy": pol}).policy


def jobs_since(spark, group: str) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--sample-rows", type=int, default=None, help="policy.search_sample_rows (default: config)")
    parser.add_argument("--grid-points", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gap-tol", type=float, default=None, help="policy.dual_gap_tol (default: config)")
    parser.add_argument("--capacity-share", type=float, default=0.1,
                        help="discount capacity per customer (0.1 = end_to_end.py; 0.02 with --budget-share 0.4 binds it)")
    parser.add_argument("--budget-share", type=float, default=0.15,
                        help="budget per customer (0.15 = end_to_end.py; 0.4 makes the discount capacity bind too)")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from uplift_spark.config import PolicyConfig
    from uplift_spark.policy import decide

    spark = (SparkSession.builder.master(args.master).config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "1g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    sample_rows = getattr(PolicyConfig(), "search_sample_rows", None) if args.sample_rows is None else args.sample_rows
    cfg = policy_config(args.rows, sample_rows, args.grid_points, args.budget_share, args.capacity_share)
    if args.gap_tol is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, dual_gap_tol=args.gap_tol)
    wide = wide_scores(spark, args.rows, args.partitions, args.seed)
    wide = wide.withColumn("eligible_email_a", F.col("opted_in") == 1).withColumn("eligible_email_b", F.col("opted_in") == 1)
    wide = wide.withColumn("eligible_discount", F.lit(True)).persist()
    wide.count()

    spark.sparkContext.setJobGroup("search", "decide: multiplier search")
    t0 = time.perf_counter()
    decisions, summary = decide(wide, cfg, ["email_a", "email_b", "discount"])
    search_s = time.perf_counter() - t0
    search_jobs = jobs_since(spark, "search")
    spark.sparkContext.setJobGroup("final", "decide: decisions")
    t0 = time.perf_counter()
    decisions.write.format("noop").mode("overwrite").save()
    final_s = time.perf_counter() - t0
    final_jobs = jobs_since(spark, "final")
    check = decisions.where("bucket != 'holdout'").groupBy("action").count().collect()
    used = {r["action"]: r["count"] for r in check}
    costs = {a: cfg.arms[a].cost for a in cfg.arms}
    spend = sum(used.get(a, 0) * c for a, c in costs.items())
    row = {"rows": args.rows, "budget_share": args.budget_share, "sample_rows": sample_rows,
           "gap_tol": getattr(cfg, "dual_gap_tol", None), "grid_points": args.grid_points,
           "search_s": round(search_s, 1), "decisions_s": round(final_s, 1), "passes": summary.passes,
           "sample_passes": getattr(summary, "sample_passes", None), "search_jobs": search_jobs, "decision_jobs": final_jobs,
           "value": round(summary.total("expected_value", "policy"), 2), "dual_gap": getattr(summary, "dual_gap", None),
           "spend": spend, "budget": cfg.budget, "discount": used.get("discount", 0),
           "capacity": cfg.arms["discount"].capacity, "multipliers": summary.multipliers}
    print_table([row], ["rows", "budget_share", "sample_rows", "gap_tol", "grid_points", "search_s", "decisions_s", "passes", "sample_passes",
                        "search_jobs", "decision_jobs", "value", "dual_gap", "spend", "budget", "discount", "capacity"],
                f"decide, {args.rows:,} rows, {args.master}, load {open('/proc/loadavg').read().split()[0]}")
    print("multipliers", summary.multipliers)
    assert spend <= cfg.budget + 1e-6 and used.get("discount", 0) <= cfg.arms["discount"].capacity
    write_result(f"decide_search_{args.rows}_{sample_rows}_{args.budget_share}_{args.capacity_share}_{row['gap_tol']}", row)
    spark.stop()
    return row


if __name__ == "__main__":
    main()
