"""Per-customer cost of each arm: a number, a population column or Spark SQL expression, or an expected
cost from a second outcome model (``face`` × the predicted probability of ``outcome`` under the arm).

Costs become the wide column ``cost_<arm>`` (double, never null). A frame that already carries
``cost_<arm>`` keeps it (``pipelines.decide`` computes expressions on the population and joins them by
customer id, as it does for eligibility flags); the cost-model form reads ``mu_<arm>__<outcome>`` (the
predicted outcome probability under the arm, added by :func:`uplift_spark.pipelines.decide.cost_model_columns`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..config import ArmEconomics, CostModel, PolicyConfig, parse_cost
from ..errors import ConfigError
from ..errors import PolicyError
from ..schemas import slug


def cost_column(arm: str) -> str:
    return f"cost_{slug(arm)}"


def outcome_mu_column(arm: str, outcome: str) -> str:
    """Predicted mean of ``outcome`` under ``arm`` (not an uplift): what a cost model multiplies."""
    return f"mu_{slug(arm)}__{slug(outcome)}"


def cost_spec(econ: ArmEconomics, arm: str):
    """float | str (column/expression) | CostModel, whatever way the config was built."""
    try:
        return parse_cost(econ.cost, f"policy.arms.{arm}.cost")
    except ConfigError as exc:
        raise PolicyError(str(exc)) from None


def constant_cost(econ: ArmEconomics, arm: str) -> Optional[float]:
    spec = cost_spec(econ, arm)
    return spec if isinstance(spec, float) else None


def varies(policy_cfg: PolicyConfig, arms: Sequence[str]) -> bool:
    """Does any arm's cost depend on the customer?"""
    from .value import economics

    return any(constant_cost(economics(policy_cfg, a), a) is None for a in arms)


def cost_expression(df, arm: str, spec):
    """The arm's cost as a checked double Column over ``df`` (analysis runs now: a bad expression or
    an unknown column raises :class:`PolicyError` naming the arm and the expression)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    if isinstance(spec, float):
        return F.lit(spec)
    if isinstance(spec, CostModel):
        col = outcome_mu_column(arm, spec.outcome)
        if col not in df.columns:
            raise PolicyError(
                f"policy.arms.{arm}.cost: no predicted {spec.outcome!r} probability column {col!r}: score the "
                f"{spec.outcome!r} outcome's model (T-learner) on the population first")
        return F.lit(float(spec.face)) * F.coalesce(F.col(col).cast("double"), F.lit(0.0))
    try:
        expr = F.expr(spec)
        dtype = df.select(expr.alias("_cost")).schema["_cost"].dataType
    except Exception as exc:  # ParseException / AnalysisException
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"policy.arms.{arm}.cost: invalid cost expression {spec!r}: {first}") from None
    if not isinstance(dtype, NumericType):
        raise PolicyError(f"policy.arms.{arm}.cost: expression {spec!r} must be numeric, it gives {dtype.simpleString()}")
    # a missing attribute costs nothing would be a silent subsidy: null cost → the arm is not a candidate
    return expr.cast("double")


def add_costs(df, policy_cfg: PolicyConfig, arms: Sequence[str]):
    """Add ``cost_<arm>`` per arm (kept when already present). Nulls stay null: :mod:`policy.decide`
    makes a customer with an unknown cost no candidate for that arm."""
    from .value import economics

    out = df
    for arm in arms:
        col = cost_column(arm)
        if col in df.columns:
            out = out.withColumn(col, out[col].cast("double"))
            continue
        out = out.withColumn(col, cost_expression(df, arm, cost_spec(economics(policy_cfg, arm), arm)))
    return out


__all__ = ["cost_column", "outcome_mu_column", "cost_spec", "constant_cost", "varies", "cost_expression", "add_costs"]
