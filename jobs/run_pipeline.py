"""spark-submit entry point for the whole pipeline: ``spark-submit $(uplift-spark submit-args)
jobs/run_pipeline.py --conf-file conf/hillstrom.yaml``. No logic here: see uplift_spark.cli."""
import sys

from uplift_spark.cli import main

sys.exit(main(["run"] + sys.argv[1:]))
