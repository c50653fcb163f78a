"""Monitoring: reference profiles, feature/score/policy drift, realized uplift and alerts.

Modules take DataFrames and typed config and return small pandas frames or JSON-able dicts; only
``pipelines/monitor.py`` reads and writes tables.
"""

from .alerts import ALERT_COLUMNS, collect_alerts, retrain_recommended
from .drift import FEATURE_DRIFT_COLUMNS, feature_drift
from .policy import POLICY_DRIFT_COLUMNS, policy_drift
from .profile import (
    PROFILE_FILE,
    build_feature_profile,
    build_policy_profile,
    build_score_profile,
    feature_counts,
    load_profile,
    profile_path,
    save_profile,
)
from .realized import REALIZED_COLUMNS, campaign_outcomes, realized_uplift
from .scores import SCORE_DRIFT_COLUMNS, score_drift, wide_to_long
from .stats import binned_ks, psi, welch_interval

__all__ = [
    "ALERT_COLUMNS", "FEATURE_DRIFT_COLUMNS", "POLICY_DRIFT_COLUMNS", "PROFILE_FILE", "REALIZED_COLUMNS",
    "SCORE_DRIFT_COLUMNS", "binned_ks", "build_feature_profile", "build_policy_profile", "build_score_profile",
    "campaign_outcomes", "collect_alerts", "feature_counts", "feature_drift", "load_profile", "policy_drift",
    "profile_path", "psi", "realized_uplift", "retrain_recommended", "save_profile", "score_drift",
    "wide_to_long", "welch_interval",
]
