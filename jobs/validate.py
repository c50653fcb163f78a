"""spark-submit entry point for the 'validate' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["validate"] + sys.argv[1:]))
