"""Table contracts: the columns and types every output table promises its readers (the CRM included).

Writers call :func:`conform` just before writing, so a table's schema cannot drift by accident and a
missing column fails with the table and column named.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

from .errors import DataError

# (column, Spark SQL type). Extra per-run columns (e.g. ``uplift_<outcome>`` in scores) are allowed
# only where a table lists ``"*"``.
TABLE_COLUMNS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "validation_report": (
        ("run_id", "string"), ("check", "string"), ("arm", "string"), ("column", "string"),
        ("metric", "double"), ("threshold", "double"), ("status", "string"), ("message", "string"),
    ),
    "splits": (("run_id", "string"), ("customer_id", "string"), ("split", "string"), ("fold", "int")),
    "split_summary": (
        ("run_id", "string"), ("split", "string"), ("arm", "string"), ("outcome", "string"),
        ("rows", "long"), ("share", "double"), ("outcome_mean", "double"),
    ),
    "predictions": (
        ("run_id", "string"), ("learner", "string"), ("outcome", "string"), ("customer_id", "string"),
        ("split", "string"), ("arm", "string"), ("uplift", "double"),
    ),
    "feature_importance": (
        ("run_id", "string"), ("learner", "string"), ("outcome", "string"), ("arm", "string"),
        ("model", "string"), ("feature", "string"), ("gain", "double"), ("gain_share", "double"),
    ),
    "uplift_curves": (
        ("run_id", "string"), ("learner", "string"), ("arm", "string"), ("outcome", "string"),
        ("split", "string"), ("point", "int"), ("n", "long"), ("n_t", "long"), ("n_c", "long"),
        ("y_t", "double"), ("y_c", "double"), ("qini", "double"), ("uplift", "double"),
        ("qini_low", "double"), ("qini_high", "double"), ("uplift_low", "double"), ("uplift_high", "double"),
    ),
    "uplift_metrics": (
        ("run_id", "string"), ("learner", "string"), ("arm", "string"), ("outcome", "string"),
        ("split", "string"), ("metric", "string"), ("value", "double"), ("ci_low", "double"),
        ("ci_high", "double"),
    ),
    "uplift_by_decile": (
        ("run_id", "string"), ("learner", "string"), ("arm", "string"), ("outcome", "string"),
        ("split", "string"), ("decile", "int"), ("n_t", "long"), ("n_c", "long"), ("predicted", "double"),
        ("observed", "double"), ("se", "double"),
    ),
    "scores": (
        ("run_id", "string"), ("model_version", "string"), ("customer_id", "string"), ("arm", "string"),
        ("uplift", "double"), ("value", "double"), ("scored_at", "timestamp"), ("*", ""),
    ),
    "decisions": (
        ("run_id", "string"), ("campaign_id", "string"), ("customer_id", "string"), ("action", "string"),
        ("expected_value", "double"), ("expected_uplift", "double"), ("bucket", "string"),
        ("policy_action", "string"), ("reason", "string"), ("decided_at", "timestamp"),
    ),
}

_SLUG = re.compile(r"[^0-9a-zA-Z]+")


def slug(name: str) -> str:
    """Column-safe form of an arm or outcome name: ``'Mens E-Mail'`` → ``'mens_e_mail'``."""
    out = _SLUG.sub("_", str(name)).strip("_").lower()
    return out or "arm"


def uplift_column(arm: str) -> str:
    """The column a fitted learner's ``transform`` adds for one treatment arm."""
    return f"uplift_{slug(arm)}"


def columns(table: str) -> List[str]:
    return [c for c, _ in TABLE_COLUMNS[table] if c != "*"]


def conform(df, table: str):
    """Select the contract's columns in order, cast to the contract's types; keep extras where allowed."""
    from pyspark.sql import functions as F

    spec = TABLE_COLUMNS[table]
    missing = [c for c, _ in spec if c != "*" and c not in df.columns]
    if missing:
        raise DataError(f"table {table!r}: missing column {missing[0]!r} (have {sorted(df.columns)})")
    cols = [F.col(c).cast(t).alias(c) for c, t in spec if c != "*"]
    if any(c == "*" for c, _ in spec):
        known = {c for c, _ in spec}
        cols += [F.col(c) for c in df.columns if c not in known]
    return df.select(*cols)
