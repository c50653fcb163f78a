"""Run in a subprocess by tests/test_executor_faults.py: on ``local-cluster[2,1,1024]``, SIGKILL one
executor JVM of this application while a stage runs (barrier train, SynapseML train, predict write),
then rerun the same step without a fault.

Prints one ``RESULT`` JSON line per scenario: outcome (``ok`` through Spark's retry, or ``error`` with
its first line, or ``hung`` past the bounded time-out), seconds, whether the kill happened, rows in
the run's table after the fault (all or none, never partial) and the outcome of the rerun.
Only executor processes of this application (matched by its app id) are killed, by pid.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STEP_TIMEOUT = float(os.environ.get("FAULT_STEP_TIMEOUT", "600"))


def executor_pids(app_id):
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()[1:]
            if "CoarseGrainedExecutorBackend" in line and app_id in line]


def kill_one_executor_when_busy(spark, delay, record):
    """Wait until a stage has running tasks, then ``delay`` seconds, then SIGKILL one executor."""
    tracker = spark.sparkContext.statusTracker()
    app_id = spark.sparkContext.applicationId
    deadline = time.time() + STEP_TIMEOUT
    while time.time() < deadline and not record.get("done"):
        busy = [s for s in (tracker.getStageInfo(i) for i in tracker.getActiveStageIds()) if s and s.numActiveTasks > 0]
        if busy:
            time.sleep(delay)
            pids = executor_pids(app_id)
            if pids and not record.get("done"):
                os.kill(pids[0], signal.SIGKILL)
                record["killed_at"] = round(time.time() - record["start"], 1)
                record["stage"] = busy[0].name[:80]
            return
        time.sleep(0.2)


def bounded(spark, fn, kill_delay=None):
    """Run ``fn`` with an optional executor kill; cancel the jobs if it outlives STEP_TIMEOUT."""
    record = {"start": time.time()}
    result = {}

    def target():
        try:
            result["value"] = fn()
            result["outcome"] = "ok"
        except Exception as exc:
            result["outcome"] = "error"
            java = getattr(exc, "java_exception", None)
            result["error"] = f"{type(exc).__name__}: " + (str(java) if java is not None else str(exc)).strip().splitlines()[0][:300]

    worker = threading.Thread(target=target, daemon=True)
    killer = None
    if kill_delay is not None:
        killer = threading.Thread(target=kill_one_executor_when_busy, args=(spark, kill_delay, record), daemon=True)
        killer.start()
    worker.start()
    worker.join(STEP_TIMEOUT)
    record["done"] = True
    if worker.is_alive():
        spark.sparkContext.cancelAllJobs()
        worker.join(60)
        result["outcome"] = "hung"
    out = {"outcome": result.get("outcome"), "seconds": round(time.time() - record["start"], 1),
           "killed": "killed_at" in record, "killed_at": record.get("killed_at"), "stage": record.get("stage")}
    if "error" in result:
        out["error"] = result["error"]
    return out, result.get("value")


def wait_for_executors(spark, n=2, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 >= n:
            return True
        time.sleep(1)
    return False


def main() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession, functions as F

    from learner_data import make_rct
    from uplift_spark.config import LightGBMConfig, RunConfig, SparkConfig, UpliftConfig
    from uplift_spark.io import TableStore
    from uplift_spark.learners import TLearner
    from uplift_spark.session import session_conf

    scenarios = sys.argv[2].split(",") if len(sys.argv) > 2 else ["barrier", "synapseml", "predict"]
    out_root = sys.argv[1]
    master = "local-cluster[2,1,1024]"
    builder = SparkSession.builder.master(master)
    conf = session_conf(SparkConfig(master=master, shuffle_partitions=2))
    conf.update({"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                 "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": "1g",
                 "spark.default.parallelism": "2", "spark.task.maxFailures": "4"})
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    wait_for_executors(spark)
    pdf = make_rct(n=3000, seed=2)
    df = spark.createDataFrame(pdf).withColumn("is_valid", F.col("split") == "valid").repartition(2).cache()
    df.count()
    lgb_cfg = LightGBMConfig(num_iterations=60, learning_rate=0.1, num_leaves=8, min_data_in_leaf=30,
                             early_stopping_round=0, num_tasks=2, seed=3, timeout_seconds=300.0)
    common = dict(outcomeCol="conversion", treatmentArms=["email_a"], featureCols=["x0", "x1", "x2", "c0"],
                  categoricalCols=["c0"], validationCol="is_valid", lightgbm=lgb_cfg,
                  distribution="distributed")  # the scenarios are about the data-parallel trainers
    store = TableStore(spark, UpliftConfig(run=RunConfig(output_root=out_root)))
    model = None
    for name in scenarios:
        res = {"scenario": name}
        if name in ("barrier", "synapseml"):
            fit = lambda: TLearner(backend=name, **common).fit(df)  # noqa: E731
            res["fault"], fitted = bounded(spark, fit, kill_delay=1.0)
            wait_for_executors(spark)
            res["rerun"], fitted2 = bounded(spark, fit)
            model = model or fitted2 or fitted
        else:
            if model is None:
                model = TLearner(backend="barrier", **common).fit(df)
            big = df.crossJoin(spark.range(20).withColumnRenamed("id", "copy")).repartition(4)
            expected = 3000 * 20

            def predict():
                scored = model.transform(big).select(F.lit("fault-run").alias("run_id"), "customer_id", "copy",
                                                     F.col("uplift_email_a").alias("uplift"))
                store.write(scored, "predictions_fault", "fault-run")
                return True

            def rows():
                if not store.exists("predictions_fault"):
                    return 0
                return store.read("predictions_fault", run_id="fault-run").count()

            res["fault"], _ = bounded(spark, predict, kill_delay=0.5)
            res["fault"]["rows_after"] = rows()
            wait_for_executors(spark)
            res["rerun"], _ = bounded(spark, predict)
            res["rerun"]["rows_after"] = rows()
            res["expected_rows"] = expected
        print("RESULT " + json.dumps(res), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
