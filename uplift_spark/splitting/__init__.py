"""Honest splits: out-of-time cutoff + customer-level, hash-stratified train/valid/test (+ K folds).

Uplift models are judged on customers they never saw and, in production, on a later period than they
were trained on. These functions make that split once, deterministically from the seed and the customer
id, so a rerun reproduces it and new customers never move old ones (``method="hash"``).
"""

from .assign import SPLIT_NAMES, assign_splits, expected_splits, split_value
from .checks import check_splits, stratum_balance
from .cutoff import format_micros, resolve_cutoff
from .summary import summarize_splits

__all__ = [
    "SPLIT_NAMES",
    "assign_splits",
    "check_splits",
    "expected_splits",
    "format_micros",
    "resolve_cutoff",
    "split_value",
    "stratum_balance",
    "summarize_splits",
]
