"""Run in a subprocess by tests/test_learners_cluster.py: a small fit on ``local-cluster[2,1,1024]``
(barrier and SynapseML data-parallel; X-learner per task and auto).

Prints one JSON line: executors seen, the barrier trainer's task count, scoring result and what
happened with SynapseML on the same cluster (it may fail there: microsoft/SynapseML#2467).
"""

import json
import os
import sys
import time

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
    model = TLearner(backend="barrier", distribution="distributed", **common).fit(df)
    scored = model.transform(df).select("uplift_email_a", "true_uplift_email_a").toPandas()
    out["barrier"] = {
        "rows_scored": int(len(scored)),
        "corr": float(scored.corr().iloc[0, 1]),
        "boosters": sorted(model.boosters),
    }
    # per_task: each booster in one task on an executor (both arms side by side), then scored there
    for name in ("per_task", "auto"):
        fitted = XLearner(backend="barrier", distribution=name, **common).fit(df)
        s1 = fitted.transform(df).select("uplift_email_a", "true_uplift_email_a").toPandas()
        out[name] = {"rows_scored": int(len(s1)), "corr": float(s1.corr().iloc[0, 1]),
                     "boosters": sorted(fitted.boosters),
                     "strategies": sorted({b["strategy"] for b in fitted.training["boosters"].values()}),
                     "per_task_max_bytes": default_per_task_max_bytes(spark)}
    try:
        syn = TLearner(backend="synapseml", distribution="distributed", **common).fit(df)
        s2 = syn.transform(df).select("uplift_email_a", "true_uplift_email_a").toPandas()
        out["synapseml"] = {"ok": True, "corr": float(s2.corr().iloc[0, 1])}
    except Exception as exc:  # report the exact failure, do not hide it
        out["synapseml"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
    print("RESULT " + json.dumps(out))
    spark.stop()


if __name__ == "__main__":
    main()
