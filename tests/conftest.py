"""Shared fixtures: one real local Spark session (Delta + SynapseML) for the whole test run."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HILLSTROM_CSV = os.path.join(ROOT, "..", "shared", "data", "hillstrom.csv")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from uplift_spark.config import SparkConfig
    from uplift_spark.session import get_spark

    cfg = SparkConfig(
        master="local[2]",
        shuffle_partitions=4,
        driver_memory="3g",
        conf={"spark.ui.enabled": "false", "spark.sql.adaptive.enabled": "true",
              "spark.default.parallelism": "4"},
    )
    session = get_spark(cfg)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def hillstrom_path():
    if not os.path.isfile(HILLSTROM_CSV):
        pytest.skip(f"Hillstrom data not found at {HILLSTROM_CSV}")
    return os.path.abspath(HILLSTROM_CSV)
