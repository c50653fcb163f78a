"""spark-submit entry point for the 'split' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["split"] + sys.argv[1:]))
