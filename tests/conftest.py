"""Shared fixtures: one real local Spark session (Delta + SynapseML) for the whole test run."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HILLSTROM_CSV = os.path.join(ROOT, "..", "shared", "data", "hillstrom.csv")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


# Test-session engine settings. The suite's cost is per Spark job and per Delta commit, not per row, so
# these cut the tasks each job and each table read runs; none changes a result:
# - two shuffle partitions, one per core of local[2] (tests that need several partitions repartition
#   explicitly); default parallelism stays 4, above local[2]'s slots, which
#   test_learners.test_auto_task_count_never_exceeds_local_slots relies on;
# - one partition for Delta's log replay (default 50: fifty tasks to rebuild a tiny table's snapshot on
#   every read after a commit).
TEST_SHUFFLE_PARTITIONS = 2
TEST_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.default.parallelism": "4",
    "spark.databricks.delta.snapshotPartitions": "1",
}


@pytest.fixture(scope="session")
def spark():
    from uplift_spark.config import SparkConfig
    from uplift_spark.session import get_spark

    cfg = SparkConfig(master="local[2]", shuffle_partitions=TEST_SHUFFLE_PARTITIONS, driver_memory="3g",
                      conf=TEST_SPARK_CONF)
    session = get_spark(cfg)
    _SESSION.append(session)
    yield session
    _ENGINE_COUNTS["spark_jobs"] = _jobs_started(session)
    session.stop()


# Spark jobs the session ran: a load-independent measure of the suite's cost (its wall time on a shared
# 2-core machine is not), printed after the test summary.
_ENGINE_COUNTS = {}


def _jobs_started(session) -> int:
    # every job, whatever its job group (the status tracker keeps only recent jobs of no group)
    return int(session.sparkContext._jsc.sc().dagScheduler().numTotalJobs())


def pytest_sessionfinish(session):
    # under pytest-xdist each worker has its own Spark session: hand its count to the controller
    if _ENGINE_COUNTS and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["spark_jobs"] = _ENGINE_COUNTS["spark_jobs"]
        session.config.workeroutput["jobs_per_test"] = dict(_JOBS_PER_TEST)


def pytest_testnodedown(node, error):
    out = getattr(node, "workeroutput", {})
    if out.get("spark_jobs") is not None:
        _ENGINE_COUNTS.setdefault("workers", []).append(out["spark_jobs"])
    _JOBS_PER_TEST.update(out.get("jobs_per_test") or {})


_JOBS_PER_TEST = {}


_SESSION = []  # the test session's SparkSession, once a test asked for it


def _active_jobs():
    # the fixture's session, not SparkSession.getActiveSession(): a test may leave no active session
    # in this thread, which would read as zero jobs
    if not _SESSION:
        return 0
    if "spark_jobs" in _ENGINE_COUNTS:  # the session fixture was torn down (its count was kept)
        return _ENGINE_COUNTS["spark_jobs"]
    return _jobs_started(_SESSION[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Spark jobs each test started, its fixtures' set-up included (``UPLIFT_TEST_JOBS=1``: the summary
    lists the heaviest tests; jobs, unlike seconds, do not depend on the machine's load)."""
    before = _active_jobs()
    yield
    _JOBS_PER_TEST[item.nodeid] = _active_jobs() - before


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("UPLIFT_TEST_JOBS"):
        for nodeid, jobs in sorted(_JOBS_PER_TEST.items(), key=lambda kv: -kv[1])[:40]:
            terminalreporter.write_line(f"{jobs:6d} jobs  {nodeid}")
    if "workers" in _ENGINE_COUNTS:
        per = _ENGINE_COUNTS["workers"]
        terminalreporter.write_line(f"spark sessions: {sum(per)} Spark jobs in {len(per)} workers "
                                    f"({' + '.join(map(str, per))})")
    elif "spark_jobs" in _ENGINE_COUNTS:
        terminalreporter.write_line(f"spark session: {_ENGINE_COUNTS['spark_jobs']} Spark jobs")


@pytest.fixture(scope="session")
def hillstrom_path():
    if not os.path.isfile(HILLSTROM_CSV):
        pytest.skip(f"Hillstrom data not found at {HILLSTROM_CSV}")
    return os.path.abspath(HILLSTROM_CSV)


