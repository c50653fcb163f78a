"""spark-submit entry point for the 'evaluate-policy' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["evaluate-policy"] + sys.argv[1:]))
