"""spark-submit entry point for the 'report' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["report"] + sys.argv[1:]))
