"""Project logger. Messages carry counts and stage names, never customer ids."""

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s uplift_spark.%(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"uplift_spark.{name}")
    root = logging.getLogger("uplift_spark")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logger
