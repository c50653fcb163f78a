"""Spark T/X learners vs the same learners on PyPI ``lightgbm`` in one process: wall time and Qini AUC.

    python benchmarks/training_vs_lightgbm.py --rows 1000000 [--iterations 100] [--master local[2]]
        [--backend auto] [--distribution auto[,distributed]] [--threads 2] [--warmup] [--lgb-threads N]

Both sides see the same rows (the synthetic log is written once to Parquet, then read by Spark and by
pyarrow), the same 60/20/20 customer split (valid = early stopping), the same feature encoding (the
Spark model's frequency-ranked category codes) and the same LightGBM parameters
(``uplift_spark.learners.lightgbm_params``). The single-process reference is written here directly
with ``lightgbm.train``: T: μ_a per arm, τ_k = μ_k − μ_0. X: stage-2 regressions on imputed effects,
τ_k = e·τ0_k + (1 − e)·τ1_k with e = p_k / (p_k + p_0) from the logged propensities. Quality: Qini AUC
(``sklift.metrics.qini_auc_score``) per treatment arm on the test split, arm vs control rows. The
reference uses ``--threads`` threads (default: all cores), Spark one LightGBM thread per task.
Besides wall time it prints the Spark jobs of each fit and CPU seconds (this process + the local
JVM + Python workers): on a shared machine wall time mostly measures the others' load.
``--distribution`` (``model.distribution``; comma-separated: each is fitted in the same run, side by
side with the one reference) chooses per-task boosters, data-parallel ones, or ``auto`` by size.
"""

from __future__ import annotations

import argparse
import os
import shutil

import numpy as np
import pandas as pd

from _common import Timer, hash_split, lightgbm_config, print_table, spark_session, synthetic_config, write_result


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its children (the local Spark JVM, Python workers):
    the work done, which the load of other processes on the machine inflates far less than wall time."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def encode(pdf: pd.DataFrame, encoding) -> np.ndarray:
    """The Spark model's encoding in pandas: numeric → float (NaN missing), category → its code."""
    cols = []
    for f in encoding.features:
        if f in encoding.categorical:
            codes = {v: float(i) for i, v in enumerate(encoding.categories.get(f, []))}
            cols.append(pdf[f].astype("string").map(codes).astype("float64").to_numpy())
        else:
            cols.append(pd.to_numeric(pdf[f], errors="coerce").astype("float64").to_numpy())
    return np.column_stack(cols)


def fit_one(params, rounds, early, x, y, xv, yv, cat_idx, names):
    import lightgbm as lgb

    dtrain = lgb.Dataset(x, y, feature_name=names, categorical_feature=cat_idx or "auto", free_raw_data=True)
    dvalid = lgb.Dataset(xv, yv, reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(early, first_metric_only=True, verbose=False)])
    return booster


def reference_learners(train: pd.DataFrame, valid: pd.DataFrame, test_x: np.ndarray, test_prop: dict,
                       encoding, lgb_cfg, control: str, arms, threads: int) -> dict:
    """Single-process T- and X-learner with PyPI lightgbm; returns seconds and test uplift per arm."""
    from uplift_spark.learners import lightgbm_params

    names = encoding.booster_names
    cat_idx = encoding.categorical_indexes
    out = {}
    clf = dict(lightgbm_params(lgb_cfg, "binary"), num_threads=threads, first_metric_only=True)
    reg = dict(lightgbm_params(lgb_cfg, "regression"), num_threads=threads, first_metric_only=True)
    rounds, early = lgb_cfg.num_iterations, lgb_cfg.early_stopping_round
    xtr = {a: encode(train[train.arm == a], encoding) for a in [control, *arms]}
    ytr = {a: train.loc[train.arm == a, "conversion"].to_numpy(np.float64) for a in [control, *arms]}
    xva = {a: encode(valid[valid.arm == a], encoding) for a in [control, *arms]}
    yva = {a: valid.loc[valid.arm == a, "conversion"].to_numpy(np.float64) for a in [control, *arms]}

    clock, cpu = Timer(), cpu_seconds()
    mu = {a: fit_one(clf, rounds, early, xtr[a], ytr[a], xva[a], yva[a], cat_idx, names) for a in [control, *arms]}
    t_seconds, t_cpu = clock(), cpu_seconds() - cpu
    mu0_test = mu[control].predict(test_x, num_threads=threads)
    out["t"] = {"seconds": t_seconds, "cpu_seconds": t_cpu,
                "uplift": {a: mu[a].predict(test_x, num_threads=threads) - mu0_test for a in arms}}

    clock, cpu = Timer(), cpu_seconds()
    mu = {a: fit_one(clf, rounds, early, xtr[a], ytr[a], xva[a], yva[a], cat_idx, names) for a in [control, *arms]}
    uplift = {}
    for a in arms:
        d1 = ytr[a] - mu[control].predict(xtr[a], num_threads=threads)
        d1v = yva[a] - mu[control].predict(xva[a], num_threads=threads)
        tau1 = fit_one(reg, rounds, early, xtr[a], d1, xva[a], d1v, cat_idx, names)
        d0 = mu[a].predict(xtr[control], num_threads=threads) - ytr[control]
        d0v = mu[a].predict(xva[control], num_threads=threads) - yva[control]
        tau0 = fit_one(reg, rounds, early, xtr[control], d0, xva[control], d0v, cat_idx, names)
        e = np.clip(test_prop[a] / (test_prop[a] + test_prop[control]), 0.01, 0.99)
        uplift[a] = e * tau0.predict(test_x, num_threads=threads) + (1 - e) * tau1.predict(test_x, num_threads=threads)
    out["x"] = {"seconds": clock(), "cpu_seconds": cpu_seconds() - cpu, "uplift": uplift}
    return out


