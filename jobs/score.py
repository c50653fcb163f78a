"""spark-submit entry point for the 'score' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["score"] + sys.argv[1:]))
