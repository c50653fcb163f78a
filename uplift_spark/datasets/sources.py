"""Read the configured experiment source into a DataFrame (no table names, no config files here).

``data.path`` may be relative: it is resolved against the current directory first, then against the
folder of the YAML file, so the same config works from the project root and from its ``conf/`` folder.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..config import DataConfig, SyntheticConfig, UpliftConfig
from ..errors import ConfigError, DataError
from ..schemas import require_columns
from ..io.sources import read_input, resolve_path  # noqa: F401  (resolve_path: public here too)
from .hillstrom import load_hillstrom
from .synthetic import clustered, generate_synthetic, synthetic_data_config

FILE_SOURCES = ("hillstrom", "csv", "parquet", "delta")


def resolve_data_config(cfg: UpliftConfig) -> DataConfig:
    """The data contract in force: for ``source: synthetic`` with no features listed, the generator's."""
    data = cfg.data
    if data.source == "synthetic" and not data.features:
        generated = synthetic_data_config(cfg.synthetic)
        return dataclasses.replace(generated, path=data.path, rename=data.rename)
    if data.source == "synthetic" and data.cluster is None and clustered(cfg.synthetic):
        # households are randomized as wholes: a spelled-out contract that forgets data.cluster would
        # otherwise split and bootstrap them as independent customers
        return dataclasses.replace(data, cluster="household_id")
    return data


def read_source(spark, data_cfg: DataConfig, synthetic_cfg: Optional[SyntheticConfig] = None,
                config_file: Optional[str] = None):
    """The raw source as a DataFrame, with ``data.rename`` applied (source name → contract name)."""
    source = data_cfg.source
    if source == "synthetic":
        df = generate_synthetic(spark, synthetic_cfg or SyntheticConfig())
    elif source == "table":
        if not data_cfg.path:
            raise ConfigError("data.path: the table name is required for source 'table'")
        df = read_input(spark, data_cfg.path, "data.path", fmt="table")
    else:
        path = resolve_path(data_cfg.path, config_file)
        if source == "hillstrom":
            df = load_hillstrom(spark, path)
        elif source in ("csv", "parquet", "delta"):
            df = read_input(spark, path, f"{source} source", fmt=source)
        else:  # pragma: no cover - choices are checked on load
            raise ConfigError(f"data.source: unsupported source {source!r}")
    return apply_rename(df, data_cfg)


def apply_rename(df, data_cfg: DataConfig):
    require_columns(df, data_cfg.rename, "data.rename (source)")
    for old, new in data_cfg.rename.items():
        df = df.withColumnRenamed(old, new)
    return df


ID_COLUMN = "customer_id"
ARM_COLUMN = "arm"


def logged_data_config(cfg: UpliftConfig) -> DataConfig:
    """The contract as seen in ``experiment_log``: ids in ``customer_id``, arms in ``arm``, no renames."""
    data = resolve_data_config(cfg)
    return dataclasses.replace(data, customer_id=ID_COLUMN, arm=ARM_COLUMN, rename={})


def to_experiment_log(df, data_cfg: DataConfig, where: str):
    """Check the contract columns and types, then name the id/arm columns as the log promises.

    ``where`` names the source (file or table) in error messages.
    """
    from pyspark.sql import functions as F

    from ..validation.contract import contract_problems

    problems = contract_problems(df.schema, data_cfg)
    if problems:
        column, problem = problems[0]
        more = f" (+{len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(f"{where}: {problem}{more}")
    for canonical, configured in ((ID_COLUMN, data_cfg.customer_id), (ARM_COLUMN, data_cfg.arm)):
        if configured != canonical and canonical in df.columns:
            raise DataError(
                f"{where}: column {canonical!r} exists but data.{canonical} is {configured!r}; "
                f"rename or drop {canonical!r} in the source"
            )
    rest = [F.col(c) for c in df.columns if c not in (data_cfg.customer_id, data_cfg.arm)]
    return df.select(
        F.col(data_cfg.customer_id).cast("string").alias(ID_COLUMN),
        F.col(data_cfg.arm).cast("string").alias(ARM_COLUMN),
        *rest,
    )


def describe_source(data_cfg: DataConfig) -> str:
    if data_cfg.source == "synthetic":
        return "synthetic source"
    return f"{data_cfg.source} source {data_cfg.path!r}"