# --- One smoke pipeline run for the whole test session -------------------------------------------------
# `smoke_run` runs `uplift-spark run` once on conf/smoke.yaml (8,000 rows, every stage) with test-sized
# boosting and bootstrap settings, then reruns SMOKE_RERUN_STAGES with the same run id. Any test that
# needs the tables, models or report of a full run asks for `smoke_run` instead of running stages itself:
#     def test_x(spark, smoke_run): store = TableStore(spark, load_config(smoke_run.conf, output_root=smoke_run.out))
# Treat its output as read-only (write elsewhere, e.g. tmp_path); `first`/`second` are the per-table row
# counts of the run id after the first run (read with delta-rs) and after the rerun (read with Spark).
# Its tests live in tests/test_pipeline_e2e.py only: `scripts/test.sh` runs pytest-xdist with
# `--dist loadfile`, one file per worker, so a second file asking for it would run the whole pipeline
# again on the other worker.
SMOKE_RUN_ID = "e2e-run"
# Sizes that make the run fast without changing what it exercises (every stage, every table, both learners).
SMOKE_TEST_OVERRIDES = {
    ("model", "lightgbm", "num_iterations"): 15,
    ("model", "lightgbm", "early_stopping_round"): 5,
    ("evaluation", "bootstrap_replicates"): 5,
    ("evaluation", "curve_points"): 21,
    # one held-out split for evaluate-policy (the same loop runs per split; test/oot both are covered by
    # the slow tests/test_policy_evaluation_pipeline.py): its ~70 Spark jobs per split, run twice here
    ("policy_evaluation", "splits"): ["test"],
}


# The rerun: the stages whose same-run-id rerun no other default test asserts, and those that interact
# across a rerun (decide reads the contact_history that publish wrote; publish must then change nothing).
# The others' reruns are asserted where they are tested: ingest (test_ingest), split (test_splitting),
# train and predict (test_learners_pipeline), evaluate (test_evaluation_pipeline), monitor
# (test_monitoring_pipeline); report writes files, not tables.
SMOKE_RERUN_STAGES = ("validate", "score", "decide", "publish", "evaluate-policy")


class SmokeRun:
    def __init__(self, conf, out, run_id, first, second):
        self.conf, self.out, self.run_id, self.first, self.second = conf, out, run_id, first, second


def smoke_test_conf(folder):
    """conf/smoke.yaml with SMOKE_TEST_OVERRIDES applied, written to ``folder``; returns its path."""
    import yaml

    with open(os.path.join(ROOT, "conf", "smoke.yaml"), encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    for keys, value in SMOKE_TEST_OVERRIDES.items():
        node = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path = os.path.join(str(folder), "smoke_test.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    return path


@pytest.fixture(scope="session")
def smoke_run(spark, tmp_path_factory):
    from uplift_spark.cli import main
    from uplift_spark.config import load_config
    from uplift_spark.io import TABLES, TableStore
    from uplift_spark.pipelines.run import STAGE_ORDER

    folder = tmp_path_factory.mktemp("smoke_run")
    conf = smoke_test_conf(folder)
    out = str(folder / "out")

    store = TableStore(spark, load_config(conf, output_root=out))

    def spark_counts():
        return {name: store.read(name, run_id=SMOKE_RUN_ID).count() for name in TABLES if store.exists(name)}

    def delta_rs_counts():
        # what a CRM reading with delta-rs sees, without a Spark job per table
        import pyarrow.dataset as ds
        from deltalake import DeltaTable

        return {name: DeltaTable(store.location(name)).to_pyarrow_dataset().count_rows(
                    filter=ds.field("run_id") == SMOKE_RUN_ID) for name in TABLES if store.exists(name)}

    assert main(["run", "--conf-file", conf, "--output", out, "--run-id", SMOKE_RUN_ID]) == 0
    first = delta_rs_counts()
    rerun = ",".join(s for s in STAGE_ORDER if s in SMOKE_RERUN_STAGES)
    assert main(["run", "--conf-file", conf, "--output", out, "--run-id", SMOKE_RUN_ID, "--stages", rerun]) == 0
    return SmokeRun(conf, out, SMOKE_RUN_ID, first, spark_counts())
