"""Exact distributed metrics vs scikit-uplift on Hillstrom, and bootstrap interval coverage.

    SPARK_LOCAL_IP=127.0.0.1 python benchmarks/metrics_vs_sklift.py [--hillstrom PATH] [--draws 40]
    python benchmarks/metrics_vs_sklift.py --rows 1000000 --draws 0 --no-hillstrom   # part 3 only

Part 1: for both e-mail arms and three score columns (random, heavily tied, a formula), prints the
largest relative difference between our Spark metrics/curves and sklift's on the same arrays.
Part 2: coverage of the Poisson-bootstrap 95% interval of the ATE and of uplift@30 computed
through the full Spark scan, over ``--draws`` simulated experiments with known population values.
Part 3 (``--rows N``): speed on a scored table of N rows (control + 3 arms, one score per arm): the
exact Qini/uplift AUC of all arms in one scan (``evaluate_slices``, no bootstrap) vs one full-scan
Spark aggregation ``groupBy(arm).agg(sum(outcome))``, and vs ``sklift.metrics`` on the same arrays
in one process (time and peak memory); ``--per-arm`` also times one scan per arm.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def compare_hillstrom(spark, path: str) -> None:
    import sklift.metrics as sk
    from pyspark.sql import functions as F

    from uplift_spark.config import EvaluationConfig
    from uplift_spark.evaluation import evaluate_uplift

    pdf = pd.read_csv(path)
    pdf["customer_id"] = ["h%06d" % i for i in range(len(pdf))]
    rng = np.random.default_rng(0)
    pdf["s_random"] = rng.normal(size=len(pdf))
    pdf["s_ties"] = np.round(pdf["s_random"] * 2) / 2
    pdf["s_formula"] = 0.002 * pdf["history"] - 0.01 * pdf["recency"] + 0.05 * pdf["womens"]
    sdf = spark.createDataFrame(pdf[["customer_id", "segment", "visit", "s_random", "s_ties", "s_formula"]]).cache()
    cfg = EvaluationConfig(bootstrap_replicates=0, curve_points=10 ** 6, top_k_percents=(10.0, 30.0))
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        sub = pdf[pdf.segment.isin([arm, "No E-Mail"])].sort_values("customer_id")
        y, t = sub.visit.to_numpy(), (sub.segment == arm).astype(int).to_numpy()
        part = sdf.where(F.col("segment").isin(arm, "No E-Mail")).withColumn(
            "t", (F.col("segment") == arm).cast("int"))
        for score in ("s_random", "s_ties", "s_formula"):
            u = sub[score].to_numpy()
            start = time.perf_counter()
            res = evaluate_uplift(part, score, "t", "visit", cfg)
            secs = time.perf_counter() - start
            got = {m.metric: m.value for m in res.metrics}
            ref = {"qini_auc": sk.qini_auc_score(y, u, t), "uplift_auc": sk.uplift_auc_score(y, u, t),
                   "uplift_at_10": sk.uplift_at_k(y, u, t, "overall", 0.1),
                   "uplift_at_30": sk.uplift_at_k(y, u, t, "overall", 0.3)}
            x_q, q = sk.qini_curve(y, u, t)
            worst = max(_rel(got[k], v) for k, v in ref.items())
            curve = _rel(res.curve["qini"].to_numpy()[1:], q[1:])
            print(f"{arm:14s} {score:9s} points={len(x_q):6d} max rel diff metrics={worst:.2e} "
                  f"qini curve={curve:.2e} ({secs:.1f}s)")


def coverage(spark, draws: int, n: int = 4000, replicates: int = 100) -> None:
    from uplift_spark.config import EvaluationConfig
    from uplift_spark.evaluation import evaluate_uplift

    rng = np.random.default_rng(2024)
    # population: effect 0.1 on the top half of the score, 0 below; base rate 0.2
    true_ate = 0.05
    true_at30 = 0.1
    hits = {"ate": 0, "uplift_at_30": 0}
    cfg = EvaluationConfig(bootstrap_replicates=replicates, curve_points=3, top_k_percents=(30.0,),
                           bootstrap_seed=17)
    for d in range(draws):
        x = rng.random(n)
        t = rng.integers(0, 2, n)
        y = (rng.random(n) < 0.2 + 0.1 * (x > 0.5) * t).astype(int)
        pdf = pd.DataFrame({"customer_id": [f"d{d}_{i}" for i in range(n)], "t": t, "y": y, "score": x})
        res = evaluate_uplift(spark.createDataFrame(pdf), "score", "t", "y", cfg)
        for name, truth in (("ate", true_ate), ("uplift_at_30", true_at30)):
            row = res.metric(name)
            hits[name] += row.ci_low <= truth <= row.ci_high
    for name, h in hits.items():
        print(f"coverage of the 95% Poisson-bootstrap interval of {name}: {h}/{draws} = {h / draws:.2f}")


def speed(spark, rows: int, workdir: str = "/tmp/uplift_bench_metrics", repeat: int = 2, per_arm: bool = False,
          n_segments=None) -> dict:
    """Part 3: the price of the exact distributed scan, relative to sklift and to one Spark scan.

    The exact figure is ONE call that evaluates all 3 arms (each arm vs control is one slice of the
    same scan: what the evaluate stage does), compared with one ``groupBy(arm).agg(sum)`` over the
    same table. sklift gets each arm's arrays already in memory (its time excludes reading them) and
    its peak memory is measured with tracemalloc (NumPy allocations are traced).
    """
    import shutil
    import tracemalloc

    import pyarrow.parquet as pq
    import sklift.metrics as sk
    from pyspark.sql import functions as F

    from _common import write_result
    from uplift_spark.config import EvaluationConfig
    from uplift_spark.evaluation import evaluate_slices, evaluate_uplift

    arms = ["email_a", "email_b", "discount"]
    shutil.rmtree(workdir, ignore_errors=True)
    src = os.path.join(workdir, "scored")
    # a scored table built on the executors: arm by hash, one score per arm, outcome depends on the score
    u = F.pmod(F.xxhash64(F.col("id"), F.lit(5)), F.lit(4))
    df = spark.range(0, rows, 1, numPartitions=max(2, rows // 500_000)).select(
        F.format_string("s%09d", F.col("id")).alias("customer_id"),
        F.element_at(F.array(*[F.lit(a) for a in ["control"] + arms]), (u + 1).cast("int")).alias("arm"),
        *[F.rand(seed=10 + i).alias(f"uplift_{a}") for i, a in enumerate(arms)],
        F.rand(seed=99).alias("_r"))
    p = F.lit(0.10)
    for a in arms:
        p = p + F.when(F.col("arm") == a, 0.08 * F.col(f"uplift_{a}") - 0.02).otherwise(0.0)
    df.withColumn("conversion", (F.col("_r") < p).cast("int")).drop("_r").write.parquet(src)
    table = spark.read.parquet(src)
    cfg = EvaluationConfig(bootstrap_replicates=0, curve_points=101, top_k_percents=(10.0, 30.0))

    def best(fn):
        times, out = [], None
        for _ in range(repeat):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return min(times), out

    agg_s, _ = best(lambda: table.groupBy("arm").agg(F.sum("conversion")).collect())
    # every arm vs control as a slice of one scan: control rows appear once per arm
    stacked = (table.select("customer_id", "arm", "conversion", F.explode(F.array(*[
        F.struct(F.lit(i).alias("sl"), F.lit(a).alias("slice_arm"), F.col(f"uplift_{a}").alias("score"))
        for i, a in enumerate(arms)])).alias("x"))
        .where((F.col("arm") == F.col("x.slice_arm")) | (F.col("arm") == "control"))
        .select("customer_id", "conversion", F.col("x.sl").alias("sl"), F.col("x.score").alias("score"),
                (F.col("arm") == F.col("x.slice_arm")).cast("int").alias("t")))
    all_s, res_all = best(lambda: evaluate_slices(stacked, "sl", "score", "t", "conversion", cfg,
                                                  n_segments=n_segments))
    pdf = pq.read_table(src).to_pandas().sort_values("customer_id", kind="mergesort")
    results = {"rows": rows, "full_scan_agg_seconds": round(agg_s, 3), "all_arms_exact_seconds": round(all_s, 3),
               "ratio_all_arms_to_full_scan": round(all_s / agg_s, 2), "arms": {}}
    for i, a in enumerate(arms):
        sub = pdf[pdf.arm.isin([a, "control"])]
        y, t, s = sub.conversion.to_numpy(), (sub.arm == a).astype(int).to_numpy(), sub[f"uplift_{a}"].to_numpy()
        tracemalloc.start()
        sk_s, ref = best(lambda: (sk.qini_auc_score(y, s, t), sk.uplift_auc_score(y, s, t)))
        sk_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        got = (res_all[i].metric("qini_auc").value, res_all[i].metric("uplift_auc").value)
        entry = {"rows": int(len(sub)), "sklift_seconds": round(sk_s, 3), "sklift_peak_mb": round(sk_peak, 1),
                 "max_rel_diff": _rel(got, ref)}
        if per_arm:
            part = table.where(F.col("arm").isin(a, "control")).withColumn("t", (F.col("arm") == a).cast("int"))
            one_s, _ = best(lambda: evaluate_uplift(part, f"uplift_{a}", "t", "conversion", cfg,
                                                    n_segments=n_segments))
            entry["one_arm_exact_seconds"] = round(one_s, 3)
            entry["one_arm_ratio_to_full_scan"] = round(one_s / agg_s, 2)
        results["arms"][a] = entry
    del pdf
    print(f"\nmetric speed on {rows:,} scored rows (one full-scan groupBy(arm).agg(sum) = {agg_s:.2f}s)")
    print(f"all 3 arms exact in one scan: {all_s:.2f}s = {all_s / agg_s:.1f}x one full-scan aggregation")
    print(f"{'arm':10s} {'rows':>10s} {'sklift s':>9s} {'sklift MB':>10s} {'one-arm scan s':>15s} {'max rel diff':>12s}")
    for a, r in results["arms"].items():
        print(f"{a:10s} {r['rows']:10d} {r['sklift_seconds']:9.2f} {r['sklift_peak_mb']:10.1f} "
              f"{r.get('one_arm_exact_seconds', float('nan')):15.2f} {r['max_rel_diff']:12.2e}")
    write_result(f"metrics_speed_{rows}", results)
    shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hillstrom", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                            "data", "hillstrom.csv"))
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--rows", type=int, default=0, help="part 3: speed on this many scored rows (0 = skip)")
    parser.add_argument("--no-hillstrom", action="store_true", help="skip part 1")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--segments", type=int, default=None, help="exact-scan segments (default: shuffle partitions)")
    parser.add_argument("--per-arm", action="store_true", help="part 3: also time one scan per arm")
    args = parser.parse_args()
    from uplift_spark.config import SparkConfig
    from uplift_spark.session import get_spark

    spark = get_spark(SparkConfig(master=args.master, shuffle_partitions=4, driver_memory=args.driver_memory,
                                  conf={"spark.ui.enabled": "false"}))
    if args.rows:
        speed(spark, args.rows, per_arm=args.per_arm, n_segments=args.segments)
    if os.path.isfile(args.hillstrom) and not args.no_hillstrom:
        compare_hillstrom(spark, args.hillstrom)
    if args.draws:
        coverage(spark, args.draws)


if __name__ == "__main__":
    main()
