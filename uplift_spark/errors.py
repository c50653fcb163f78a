"""One exception hierarchy, so jobs can map any project failure to an exit code and a clear message."""


class UpliftSparkError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1


class ConfigError(UpliftSparkError):
    """The YAML config is malformed, has an unknown key, or a value of the wrong type or range."""

    exit_code = 2


class EngineError(UpliftSparkError):
    """Spark, Delta or the LightGBM JARs are missing or unusable."""

    exit_code = 3


class DataError(UpliftSparkError):
    """Input data breaks its contract: missing file/table/column, wrong type, unknown arm, empty table."""

    exit_code = 4


class ValidationFailed(DataError):
    """A validation gate failed; ``report`` holds the failing checks so callers can show them."""

    exit_code = 5

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = tuple(failures)


class SplitError(DataError):
    """A split would leave an arm without treated/control rows or below the configured minimum."""

    exit_code = 6


class ModelError(UpliftSparkError):
    """Training failed, or a saved model is missing, incompatible or fails its checksum."""

    exit_code = 7


class PolicyError(UpliftSparkError):
    """Decision constraints are infeasible or inconsistent with the model's arms."""

    exit_code = 8


class MonitoringError(UpliftSparkError):
    """A monitoring batch cannot be compared with the reference profile."""

    exit_code = 9


class ConcurrentWriteError(UpliftSparkError):
    """Concurrent runs kept conflicting on one Delta table past the bounded retries; rerun the run id."""

    exit_code = 10
