"""Experiment sources: the synthetic generator, the Hillstrom loader and generic file/table readers."""

from .hillstrom import load_hillstrom
from .sources import (
    describe_source, logged_data_config, read_source, resolve_data_config, resolve_path, to_experiment_log,
)
from .synthetic import generate_synthetic, synthetic_data_config

__all__ = [
    "generate_synthetic", "synthetic_data_config", "load_hillstrom", "read_source", "resolve_data_config",
    "resolve_path",
    "logged_data_config", "to_experiment_log", "describe_source",
]
