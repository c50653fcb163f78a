"""Value of each action per customer: V_k = τ_k·benefit_k − cost_k − risk.weight·τ_risk,k ("none" is 0).

Wide layout used by the whole policy package (one row per customer):
``uplift_<arm>`` = predicted uplift of the policy outcome for that arm (what learners' ``transform`` adds),
``uplift_<arm>__<outcome>`` = predicted uplift of another outcome (the risk outcome), and this module adds
``value_<arm>``. Arms are slugged with :func:`uplift_spark.schemas.slug`.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

from ..config import ArmEconomics, CostModel, PolicyConfig
from ..errors import PolicyError
from ..schemas import require_columns, slug, uplift_column


def value_column(arm: str) -> str:
    return f"value_{slug(arm)}"


def outcome_uplift_column(arm: str, outcome: str) -> str:
    """Wide column holding ``arm``'s predicted uplift of a secondary ``outcome`` (e.g. the risk outcome)."""
    return f"{uplift_column(arm)}__{slug(outcome)}"


def policy_arms(policy_cfg: PolicyConfig, treatment_arms: Sequence[str]) -> List[str]:
    """The arms the policy may choose: those listed under ``policy.arms`` (all treatment arms when empty).

    A listed arm the model does not know is a config error the run must not silently drop.
    """
    treatment_arms = list(treatment_arms)
    if not treatment_arms:
        raise PolicyError("policy: the model has no treatment arms to choose from")
    unknown = [a for a in policy_cfg.arms if a not in treatment_arms]
    if unknown:
        raise PolicyError(f"policy.arms: {unknown[0]!r} is not a treatment arm of the model {treatment_arms}")
    if not policy_cfg.arms:
        return treatment_arms
    return [a for a in treatment_arms if a in policy_cfg.arms]


def economics(policy_cfg: PolicyConfig, arm: str) -> ArmEconomics:
    return policy_cfg.arms.get(arm, ArmEconomics())


def add_values(df, policy_cfg: PolicyConfig, treatment_arms: Sequence[str],
               risk_columns: Optional[Mapping[str, str]] = None, strict_costs: bool = False):
    """Add ``value_<arm>`` for every policy arm.

    The cost is ``cost_<arm>`` when the frame has it, else the arm's constant cost or its expression over
    the frame (:mod:`policy.costs`). A cost-model cost without its probability column gives a null value
    (scores written before the cost model was scored), or :class:`PolicyError` with ``strict_costs``.

    ``risk_columns`` maps arm → column with the risk outcome's predicted uplift; by default
    ``uplift_<arm>__<risk.outcome>``. The penalty applies only when ``risk.outcome`` is set and
    ``risk.weight`` > 0; a missing uplift column raises :class:`PolicyError` naming it.
    """
    from pyspark.sql import functions as F

    risk = policy_cfg.risk
    use_risk = bool(risk.outcome) and risk.weight > 0
    out = df
    for arm in policy_arms(policy_cfg, treatment_arms):
        econ = economics(policy_cfg, arm)
        col = uplift_column(arm)
        require_columns(df, [col], f"policy: predicted uplift of arm {arm!r}", PolicyError)
        value = F.col(col).cast("double") * F.lit(float(econ.benefit)) - _cost(df, arm, econ, strict_costs)
        if use_risk:
            rcol = (risk_columns or {}).get(arm) or outcome_uplift_column(arm, risk.outcome)
            if rcol not in df.columns:
                raise PolicyError(
                    f"policy.risk: no predicted uplift of risk outcome {risk.outcome!r} for arm {arm!r} "
                    f"(expected column {rcol!r}; score a model trained on that outcome)")
            value = value - F.lit(float(risk.weight)) * F.coalesce(F.col(rcol).cast("double"), F.lit(0.0))
        out = out.withColumn(value_column(arm), value)
    return out


def _cost(df, arm: str, econ: ArmEconomics, strict: bool):
    from pyspark.sql import functions as F

    from .costs import cost_column, cost_expression, cost_spec

    if cost_column(arm) in df.columns:
        return F.col(cost_column(arm)).cast("double")
    try:
        return cost_expression(df, arm, cost_spec(econ, arm))
    except PolicyError:
        if strict or not isinstance(cost_spec(econ, arm), CostModel):
            raise
        return F.lit(None).cast("double")


def arm_value(df, policy_cfg: PolicyConfig, arm: str, uplift=None):
    """benefit × uplift − cost of one arm as a Column over ``df``, without the risk penalty.

    The one definition of an arm's value outside :func:`add_values` (monitoring profiles it for the
    reference and every batch). ``uplift`` defaults to ``uplift_<arm>``; an arm without economics is
    worth its uplift (benefit 1, cost 0); a cost the frame cannot provide (a cost model without its
    probability column) gives null rather than an error, since monitoring only profiles the values.
    """
    from pyspark.sql import functions as F

    econ = economics(policy_cfg, arm)
    u = F.col(uplift_column(arm)) if uplift is None else uplift
    return u.cast("double") * F.lit(float(econ.benefit)) - _cost(df, arm, econ, False)
