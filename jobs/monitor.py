"""spark-submit entry point for the 'monitor' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["monitor"] + sys.argv[1:]))
