"""spark-submit entry point for the 'train' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["train"] + sys.argv[1:]))
