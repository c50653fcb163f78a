"""The one place where engine versions are pinned.

Python packages (``setup.py``) and JVM coordinates (``session.py``) both read from here, so the
PySpark / Delta / SynapseML triple can only move together.
"""

PYSPARK_VERSION = "3.5.8"
DELTA_VERSION = "3.3.2"  # Delta Lake 3.3.x is built for Spark 3.5
SYNAPSEML_VERSION = "1.1.3"  # SynapseML 1.1.x is built for Spark 3.5 / Scala 2.12
SCALA_BINARY = "2.12"

DELTA_JAR = f"io.delta:delta-spark_{SCALA_BINARY}:{DELTA_VERSION}"
SYNAPSEML_LIGHTGBM_JAR = f"com.microsoft.azure:synapseml-lightgbm_{SCALA_BINARY}:{SYNAPSEML_VERSION}"
JAR_COORDINATES = (DELTA_JAR, SYNAPSEML_LIGHTGBM_JAR)

PYTHON_REQUIREMENTS = (
    f"pyspark=={PYSPARK_VERSION}",
    f"delta-spark=={DELTA_VERSION}",
    f"synapseml=={SYNAPSEML_VERSION}",
    "numpy>=1.24,<2",
    "pandas>=2.0,<2.3",
    "pyarrow>=14,<18",
    "scipy>=1.10,<1.16",
    "lightgbm>=4.3,<4.7",
    "PyYAML>=6.0",
    "matplotlib>=3.7,<3.10",
    "Jinja2>=3.0",
)

TEST_REQUIREMENTS = (
    "pytest>=7",
    "pytest-xdist>=3.5",      # scripts/test.sh: one test worker per core (--dist loadgroup, see tests/conftest.py)
    "deltalake>=1.0",
    "scikit-uplift==0.5.1",
)
