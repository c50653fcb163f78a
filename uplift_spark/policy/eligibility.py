"""Per-arm eligibility rules (Spark SQL boolean expressions from ``policy.arms.<arm>.eligibility``).

A rule is evaluated with ``F.expr`` on the population's columns; null counts as not eligible, so a
missing attribute never sends a contact. A rule that does not parse, names an unknown column or is not
boolean raises :class:`PolicyError` naming the arm and the rule, before anything is written.
"""

from __future__ import annotations

from typing import Sequence

from ..config import PolicyConfig
from ..errors import PolicyError
from ..schemas import slug
from .value import economics


def eligible_column(arm: str) -> str:
    return f"eligible_{slug(arm)}"


def rule_expression(df, arm: str, rule: str):
    """The rule as a checked boolean Column over ``df`` (analysis runs now, not at write time)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    try:
        expr = F.expr(rule)
        dtype = df.select(expr.alias("_rule")).schema["_rule"].dataType
    except Exception as exc:  # ParseException / AnalysisException: report the arm and the rule
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"policy.arms.{arm}.eligibility: invalid rule {rule!r}: {first}") from None
    if not isinstance(dtype, BooleanType):
        raise PolicyError(
            f"policy.arms.{arm}.eligibility: rule {rule!r} must be boolean, it gives {dtype.simpleString()}")
    return F.coalesce(expr, F.lit(False))


def has_rules(policy_cfg: PolicyConfig, arms: Sequence[str]) -> bool:
    return any(economics(policy_cfg, a).eligibility for a in arms)


def add_eligibility(df, policy_cfg: PolicyConfig, arms: Sequence[str]):
    """Add ``eligible_<arm>`` (boolean, never null) per arm, keeping flags that are already present
    (the ``decide`` pipeline computes them on the population and joins them by customer id)."""
    from pyspark.sql import functions as F

    out = df
    for arm in arms:
        col = eligible_column(arm)
        if col in df.columns:
            out = out.withColumn(col, F.coalesce(F.col(col).cast("boolean"), F.lit(False)))
            continue
        rule = economics(policy_cfg, arm).eligibility
        out = out.withColumn(col, rule_expression(df, arm, rule) if rule else F.lit(True))
    return out
