"""Which columns the experiment log must have and which Spark types each may take.

Used twice: by ingest (the first problem is a :class:`DataError`, nothing is written) and by the
``schema`` gate (every problem becomes a failing report row).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from ..config import DataConfig
from ..schemas import slug

NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")
INTEGRAL = ("tinyint", "smallint", "int", "bigint")
TIME = ("timestamp", "timestamp_ntz", "date")
KEY = ("string",) + INTEGRAL
CATEGORICAL = ("string", "boolean") + INTEGRAL


def _simple(dtype) -> str:
    name = dtype.simpleString()
    return "double" if name.startswith("decimal") else name


def propensity_columns(data: DataConfig) -> Dict[str, str]:
    """arm → its known-propensity column (empty when the data carry no propensities)."""
    if not data.propensity:
        return {}
    return {arm: f"{data.propensity}_{slug(arm)}" for arm in data.arms}


def required_columns(data: DataConfig) -> List[Tuple[str, Tuple[str, ...], str]]:
    """(column, allowed simple types, role) for every column the config names."""
    cols = [(data.customer_id, KEY, "customer id"), (data.arm, KEY, "arm")]
    if data.assigned_at:
        cols.append((data.assigned_at, TIME, "assignment time"))
    if data.feature_snapshot_at:
        cols.append((data.feature_snapshot_at, TIME, "feature snapshot time"))
    for feat, col in data.feature_observed_at.items():
        cols.append((col, TIME, f"observed-at time of feature {feat!r}"))
    categorical = set(data.categorical_features)
    for feat in data.features:
        if feat in categorical:
            cols.append((feat, CATEGORICAL, "categorical feature"))
        else:
            cols.append((feat, NUMERIC, "numeric feature"))
    for spec in data.outcomes:
        cols.append((spec.name, NUMERIC, f"{spec.type} outcome"))
    for arm, col in propensity_columns(data).items():
        cols.append((col, NUMERIC, f"propensity of arm {arm!r}"))
    seen, out = set(), []
    for item in cols:
        if item[0] not in seen:
            seen.add(item[0])
            out.append(item)
    return out


def contract_problems(schema, data: DataConfig) -> List[Tuple[str, str]]:
    """(column, problem) for each missing or mistyped column of ``schema`` (a Spark StructType)."""
    types = {f.name: _simple(f.dataType) for f in schema.fields}
    problems = []
    for col, allowed, role in required_columns(data):
        if col not in types:
            problems.append((col, f"missing {role} column {col!r}"))
        elif types[col] not in allowed:
            problems.append((col, f"{role} column {col!r} has type {types[col]}, expected one of {list(allowed)}"))
    return problems
