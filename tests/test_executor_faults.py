"""Executor loss on ``local-cluster[2,1,1024]``: one executor JVM is SIGKILLed while a barrier or
SynapseML training stage or a predictions write runs. The step either completes through Spark's retry
or fails with an error, within a bounded time; a predictions table holds all of the run's rows or none;
a rerun completes. In a subprocess because a second SparkContext cannot live in the test process."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
STEP_TIMEOUT = 420  # seconds per step; past it the job is cancelled and reported as hung


def _run(tmp_path, scenario):
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, FAULT_STEP_TIMEOUT=str(STEP_TIMEOUT))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "executor_fault_job.py"), str(tmp_path / "out"), scenario],
                          capture_output=True, text=True, env=env, timeout=4 * STEP_TIMEOUT + 300)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(result, indent=1))
    return result


def _check(result):
    fault, rerun = result["fault"], result["rerun"]
    assert fault["killed"], "no executor was killed: the stage finished before the fault"
    assert fault["outcome"] in ("ok", "error"), fault  # never hung past the time-out
    if fault["outcome"] == "error":
        assert fault["error"], fault
    assert rerun["outcome"] == "ok", rerun


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["barrier", "synapseml"])
def test_train_survives_or_fails_cleanly_when_an_executor_dies(tmp_path, trainer):
    _check(_run(tmp_path, trainer))


@pytest.mark.slow
def test_predict_write_is_all_or_nothing_when_an_executor_dies(tmp_path):
    result = _run(tmp_path, "predict")
    _check(result)
    assert result["fault"]["rows_after"] in (0, result["expected_rows"]), result  # never partial
    if result["fault"]["outcome"] == "ok":
        assert result["fault"]["rows_after"] == result["expected_rows"]
    assert result["rerun"]["rows_after"] == result["expected_rows"]
