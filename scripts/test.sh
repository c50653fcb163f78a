#!/usr/bin/env bash
# Install the project with its test extras, then run the default test suite on embedded Spark.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$(command -v python3)"
python3 -m pip install -q -e ".[test]"
# one worker per core, each with its own local Spark session; a file's tests stay on one worker (module
# fixtures are built once; the shared smoke run's tests are one file, see tests/conftest.py).
# UPLIFT_TEST_WORKERS=0 runs in this process.
workers="${UPLIFT_TEST_WORKERS:-$(python3 -c 'import os; n = os.cpu_count() or 1; print(min(2, n) if n > 1 else 0)')}"
python3 -m pytest -q -p no:cacheprovider -n "${workers}" --dist loadfile tests "$@"
