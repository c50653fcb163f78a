"""spark-submit entry point for the 'predict' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["predict"] + sys.argv[1:]))
