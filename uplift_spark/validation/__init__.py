"""Data gates for an experiment log: schema, ids, arms, sample ratio, balance, leakage, outcomes.

Modules here take a DataFrame and typed config sections and return :class:`CheckResult` rows; only
``pipelines/validate.py`` reads and writes tables.
"""

from .contract import contract_problems, propensity_columns, required_columns
from .results import CheckResult, failure_message, failures, summarize, to_frame
from .runner import run_checks, schema_checks

__all__ = [
    "CheckResult", "run_checks", "schema_checks", "failures", "failure_message", "summarize", "to_frame",
    "contract_problems", "required_columns", "propensity_columns",
]
