"""uplift_spark: distributed uplift modeling on Spark (Delta Lake + SynapseML LightGBM)."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _pins():
    """Read the pins from uplift_spark/versions.py without importing the package."""
    scope = {}
    with open(os.path.join(HERE, "uplift_spark", "versions.py"), encoding="utf-8") as fh:
        exec(compile(fh.read(), "versions.py", "exec"), scope)  # noqa: S102 - our own constants file
    return scope


PINS = _pins()

setup(
    name="uplift_spark",
    version="0.1.0",
    description="Distributed uplift modeling (T/X learners, Qini, policies, drift) on Spark + Delta",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["uplift_spark", "uplift_spark.*"]),
    include_package_data=True,
    package_data={"uplift_spark": ["report/*.html", "report/templates/*.j2", "report/templates/*.css", "conf/*.yaml"]},
    install_requires=list(PINS["PYTHON_REQUIREMENTS"]),
    extras_require={
        "test": list(PINS["TEST_REQUIREMENTS"]),
        "mlflow": ["mlflow>=2.10"],
        "bench": ["psutil>=5", "scikit-uplift==0.5.1"],
    },
    entry_points={"console_scripts": ["uplift-spark=uplift_spark.cli:main"]},
)
