"""Scores → values → a budgeted multi-treatment policy with holdout and exploration buckets.

Public API (used by ``pipelines.score``/``pipelines.decide`` and by monitoring):

- ``add_values(df, policy_cfg, treatment_arms, risk_columns=None)`` → df + ``value_<arm>``
- ``add_eligibility(df, policy_cfg, arms)`` → df + ``eligible_<arm>``
- ``assign_buckets(df, policy_cfg, arms, id_col="customer_id")`` → df + ``bucket``, ``explore_arm``, ``tie_u``
- ``decide(df_wide, policy_cfg, treatment_arms, id_col="customer_id")`` → ``(decisions_df, DecisionSummary)``
- ``policy_arms(policy_cfg, treatment_arms)``, ``value_column(arm)``, ``outcome_uplift_column(arm, outcome)``
"""

from .buckets import EXPLORE, HOLDOUT, POLICY, assign_buckets, unit_hash
from .decide import DECISION_COLUMNS, check_constraints, decide
from .eligibility import add_eligibility, eligible_column
from .summary import DecisionSummary
from .value import add_values, economics, outcome_uplift_column, policy_arms, value_column

__all__ = [
    "add_values", "add_eligibility", "assign_buckets", "decide", "DecisionSummary", "policy_arms",
    "value_column", "outcome_uplift_column", "eligible_column", "economics", "check_constraints",
    "unit_hash", "DECISION_COLUMNS", "HOLDOUT", "EXPLORE", "POLICY",
]
