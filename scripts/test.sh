#!/usr/bin/env bash
# Install the project with its test extras, then run the default test suite on embedded Spark.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$(command -v python3)"
python3 -m pip install -q -e ".[test]"
python3 -m pytest -q -p no:cacheprovider tests "$@"
