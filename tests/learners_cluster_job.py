"""Run in a subprocess by tests/test_learners_cluster.py: a small fit on ``argv[1]`` (a master URL):
barrier and SynapseML data-parallel, and an X-learner per task and auto.

Prints one JSON line and writes the scores (``scores_barrier.npy``, ``scores_synapseml.npy``, rows in
customer order) to ``argv[2]``, so the test can compare a ``local-cluster[2,1,1024]`` run with a
``local[2]`` one. Also records which executors ran work, and saves the barrier model to a ``file://``
URI and to a plain path, reloads both, scores again and tampers with a booster file. SynapseML may fail
on local-cluster (microsoft/SynapseML#2467); its error is recorded, not hidden.
"""

import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession, functions as F

    from learner_data import make_rct
    from uplift_spark.config import LightGBMConfig, SparkConfig
    from uplift_spark.learners import TLearner, XLearner
    from uplift_spark.learners.per_task_trainer import default_per_task_max_bytes
    from uplift_spark.session import session_conf

    master = sys.argv[1] if len(sys.argv) > 1 else "local-cluster[2,1,1024]"
    builder = SparkSession.builder.master(master)
    conf = session_conf(SparkConfig(master=master, shuffle_partitions=2))
    conf.update({"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                 "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": "1g",
                 "spark.default.parallelism": "2"})
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    deadline = time.time() + 240
    while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 < 2 and time.time() < deadline:
        time.sleep(1)
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    out = {"master": master, "executors": executors}
    pdf = make_rct(n=3000, seed=2)
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2)
    lgb_cfg = LightGBMConfig(num_iterations=30, learning_rate=0.1, num_leaves=8, min_data_in_leaf=30,
                             early_stopping_round=5, num_tasks=2, seed=3, timeout_seconds=300.0)
    common = dict(outcomeCol="conversion", treatmentArms=["email_a"], featureCols=["x0", "x1", "x2", "c0"],
                  categoricalCols=["c0"], validationCol="is_valid", lightgbm=lgb_cfg)
    outdir = sys.argv[2]

    def scores(m):
        pdf_s = m.transform(df).select("customer_id", "uplift_email_a", "true_uplift_email_a").toPandas()
        return pdf_s.sort_values("customer_id").reset_index(drop=True)

    model = TLearner(backend="barrier", distribution="distributed", **common).fit(df)
    scored = scores(model)
    np.save(os.path.join(outdir, "scores_barrier.npy"), scored["uplift_email_a"].to_numpy())
    # the parent of a Python worker is its executor's daemon: one pid per executor that ran a partition
    daemons = model.transform(df).rdd.mapPartitions(lambda it: [(os.getppid(), sum(1 for _ in it))]).collect()
    out["barrier"] = {
        "rows_scored": int(len(scored)),
        "corr": float(np.corrcoef(scored["uplift_email_a"], scored["true_uplift_email_a"])[0, 1]),
        "boosters": sorted(model.boosters),
        "training_tasks": model.training.get("tasks"),
        "scoring_daemons": len({pid for pid, n in daemons if n > 0}),
    }
    # per_task: each booster in one task on an executor (both arms side by side), then scored there
    for name in ("per_task", "auto"):
        fitted = XLearner(backend="barrier", distribution=name, **common).fit(df)
        s1 = scores(fitted)
        out[name] = {"rows_scored": int(len(s1)),
                     "corr": float(np.corrcoef(s1["uplift_email_a"], s1["true_uplift_email_a"])[0, 1]),
                     "boosters": sorted(fitted.boosters),
                     "strategies": sorted({b["strategy"] for b in fitted.training["boosters"].values()}),
                     "per_task_max_bytes": default_per_task_max_bytes(spark)}
    out["persistence"] = persistence_checks(model, scores, scored, outdir)
    try:
        syn = TLearner(backend="synapseml", distribution="distributed", **common).fit(df)
        s2 = scores(syn)
        np.save(os.path.join(outdir, "scores_synapseml.npy"), s2["uplift_email_a"].to_numpy())
        out["synapseml"] = {"ok": True, "corr": float(np.corrcoef(s2["uplift_email_a"], s2["true_uplift_email_a"])[0, 1]),
                            "backend": syn.training.get("backend")}
    except Exception as exc:  # report the exact failure, do not hide it
        out["synapseml"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
    print("RESULT " + json.dumps(out))
    spark.stop()


def persistence_checks(model, scores, scored, outdir):
    """Save to a file:// URI and to a plain path, reload, score; then tamper with one booster file."""
    from uplift_spark.errors import ModelError
    from uplift_spark.learners import TLearnerModel, UpliftModel

    res = {}
    plain = os.path.join(outdir, "model_plain")
    uri = "file://" + os.path.join(outdir, "model_uri")
    model.write().overwrite().save(plain)
    model.write().overwrite().save(uri)
    for name, path in (("plain", plain), ("file_uri", uri)):
        again = scores(TLearnerModel.load(path) if name == "plain" else UpliftModel.load(path))
        res[f"max_abs_diff_{name}"] = float(np.max(np.abs(again["uplift_email_a"].to_numpy()
                                                           - scored["uplift_email_a"].to_numpy())))
    victim = sorted(f for f in os.listdir(plain) if f.endswith(".txt"))[0]
    tampered = os.path.join(outdir, "model_tampered")
    shutil.copytree(plain, tampered)
    with open(os.path.join(tampered, victim), "a", encoding="utf-8") as fh:
        fh.write("\n# tampered\n")
    try:
        TLearnerModel.load(tampered)
        res["tampered"] = "loaded"
    except ModelError as exc:
        res["tampered"] = str(exc)
    res["tampered_file"] = victim
    return res


if __name__ == "__main__":
    main()
