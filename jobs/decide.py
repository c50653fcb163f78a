"""spark-submit entry point for the 'decide' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["decide"] + sys.argv[1:]))
