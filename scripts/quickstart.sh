#!/usr/bin/env bash
# Install the project, then run the whole pipeline end to end on embedded Spark.
# Uses the Hillstrom CSV (argument, or ../shared/data/hillstrom.csv) when present, else synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$(command -v python3)"
python3 -m pip install -q -e .
DATA="${1:-../shared/data/hillstrom.csv}"
OUT="${UPLIFT_OUTPUT:-./uplift_output}"
if [ -f "$DATA" ]; then
  echo "[quickstart] Hillstrom e-mail experiment from $DATA"
  exec uplift-spark run --conf-file conf/hillstrom.yaml --data "$DATA" --output "$OUT"
else
  echo "[quickstart] $DATA not found: running on synthetic data with known effects"
  exec uplift-spark run --conf-file conf/synthetic.yaml --output "$OUT"
fi
