#!/usr/bin/env bash
# A real Spark standalone cluster on this machine (master + 2 workers on 127.0.0.1), started with the
# launcher that ships inside the pyspark wheel, then the whole pipeline under spark-submit against it.
#
#   scripts/standalone_cluster.sh run [CONF] [OUTPUT]   start, submit jobs/run_pipeline.py, stop
#   scripts/standalone_cluster.sh start | stop
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(command -v python3)"
export SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
STATE="${UPLIFT_CLUSTER_DIR:-/tmp/uplift_spark_cluster}"
export SPARK_LOG_DIR="$STATE/logs" SPARK_PID_DIR="$STATE/pids" SPARK_WORKER_DIR="$STATE/work"
PORT="${UPLIFT_MASTER_PORT:-7177}"
MASTER="spark://127.0.0.1:$PORT"
DAEMON="$SPARK_HOME/sbin/spark-daemon.sh"

start() {
  mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$SPARK_WORKER_DIR"
  "$DAEMON" start org.apache.spark.deploy.master.Master 1 --host 127.0.0.1 --port "$PORT" --webui-port 0
  for i in 1 2; do
    "$DAEMON" start org.apache.spark.deploy.worker.Worker "$i" --host 127.0.0.1 --cores 1 --memory 2g \
      --webui-port 0 "$MASTER"
  done
  for _ in $(seq 1 60); do   # wait until both workers registered
    if [ "$(cat "$SPARK_LOG_DIR"/*Master*.out 2>/dev/null | grep -c 'Registering worker')" -ge 2 ]; then
      echo "cluster up: $MASTER (2 workers)"; return 0
    fi
    sleep 1
  done
  echo "workers did not register; see $SPARK_LOG_DIR" >&2; return 1
}

stop() {
  for i in 1 2; do "$DAEMON" stop org.apache.spark.deploy.worker.Worker "$i" || true; done
  "$DAEMON" stop org.apache.spark.deploy.master.Master 1 || true
}

case "${1:-run}" in
  start) start ;;
  stop) stop ;;
  run)
    CONF="${2:-conf/smoke.yaml}"
    OUT="${3:-$STATE/output}"
    start
    trap stop EXIT
    # shellcheck disable=SC2046
    "$SPARK_HOME/bin/spark-submit" --master "$MASTER" --total-executor-cores 2 --executor-cores 1 \
      --executor-memory 1g --driver-memory 2g $(uplift-spark submit-args --conf-file "$CONF") \
      jobs/run_pipeline.py --conf-file "$CONF" --output "$OUT"
    ;;
  *) echo "usage: $0 run [CONF] [OUTPUT] | start | stop" >&2; exit 2 ;;
esac
