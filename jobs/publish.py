"""spark-submit entry point for the 'publish' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["publish"] + sys.argv[1:]))
