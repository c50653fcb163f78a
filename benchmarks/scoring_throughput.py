"""Scoring throughput: ``UpliftModel.transform`` on Spark vs raw ``booster.predict`` on the same rows.

    python benchmarks/scoring_throughput.py --rows 1000000 [--learner t|x] [--master local[2]]
        [--train-rows 50000] [--iterations 100]

A model is fitted on a small sample (training is not what is measured), then the same ``--rows``
synthetic rows, materialized once as Parquet, are scored

* by Spark: ``spark.read.parquet → model.transform`` written to the ``noop`` sink (forces every uplift
  column; ``count()`` alone would let Spark prune the pandas UDF) and to Parquet;
* by one Python process: the Parquet file read with pyarrow, encoded with the model's encoding, every
  booster's ``predict`` with as many threads as the Spark master has cores, combined exactly as the
  Spark scorer does (the model class's ``combine``). The "raw predict" time counts ``predict`` calls only.

Run it with ``--master local[1]`` and ``local[2]`` to see the scaling of scoring with cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil

import numpy as np

from _common import Timer, lightgbm_config, print_table, spark_session, synthetic_config, write_result
from training_vs_lightgbm import encode


def master_cores(master: str) -> int:
    m = re.match(r"local\[(\d+|\*)\]", master)
    if m:
        return os.cpu_count() if m.group(1) == "*" else int(m.group(1))
    m = re.match(r"local-cluster\[(\d+),\s*(\d+),", master)
    if m:
        return int(m.group(1)) * int(m.group(2))
    return 1 if master == "local" else os.cpu_count()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--learner", default="t")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--repeat", type=int, default=2, help="timed repetitions (best is reported)")
    parser.add_argument("--workdir", default="/tmp/uplift_bench_score")
    args = parser.parse_args(argv)

    import lightgbm as lgb
    import pyarrow.parquet as pq

    from uplift_spark.config import ModelConfig
    from uplift_spark.datasets import generate_synthetic, synthetic_data_config
    from uplift_spark.learners import learner_class
    from uplift_spark.schemas import slug

    cores = master_cores(args.master)
    spark = spark_session(args.master, args.driver_memory)
    syn = synthetic_config(args.rows)
    data = synthetic_data_config(syn)
    shutil.rmtree(args.workdir, ignore_errors=True)
    src = os.path.join(args.workdir, "population")
    generate_synthetic(spark, syn).write.parquet(src)
    sample = generate_synthetic(spark, synthetic_config(args.train_rows, seed=99))
    model_cfg = ModelConfig(lightgbm=lightgbm_config(args.iterations, early_stopping_round=0))
    clock = Timer()
    model = learner_class(args.learner).from_config(data, model_cfg, outcome="conversion").fit(sample)
    print(f"fitted {args.learner}-learner ({len(model.boosters)} boosters) on {args.train_rows:,} rows in "
          f"{clock():.1f}s", flush=True)
    population = spark.read.parquet(src)
    parts = population.rdd.getNumPartitions()

    spark_noop, spark_parquet = [], []
    for i in range(args.repeat):
        clock = Timer()
        model.transform(population).write.format("noop").mode("overwrite").save()
        spark_noop.append(clock())
        out = os.path.join(args.workdir, f"scored_{i}")
        clock = Timer()
        model.transform(population).write.parquet(out)
        spark_parquet.append(clock())
    read_only = Timer()
    population.write.format("noop").mode("overwrite").save()
    read_seconds = read_only()

    # single process: the same rows and the same arithmetic, vectorized over the whole matrix
    clock = Timer()
    extra_cols = model._extra_columns(population)
    pdf = pq.read_table(src, columns=list(model.features) + extra_cols).to_pandas()
    x = encode(pdf, model.encoding)
    extra = {c: pdf[c].to_numpy(np.float64) for c in extra_cols}
    del pdf
    prep_seconds = clock()
    boosters = {k: lgb.Booster(model_str=s) for k, s in model.boosters.items()}
    raw = []
    for _ in range(args.repeat):
        clock = Timer()
        memo = {}

        def preds(key):
            if key not in memo:
                memo[key] = boosters[key].predict(x, num_threads=cores)
            return memo[key]

        uplift = model.combine(model.spec(), preds, extra, len(x))
        raw.append(clock())
    # agreement of the two paths on the first rows (a small limit, not a collect of the population)
    head = model.transform(population.limit(1000)).toPandas()
    head_x = encode(head, model.encoding)
    head_ref = model.predict_arrays(head_x) if not extra_cols else None
    max_diff = None
    if head_ref is not None:
        max_diff = float(max(np.max(np.abs(head[f"uplift_{slug(a)}"].to_numpy() - head_ref[a]))
                             for a in model.treatment_arms))

    n = args.rows
    best = {"spark_noop": min(spark_noop), "spark_parquet": min(spark_parquet), "raw_predict": min(raw)}
    rows = [
        {"path": "spark transform → noop", "seconds": best["spark_noop"], "rows_per_s": n / best["spark_noop"]},
        {"path": "spark transform → parquet", "seconds": best["spark_parquet"],
         "rows_per_s": n / best["spark_parquet"]},
        {"path": "spark read only → noop", "seconds": read_seconds, "rows_per_s": n / read_seconds},
        {"path": f"raw booster.predict ({cores} threads)", "seconds": best["raw_predict"],
         "rows_per_s": n / best["raw_predict"]},
        {"path": "raw read + encode (pyarrow/pandas)", "seconds": prep_seconds, "rows_per_s": n / prep_seconds},
    ]
    ratio = best["raw_predict"] / best["spark_noop"]
    print_table(rows, ["path", "seconds", "rows_per_s"],
                f"scoring {n:,} rows, {args.learner}-learner with {len(model.boosters)} boosters, {args.master}, "
                f"{parts} input partitions")
    print(f"\nSpark scoring throughput / raw predict throughput = {ratio:.2f} (target ≥ 0.70); "
          f"max |Spark − predict_arrays| on 1000 rows: {max_diff}")
    result = {"rows": n, "master": args.master, "cores": cores, "learner": args.learner,
              "boosters": len(model.boosters), "iterations": args.iterations, "input_partitions": parts,
              "seconds": {"spark_noop": spark_noop, "spark_parquet": spark_parquet, "raw_predict": raw,
                          "spark_read_only": read_seconds, "raw_read_encode": prep_seconds},
              "rows_per_s": {r["path"]: round(r["rows_per_s"]) for r in rows}, "throughput_ratio": round(ratio, 3),
              "max_abs_diff_1000_rows": max_diff,
              "mean_uplift": {a: float(np.mean(u)) for a, u in uplift.items()}}
    write_result(f"scoring_{n}_{args.learner}_{args.master.replace('[', '').replace(']', '').replace(',', '_')}",
                 result)
    spark.stop()
    shutil.rmtree(args.workdir, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
