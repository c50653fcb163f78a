"""Session set-up: what the engine can do (Delta, SynapseML), backend choice, Spark conf and submit args."""

from uplift_spark.config import SparkConfig
from uplift_spark.session import engine_status, session_conf
from uplift_spark.versions import DELTA_JAR, SYNAPSEML_LIGHTGBM_JAR


def test_engine_has_delta_and_synapseml(spark):
    status = engine_status(spark)
    assert status["spark"].startswith("3.5")
    assert status["delta"] is True
    assert status["synapseml_lightgbm"] is True


def test_synapseml_available_needs_the_python_package_and_the_jvm_classes(spark, monkeypatch):
    import importlib.util

    from uplift_spark import session

    assert session.synapseml_available(spark) is True
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("synapse") else real(name, *a))
    assert session.synapseml_available(spark) is False          # wrapper missing: classes alone are not enough
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setattr(session, "_LIGHTGBM_CLASS", "com.example.NoSuchBooster")
    assert session.synapseml_available(spark) is False          # JAR missing


def test_backend_choice_follows_what_the_session_can_do(spark, monkeypatch):
    import pytest

    from uplift_spark import session
    from uplift_spark.errors import ModelError
    from uplift_spark.learners.trainers import resolve_backend

    assert resolve_backend(spark, "auto") == "synapseml" and resolve_backend(spark, "barrier") == "barrier"
    monkeypatch.setattr(session, "synapseml_available", lambda _spark: False)
    assert resolve_backend(spark, "auto") == "barrier"
    with pytest.raises(ModelError, match="SynapseML LightGBM is not on this session's classpath"):
        resolve_backend(spark, "synapseml")
    with pytest.raises(ModelError, match="unknown backend 'gpu'"):
        resolve_backend(spark, "gpu")


def test_session_conf_for_local_cluster_and_submit_args():
    from uplift_spark.session import _ships_package, submit_args

    conf = session_conf(SparkConfig(master="local-cluster[2, 3, 1024]", jars="provided"))
    assert conf["spark.executor.cores"] == "3" and conf["spark.driver.host"] == "127.0.0.1"
    assert "spark.executor.cores" not in session_conf(SparkConfig(master="local[2]", jars="provided"))
    assert [_ships_package(m) for m in ("local", "local[4]", "local-cluster[2,1,1024]", "yarn")] == \
        [False, False, True, True]
    args = submit_args(SparkConfig(jars="packages"))
    assert args[args.index("--packages") + 1] == f"{DELTA_JAR},{SYNAPSEML_LIGHTGBM_JAR}"
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in args


def test_jar_modes():
    packages = session_conf(SparkConfig(jars="packages"))
    assert packages["spark.jars.packages"] == f"{DELTA_JAR},{SYNAPSEML_LIGHTGBM_JAR}"
    provided = session_conf(SparkConfig(jars="provided"))
    assert "spark.jars.packages" not in provided and "spark.jars" not in provided
    assert provided["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
