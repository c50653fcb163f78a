"""Exact distributed metrics vs scikit-uplift on Hillstrom, and bootstrap interval coverage.

    SPARK_LOCAL_IP=127.0.0.1 python benchmarks/metrics_vs_sklift.py [--hillstrom PATH] [--draws 40]

Part 1: for both e-mail arms and three score columns (random, heavily tied, a formula), prints the
largest relative difference between our Spark metrics/curves and sklift's on the same arrays.
Part 2: coverage of the Poisson-bootstrap 95% interval of the ATE and of uplift@30 computed
through the full Spark scan, over ``--draws`` simulated experiments with known population values.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hillstrom", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                            "data", "hillstrom.csv"))
    parser.add_argument("--draws", type=int, default=40)
    args = parser.parse_args()
    from uplift_spark.config import SparkConfig
    from uplift_spark.session import get_spark

    spark = get_spark(SparkConfig(master="local[2]", shuffle_partitions=4, conf={"spark.ui.enabled": "false"}))
    if os.path.isfile(args.hillstrom):
        compare_hillstrom(spark, args.hillstrom)
    if args.draws:
        coverage(spark, args.draws)


if __name__ == "__main__":
    main()
