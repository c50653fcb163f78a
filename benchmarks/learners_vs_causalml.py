"""Learner table on synthetic data with known effects: every learner (t, x, s, r, dr) on Spark, next to
causalml's BaseSRegressor / BaseRRegressor / BaseDRLearner with LightGBM on the same rows.

Per learner and treatment arm, on the held-out test split: training seconds, PEHE = sqrt(mean((τ̂ − τ)²)),
the PEHE of the best constant (the true mean effect), and corr(τ̂, τ).

    # project env: Spark learners; --keep leaves the rows (Parquet, with split and fold) for causalml
    python benchmarks/learners_vs_causalml.py --rows 1000000 --keep --workdir /tmp/uplift_bench_learners
    # causalml needs numpy 2 (the project pins numpy < 2): its own virtualenv, nothing from uplift_spark
    python -m venv /tmp/cml && /tmp/cml/bin/pip install --only-binary=:all: causalml lightgbm pyarrow pandas
    /tmp/cml/bin/python benchmarks/learners_vs_causalml.py --causalml --workdir /tmp/uplift_bench_learners

Both sides use the same LightGBM settings (``lgb_settings``); the Spark learners early-stop on the
``valid`` rows and cross-fit on the split's 5 folds, causalml fits ``train`` with a fixed number of
trees (it has no validation set) and its own internal cross-fitting (R, DR). Propensities: the design
p_k / (p_k + p_0) from the logged ``propensity_<arm>`` columns on both sides. Results go to
``benchmarks/results/learners_vs_causalml_<rows>[_causalml].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LEARNERS = ("t", "x", "s", "r", "dr")
CAUSALML = {"s": "BaseSRegressor", "r": "BaseRRegressor", "dr": "BaseDRLearner"}


def lgb_settings(iterations: int) -> dict:
    return {"num_iterations": iterations, "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 100, "seed": 1}


def _write(result: dict, suffix: str = "") -> str:
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"learners_vs_causalml_{result['rows']}{suffix}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"results written to {path}")
    return path


def spark_side(args) -> dict:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.path.insert(0, os.path.dirname(HERE))
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
    # customer-level split and folds from seeded hashes: 60% train (5 folds), 20% valid, 20% test
    u = F.pmod(F.xxhash64(F.lit(args.seed), "customer_id"), F.lit(1000)) / 1000.0
    df = (df.withColumn("split", F.when(u < 0.6, "train").when(u < 0.8, "valid").otherwise("test"))
          .withColumn("is_valid", F.col("split") == "valid")
          .withColumn("fold", F.when(F.col("split") == "train", F.floor(u / 0.6 * 5).cast("int")).otherwise(-1))
          .persist(StorageLevel.MEMORY_AND_DISK))
    rows = df.count()
    if args.keep:
        df.write.mode("overwrite").parquet(os.path.join(args.workdir, "log"))
    model_cfg = ModelConfig(backend=args.backend, lightgbm=LightGBMConfig(
        early_stopping_round=15, **lgb_settings(args.iterations)))
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    results = {"rows": rows, "arms": list(data.treatment_arms), "backend": args.backend, "learners": {}}
    for learner in args.learners.split(","):
        est = learner_class(learner).from_config(data, model_cfg, outcome="conversion", validation_col="is_valid",
                                                 fold_col="fold", min_rows_per_arm=20)
        start = time.perf_counter()
        model = est.fit(train)
        seconds = time.perf_counter() - start
        aggs = []
        for arm in data.treatment_arms:
            est_c, true_c = F.col(uplift_column(arm)), F.col(f"true_uplift_{slug(arm)}")
            aggs += [F.sqrt(F.avg((est_c - true_c) ** 2)).alias(f"pehe_{slug(arm)}"),
                     F.stddev_pop(true_c).alias(f"const_{slug(arm)}"), F.corr(est_c, true_c).alias(f"corr_{slug(arm)}")]
        agg = model.transform(test).agg(*aggs).first().asDict()
        per_arm = {arm: {k: round(float(agg[f"{k}_{slug(arm)}"]), 5) for k in ("pehe", "const", "corr")}
                   for arm in data.treatment_arms}
        results["learners"][learner] = {"seconds": round(seconds, 1), "backend": model.training["backend"],
                                        "boosters": len(model.boosters), "arms": per_arm}
        _print(f"spark {learner}", seconds, per_arm)
    df.unpersist()
    _write(results)
    return results


def _print(name: str, seconds: float, per_arm: dict) -> None:
    print(f"{name}-learner: {seconds:.1f}s", flush=True)
    for arm, m in per_arm.items():
        print(f"  {arm:<10} PEHE {m['pehe']:.4f} (constant {m['const']:.4f})  corr {m['corr']:.3f}", flush=True)


def causalml_side(args) -> dict:
    """Runs in causalml's own virtualenv: numpy / pandas / causalml / lightgbm only."""
    from importlib.metadata import version

    import numpy as np
    import pandas as pd
    from causalml.inference.meta import BaseDRLearner, BaseRRegressor, BaseSRegressor
    from lightgbm import LGBMRegressor

    pdf = pd.read_parquet(os.path.join(args.workdir, "log"))
    arms = sorted(a[len("true_uplift_"):] for a in pdf.columns if a.startswith("true_uplift_"))
    control = "control"
    pdf = pdf[pdf.arm.isin([control, *arms])]
    train = pdf[pdf.split == "train"].reset_index(drop=True)
    test = pdf[pdf.split == "test"].reset_index(drop=True)
    names = sorted((c for c in pdf.columns if c[:1] in "xc" and c[1:].isdigit()), key=lambda c: (c[0] == "c", int(c[1:])))

    def features(frame):
        return np.column_stack([frame[c].astype(np.float64).to_numpy() if pd.api.types.is_numeric_dtype(frame[c])
                                else frame[c].astype("category").cat.codes.astype(np.float64).to_numpy() for c in names])

    def prop(frame):
        p0 = frame[f"propensity_{control}"].to_numpy(np.float64)
        return {a: frame[f"propensity_{a}"].to_numpy(np.float64) / (frame[f"propensity_{a}"].to_numpy(np.float64) + p0)
                for a in arms}

    s = lgb_settings(args.iterations)
    threads = args.threads

    def reg():
        return LGBMRegressor(n_estimators=s["num_iterations"], learning_rate=s["learning_rate"],
                             num_leaves=s["num_leaves"], min_child_samples=s["min_data_in_leaf"],
                             random_state=s["seed"], n_jobs=threads, verbose=-1)

    result = {"rows": int(len(pdf)), "train_rows": int(len(train)), "test_rows": int(len(test)), "threads": threads,
              "causalml": version("causalml"), "lightgbm": version("lightgbm"), "learners": {}}
    x_train, x_test = features(train), features(test)
    for name in args.learners.split(","):
        if name not in CAUSALML:
            continue
        model = {"s": lambda: BaseSRegressor(learner=reg(), control_name=control),
                 "r": lambda: BaseRRegressor(learner=reg(), control_name=control, random_state=1),
                 "dr": lambda: BaseDRLearner(learner=reg(), control_name=control)}[name]()
        start = time.perf_counter()
        kw = {} if name == "s" else {"p": prop(train)}
        model.fit(x_train, treatment=train.arm.to_numpy(), y=train.conversion.to_numpy(np.float64), **kw)
        tau = model.predict(x_test)
        seconds = time.perf_counter() - start
        groups = list(model.t_groups)
        per_arm = {}
        for a in arms:
            est, true = tau[:, groups.index(a)], test[f"true_uplift_{a}"].to_numpy()
            per_arm[a] = {"pehe": round(float(np.sqrt(np.mean((est - true) ** 2))), 5),
                          "const": round(float(np.std(true)), 5), "corr": round(float(np.corrcoef(est, true)[0, 1]), 5)}
        result["learners"][name] = {"class": CAUSALML[name], "seconds": round(seconds, 1), "arms": per_arm}
        _print(f"causalml {name}", seconds, per_arm)
    _write(result, "_causalml")
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="write the rows (Parquet) for the causalml side")
    parser.add_argument("--workdir", default="/tmp/uplift_bench_learners")
    parser.add_argument("--causalml", action="store_true", help="run causalml on the kept rows (own venv)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    return causalml_side(args) if args.causalml else spark_side(args)


if __name__ == "__main__":
    main()