def qini_per_arm(test: pd.DataFrame, uplift: dict, control: str) -> dict:
    from sklift.metrics import qini_auc_score

    res = {}
    for arm, u in uplift.items():
        mask = test.arm.isin([arm, control]).to_numpy()
        res[arm] = float(qini_auc_score(test.conversion.to_numpy()[mask], np.asarray(u)[mask],
                                        (test.arm.to_numpy()[mask] == arm).astype(int)))
    return res


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--distribution", default="auto",
                        help="model.distribution: auto, distributed, per_task; comma-separated to compare in one run")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--learners", default="t,x")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default="/tmp/uplift_bench_train")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--keep", action="store_true",
                        help="keep --workdir (its log/ Parquet feeds causalml_reference.py)")
    parser.add_argument("--warmup", action="store_true",
                        help="fit a T-learner on 5,000 rows first, so JVM/JIT/native-library start-up is not "
                             "charged to the first timed learner")
    parser.add_argument("--lgb-threads", type=int, default=None,
                        help="model.lightgbm.num_threads for SynapseML (default: the config default)")
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq

    from uplift_spark.config import ModelConfig
    from uplift_spark.datasets import generate_synthetic, synthetic_data_config
    from uplift_spark.learners import learner_class
    from uplift_spark.schemas import slug, uplift_column

    spark = spark_session(args.master, args.driver_memory)
    syn = synthetic_config(args.rows, seed=args.seed)
    data = synthetic_data_config(syn)
    control, arms = data.control_arm, list(data.treatment_arms)
    lgb_cfg = lightgbm_config(args.iterations, **({} if args.lgb_threads is None else
                                                   {"num_threads": args.lgb_threads}))
    shutil.rmtree(args.workdir, ignore_errors=True)
    src = os.path.join(args.workdir, "log")
    clock = Timer()
    hash_split(generate_synthetic(spark, syn), args.seed).write.parquet(src)
    print(f"generated {args.rows:,} rows in {clock():.1f}s", flush=True)
    df = spark.read.parquet(src)
    train, test = df.where("split != 'test'"), df.where("split = 'test'")
    distributions = [d.strip() for d in args.distribution.split(",") if d.strip()]
    model_cfg = ModelConfig(backend=args.backend, lightgbm=lgb_cfg, distribution=distributions[0])
    results = {"rows": args.rows, "master": args.master, "backend": args.backend, "threads": args.threads,
               "distribution": distributions, "iterations": args.iterations, "learners": {}}
    spark_models = {}
    if args.warmup:
        clock = Timer()
        learner_class("t").from_config(data, model_cfg, outcome="conversion", validation_col="is_valid").fit(
            train.limit(5000))
        print(f"warm-up fit (5,000 rows): {clock():.1f}s", flush=True)
    results["warmup"] = bool(args.warmup)
    import dataclasses

    fits = [(learner, dist) for learner in args.learners.split(",") for dist in distributions]
    for learner, dist in fits:
        name = learner if len(distributions) == 1 else f"{learner}:{dist}"
        est = learner_class(learner).from_config(data, dataclasses.replace(model_cfg, distribution=dist),
                                                 outcome="conversion", validation_col="is_valid")
        sc = spark.sparkContext
        group = f"bench_fit_{learner}_{dist}"
        sc.setJobGroup(group, f"{learner}-learner fit")
        clock, cpu = Timer(), cpu_seconds()
        model = est.fit(train)
        seconds, cpu = clock(), cpu_seconds() - cpu
        sc.setLocalProperty("spark.jobGroup.id", None)
        jobs = sc.statusTracker().getJobIdsForGroup(group)
        stages = sum(len(sc.statusTracker().getJobInfo(j).stageIds) for j in jobs
                     if sc.statusTracker().getJobInfo(j) is not None)
        spark_models[name] = model
        out = os.path.join(args.workdir, f"scored_{name.replace(':', '_')}")
        model.transform(test).select("customer_id", *[uplift_column(a) for a in arms]).write.parquet(out)
        strategies = sorted({b["strategy"] for b in model.training.get("boosters", {}).values()})
        results["learners"][name] = {"learner": learner, "distribution": dist, "strategies": strategies,
                                        "spark_seconds": seconds, "spark_backend": model.training["backend"],
                                        "spark_jobs": len(jobs), "spark_stages": stages, "spark_cpu_seconds": cpu,
                                        "load_1min": os.getloadavg()[0]}
        print(f"spark {learner}-learner ({dist}: {model.training['backend']}): {seconds:.1f}s, {cpu:.1f} CPU s, "
              f"{len(jobs)} Spark jobs ({stages} stages incl. skipped)", flush=True)

    cols = ["customer_id", "arm", "conversion", "split", *data.features,
            *[f"propensity_{slug(a)}" for a in [control, *arms]]]
    pdf = pq.read_table(src, columns=cols).to_pandas()
    test_pdf = pdf[pdf.split == "test"].sort_values("customer_id").reset_index(drop=True)
    encoding = next(iter(spark_models.values())).encoding
    if not args.skip_reference:
        test_x = encode(test_pdf, encoding)
        test_prop = {a: test_pdf[f"propensity_{slug(a)}"].to_numpy(np.float64) for a in [control, *arms]}
        ref = reference_learners(pdf[pdf.split == "train"], pdf[pdf.split == "valid"], test_x, test_prop, encoding,
                                 lgb_cfg, control, arms, args.threads)
    rows = []
    for name, info in results["learners"].items():
        learner = info["learner"]
        scored = pq.read_table(os.path.join(args.workdir, f"scored_{name.replace(':', '_')}")).to_pandas()
        scored = test_pdf[["customer_id"]].merge(scored, on="customer_id", how="left")
        spark_q = qini_per_arm(test_pdf, {a: scored[uplift_column(a)].to_numpy() for a in arms}, control)
        info["spark_qini"] = spark_q
        if not args.skip_reference:
            info["reference_seconds"] = ref[learner]["seconds"]
            info["reference_cpu_seconds"] = ref[learner]["cpu_seconds"]
            info["cpu_ratio"] = round(info["spark_cpu_seconds"] / max(ref[learner]["cpu_seconds"], 1e-9), 2)
            info["reference_qini"] = qini_per_arm(test_pdf, ref[learner]["uplift"], control)
            info["time_ratio"] = round(info["spark_seconds"] / max(ref[learner]["seconds"], 1e-9), 2)
        for a in arms:
            rows.append({"learner": name, "arm": a, "spark_s": info["spark_seconds"], "jobs": info["spark_jobs"],
                         "spark_cpu": info["spark_cpu_seconds"], "lightgbm_cpu": info.get("reference_cpu_seconds"),
                         "cpu_ratio": info.get("cpu_ratio"),
                         "lightgbm_s": info.get("reference_seconds"), "ratio": info.get("time_ratio"),
                         "qini_spark": round(spark_q[a], 5),
                         "qini_lightgbm": round(info["reference_qini"][a], 5) if "reference_qini" in info else None})
    # noise scale: the test-set Qini AUC's bootstrap standard deviation for the T-learner, per arm
    t_fit = next((n for n, i in results["learners"].items() if i["learner"] == "t"), None)
    if t_fit is not None:
        rng = np.random.default_rng(0)
        scored = pq.read_table(os.path.join(args.workdir, f"scored_{t_fit.replace(':', '_')}")).to_pandas()
        scored = test_pdf[["customer_id"]].merge(scored, on="customer_id", how="left")
        noise = {}
        for a in arms:
            sub = test_pdf.arm.isin([a, control]).to_numpy()
            y = test_pdf.conversion.to_numpy()[sub]
            t = (test_pdf.arm.to_numpy()[sub] == a).astype(int)
            u = scored[uplift_column(a)].to_numpy()[sub]
            from sklift.metrics import qini_auc_score

            draws = []
            for _ in range(20):
                idx = rng.integers(0, len(y), len(y))
                draws.append(qini_auc_score(y[idx], u[idx], t[idx]))
            noise[a] = round(float(np.std(draws)), 5)
        results["qini_bootstrap_sd_t"] = noise
    print_table(rows, ["learner", "arm", "spark_s", "jobs", "lightgbm_s", "ratio", "spark_cpu", "lightgbm_cpu",
                       "cpu_ratio", "qini_spark", "qini_lightgbm"],
                f"training, {args.rows:,} rows ({args.master}, {args.threads} reference threads)")
    if "qini_bootstrap_sd_t" in results:
        print(f"test-set Qini AUC bootstrap sd (T, Spark): {results['qini_bootstrap_sd_t']}")
    write_result(f"training_vs_lightgbm_{args.rows}" + ("_barrier" if args.backend == "barrier" else "")
                 + ("" if distributions == ["auto"] else "_" + "_".join(distributions)), results)
    spark.stop()
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
