"""spark-submit entry point for the 'ingest' stage: see uplift_spark.cli (exit code = error class)."""
import sys

from uplift_spark.cli import main

sys.exit(main(["ingest"] + sys.argv[1:]))
