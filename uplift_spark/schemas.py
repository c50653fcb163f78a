"""Table contracts: the columns and types every output table promises its readers (the CRM included).

Writers call :func:`conform` just before writing, so a table's schema cannot drift by accident and a
missing column fails with the table and column named.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Tuple, Type

from .errors import DataError

# (column, Spark SQL type). Extra per-run columns (e.g. ``uplift_<outcome>`` in scores) are allowed
# only where a table lists ``"*"``.
TABLE_COLUMNS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    # the ingested experiment: contract keys first, then the source's feature/outcome/time columns
    "experiment_log": (("run_id", "string"), ("customer_id", "string"), ("arm", "string"), ("*", "")),
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
    # what changes the predicted effect: gain of a surrogate regressor on τ̂_arm (learners/importance.py)
    "uplift_importance": (
        ("run_id", "string"), ("learner", "string"), ("outcome", "string"), ("arm", "string"),
        ("feature", "string"), ("gain", "double"), ("gain_share", "double"), ("rank", "int"),
        ("sample_rows", "long"), ("surrogate_r2", "double"),
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
        ("observed", "double"), ("se", "double"), ("treated_mean", "double"), ("control_mean", "double"),
    ),
    # scores: "*" = uplift_<outcome> per scored outcome, and mu_<outcome> (the outcome predicted under the
    # arm) for the outcome of an expected-cost model (policy.arms.<arm>.cost: {face, outcome})
    "scores": (
        ("run_id", "string"), ("model_version", "string"), ("customer_id", "string"), ("arm", "string"),
        ("uplift", "double"), ("value", "double"), ("scored_at", "timestamp"), ("*", ""),
    ),
    # expected_value / expected_uplift: the MODEL'S PREDICTION for the chosen action (value net of cost
    # and risk penalty; 0 for "none"). expected_uplift_calibrated / expected_value_calibrated: the same
    # mapped through the held-out calibration of predicted uplift (observed uplift per predicted-uplift bin
    # on the randomized policy.calibration_split, isotonic); null when the run has no calibration split.
    "decisions": (
        ("run_id", "string"), ("campaign_id", "string"), ("customer_id", "string"), ("action", "string"),
        ("expected_value", "double"), ("expected_uplift", "double"), ("bucket", "string"),
        ("policy_action", "string"), ("reason", "string"), ("decided_at", "timestamp"),
        ("expected_uplift_calibrated", "double"), ("expected_value_calibrated", "double"),
    ),
    # kind "allocation": one row per bucket × action (constraint columns null); kind "constraint": one
    # row per constraint with use (policy + explore) vs limit: budget, capacity:<arm>, top_k,
    # fairness:<group> (used = the group's treated share minus the overall one, limit = the gap),
    # fairness_gap (largest absolute gap), min_share:<group> / max_share:<group> (T_g/T),
    # guardrail:<outcome> (a floor: used ≥ limit), guardrail:<outcome>:max_uplift (used = customers
    # excluded by the per-customer threshold, no multiplier); kind "total": all contacts. expected_* are
    # model predictions, expected_*_calibrated the calibrated sums; held_out_* (total row, written by
    # evaluate-policy) = the held-out AIPW estimate of the policy's gain over treating nobody on
    # held_out_split, per customer × the decided population; calibrated_ci_* (total row) = the interval of
    # expected_value_calibrated from the calibration bins' sampling noise.
    "decision_summary": (
        ("run_id", "string"), ("campaign_id", "string"), ("kind", "string"), ("bucket", "string"),
        ("action", "string"), ("customers", "long"), ("cost", "double"), ("expected_uplift", "double"),
        ("expected_value", "double"), ("constraint", "string"), ("used", "double"), ("limit", "double"),
        ("multiplier", "double"), ("expected_uplift_calibrated", "double"), ("expected_value_calibrated", "double"),
        ("held_out_value", "double"), ("held_out_ci_low", "double"), ("held_out_ci_high", "double"),
        ("held_out_split", "string"), ("calibrated_ci_low", "double"), ("calibrated_ci_high", "double"),
    ),
    # publishing (``uplift-spark publish``). contact_history: one row per contacted or holdout customer of
    # a published run (action = the arm, or "holdout": not contacted), across campaigns; what frequency
    # caps count. Partitioned by contact_date (= date of contacted_at) so a cap window reads few days;
    # MERGEd per (run_id, customer_id), so republishing a run changes nothing.
    "contact_history": (
        ("customer_id", "string"), ("campaign_id", "string"), ("channel", "string"), ("action", "string"),
        ("contacted_at", "timestamp"), ("run_id", "string"), ("contact_date", "date"),
    ),
    # the decisions in force for the CRM: one row per (campaign_id, customer_id), Change Data Feed on.
    # run_id/decided_at: the run whose decision the row holds; published_at: when it entered the table.
    "decisions_current": (
        ("campaign_id", "string"), ("customer_id", "string"), ("action", "string"),
        ("expected_value", "double"), ("expected_uplift", "double"), ("bucket", "string"),
        ("policy_action", "string"), ("reason", "string"), ("run_id", "string"), ("decided_at", "timestamp"),
        ("published_at", "timestamp"), ("expected_uplift_calibrated", "double"),
        ("expected_value_calibrated", "double"),
    ),
    # one row per publication that changed something: which run is in force for a campaign since which
    # decisions_current version (the CRM's readChangeFeed startingVersion), with the MERGE's row counts.
    "publications": (
        ("campaign_id", "string"), ("run_id", "string"), ("published_at", "timestamp"), ("table_version", "long"),
        ("customers", "long"), ("contacts", "long"), ("inserted", "long"), ("updated", "long"),
        ("deleted", "long"),
    ),
    # held-out policy evaluation: one row per split × policy × (baseline) × estimator × metric. metric
    # "value" (net of cost, per customer), "gain" (value − treating nobody), "difference" (paired vs
    # ``baseline``), "spend" (total on the split), "contacts:<arm>", "predicted_gain" (the
    # models' own promise for the same customers), "curve_area", "curve_area_difference".
    # ``scale`` = the split's share of the decided population (budget, top_k and capacities scaled by it).
    "policy_evaluation": (
        ("run_id", "string"), ("split", "string"), ("policy", "string"), ("baseline", "string"),
        ("estimator", "string"), ("metric", "string"), ("estimate", "double"), ("se", "double"),
        ("ci_low", "double"), ("ci_high", "double"), ("p_value", "double"), ("customers", "long"),
        ("scale", "double"), ("budget", "double"), ("note", "string"),
    ),
    # multi-armed cost curves: gain over nobody per customer (AIPW) at each spend per customer;
    # ``arm_shares`` = share of customers given each arm at that spend.
    "policy_curves": (
        ("run_id", "string"), ("split", "string"), ("policy", "string"), ("point", "int"), ("spend", "double"),
        ("value", "double"), ("se", "double"), ("ci_low", "double"), ("ci_high", "double"),
        ("net_value", "double"), ("arm_shares", "map<string,double>"),
    ),
    # monitoring: one row per feature / arm × metric / policy metric / action × outcome /
    # alert of one monitored batch; rewritten per (run_id, batch_id), so a rerun leaves one copy.
    "drift_features": (
        ("run_id", "string"), ("batch_id", "string"), ("batch_time", "timestamp"), ("feature", "string"),
        ("kind", "string"), ("psi", "double"), ("ks", "double"), ("null_share_ref", "double"),
        ("null_share", "double"), ("unseen_share", "double"), ("rows", "long"), ("reference_rows", "long"),
        ("status", "string"), ("message", "string"), ("monitored_at", "timestamp"),
    ),
    "drift_scores": (
        ("run_id", "string"), ("batch_id", "string"), ("batch_time", "timestamp"), ("model", "string"),
        ("arm", "string"), ("metric", "string"), ("psi", "double"), ("mean_ref", "double"), ("mean", "double"),
        ("std_ref", "double"), ("std", "double"), ("mean_shift", "double"), ("negative_share_ref", "double"),
        ("negative_share", "double"), ("rows", "long"), ("status", "string"), ("message", "string"),
        ("monitored_at", "timestamp"),
    ),
    "drift_policy": (
        ("run_id", "string"), ("batch_id", "string"), ("batch_time", "timestamp"), ("campaign_id", "string"),
        ("reference_campaign_id", "string"), ("metric", "string"), ("action", "string"), ("bucket", "string"),
        ("reference", "double"), ("current", "double"), ("difference", "double"), ("status", "string"),
        ("message", "string"), ("monitored_at", "timestamp"),
    ),
    "realized_uplift": (
        ("run_id", "string"), ("batch_id", "string"), ("batch_time", "timestamp"), ("campaign_id", "string"),
        ("action", "string"), ("outcome", "string"), ("n_treated", "long"), ("n_holdout", "long"),
        ("mean_treated", "double"), ("mean_holdout", "double"), ("realized_uplift", "double"), ("se", "double"),
        ("ci_low", "double"), ("ci_high", "double"), ("dof", "double"), ("expected_uplift", "double"),
        ("status", "string"), ("message", "string"), ("monitored_at", "timestamp"),
    ),
    "monitoring_alerts": (
        ("run_id", "string"), ("batch_id", "string"), ("batch_time", "timestamp"), ("source", "string"),
        ("subject", "string"), ("metric", "string"), ("value", "double"), ("threshold", "double"),
        ("severity", "string"), ("message", "string"), ("retrain_recommended", "boolean"),
        ("monitored_at", "timestamp"),
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


def require_columns(df_or_columns, cols: Iterable[Optional[str]], where: str,
                    error: Type[Exception] = DataError) -> None:
    """Fail with one line naming the first missing column and where it was needed.

    Every stage checks its input the same way, so a user sees the stage/table, the column and what
    was there instead of a Spark analysis error deep in a plan. ``None`` entries (optional columns
    that are not configured) are skipped.
    """
    have = list(getattr(df_or_columns, "columns", df_or_columns))
    present = set(have)
    missing = [c for c in cols if c is not None and c not in present]
    if missing:
        raise error(f"{where}: missing column {missing[0]!r} (have {sorted(have)})")


def ddl(table: str) -> str:
    """The contract as a Spark DDL string (``customer_id string, ...``), for creating an empty table."""
    return ", ".join(f"`{c}` {t}" for c, t in TABLE_COLUMNS[table] if c != "*")


def conform(df, table: str):
    """Select the contract's columns in order, cast to the contract's types; keep extras where allowed."""
    from pyspark.sql import functions as F

    spec = TABLE_COLUMNS[table]
    require_columns(df, [c for c, _ in spec if c != "*"], f"table {table!r}")
    cols = [F.col(c).cast(t).alias(c) for c, t in spec if c != "*"]
    if any(c == "*" for c, _ in spec):
        known = {c for c, _ in spec}
        cols += [F.col(c) for c in df.columns if c not in known]
    return df.select(*cols)
