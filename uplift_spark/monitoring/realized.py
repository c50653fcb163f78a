"""Realized uplift of a decided campaign once its outcomes arrive.

For each action k the treated group is the customers of the ``policy`` bucket who got k; the
comparison group is the ``holdout`` customers whose ``policy_action`` is k (the policy would have sent
k but they were held out at random). Their difference of mean outcomes is an unbiased estimate of
the effect of k on the customers the policy picks for k, reported with a Welch t interval next to the
uplift the policy expected (mean ``expected_uplift`` of the treated group).

Cluster-randomized campaigns (``data.cluster``): customers of one household are correlated, so with a
cluster column the SE of each group mean is cluster-robust (sums of outcomes per cluster,
:mod:`uplift_spark.evaluation.cluster_se`) and the interval uses a t quantile with (clusters - 2)
degrees of freedom.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import pandas as pd

from ..config import MonitoringConfig
from ..errors import DataError
from ..schemas import require_columns
from ..evaluation.cluster_agg import cluster_moments
from ..evaluation.cluster_se import difference_se
from ..joins import join_customers
from .stats import welch_interval

REALIZED_COLUMNS = (
    "campaign_id", "action", "outcome", "n_treated", "n_holdout", "mean_treated", "mean_holdout",
    "realized_uplift", "se", "ci_low", "ci_high", "dof", "expected_uplift", "status", "message",
)


def campaign_outcomes(decisions_df, outcomes_df, outcomes: Mapping[str, str], cfg: MonitoringConfig,
                      customer_id: str = "customer_id", outcome_time: Optional[str] = "outcome_at",
                      cluster_col: Optional[str] = None):
    """Decisions joined with each customer's outcome per outcome column.

    Several outcome rows per customer are combined (max for binary, sum for continuous outcomes).
    Outcome rows dated before ``decided_at`` (or after the ``outcome_window_days`` window) are not
    caused by the campaign and are ignored. Decided customers without outcome rows count as 0
    (``missing_outcome: zero``: feeds list only events) or are dropped (``drop``). ``cluster_col``: a
    column of ``outcomes_df`` carried to the result (the customer's cluster; customers without outcome
    rows are their own cluster).
    """
    from pyspark.sql import functions as F

    require_columns(outcomes_df, [customer_id, *outcomes, cluster_col], "campaign outcomes")
    for col in ("customer_id", "action", "bucket", "policy_action"):
        if col not in decisions_df.columns:
            raise DataError(f"decisions: column {col!r} is missing (have {sorted(decisions_df.columns)})")
    dec = decisions_df.select(
        "customer_id", "action", "bucket", "policy_action",
        *[c for c in ("campaign_id", "expected_uplift", "decided_at") if c in decisions_df.columns])
    out = outcomes_df.select(F.col(customer_id).cast("string").alias("customer_id"),
                             *[F.col(o).cast("double").alias(f"__o_{i}") for i, o in enumerate(outcomes)],
                             *([F.col(outcome_time).alias("__t")] if outcome_time and outcome_time in outcomes_df.columns else []),
                             *([F.col(cluster_col).cast("string").alias("__cl")] if cluster_col else []))
    joined = join_customers(dec, out, "customer_id", "left")
    if "__t" in out.columns and "decided_at" in dec.columns:
        late = F.col("__t") >= F.col("decided_at")
        if cfg.outcome_window_days is not None:
            late = late & (F.col("__t") <= F.col("decided_at") + F.expr(f"INTERVAL {int(cfg.outcome_window_days)} DAYS"))
        valid = F.col("__t").isNull() | late
        for i, _ in enumerate(outcomes):
            joined = joined.withColumn(f"__o_{i}", F.when(valid, F.col(f"__o_{i}")))
    keys = ["customer_id", "action", "bucket", "policy_action"] + [c for c in ("campaign_id", "expected_uplift") if c in dec.columns]
    aggs = []
    for i, (name, kind) in enumerate(outcomes.items()):
        agg = F.max if kind == "binary" else F.sum
        aggs.append(agg(f"__o_{i}").alias(name))
    aggs.append(F.count(F.col("__o_0") if outcomes else F.lit(None)).alias("__matched"))
    if cluster_col:
        aggs.append(F.min("__cl").alias(cluster_col))
    per_customer = joined.groupBy(*keys).agg(*aggs)
    if cfg.missing_outcome == "drop":
        per_customer = per_customer.where(F.col("__matched") > 0)
    else:
        per_customer = per_customer.fillna(0.0, subset=list(outcomes))
    if cluster_col:
        per_customer = per_customer.withColumn(
            cluster_col, F.coalesce(F.col(cluster_col), F.concat(F.lit("customer:"), F.col("customer_id"))))
    return per_customer.drop("__matched")


def realized_uplift(per_customer_df, outcomes: Sequence[str], cfg: MonitoringConfig,
                    expected_outcome: Optional[str] = None,
                    policy_bucket: str = "policy", holdout_bucket: str = "holdout",
                    cluster_col: Optional[str] = None) -> pd.DataFrame:
    """One row per (action, outcome): treated vs holdout means, Welch CI and the expected uplift.

    ``expected_uplift`` is shown only for ``expected_outcome`` (the outcome the policy optimised).
    Status: ``alert`` when the interval lies entirely below 0 (the action harms), ``warn`` when the
    expected uplift falls outside the interval (the model mis-estimates), ``ok`` otherwise; groups
    smaller than ``min_group_size`` are reported but not judged. ``cluster_col``: cluster-robust SEs
    (see the module doc); ``dof`` is then the clusters of both groups minus 2.
    """
    from pyspark.sql import functions as F

    df = per_customer_df.where(F.col("bucket").isin(policy_bucket, holdout_bucket))
    group = F.when(F.col("bucket") == policy_bucket, F.col("action")).otherwise(F.col("policy_action"))
    aggs = [F.count(F.lit(1)).alias("n")]
    for i, o in enumerate(outcomes):
        aggs += [F.avg(F.col(o).cast("double")).alias(f"m{i}"), F.var_samp(F.col(o).cast("double")).alias(f"v{i}")]
    has_expected = "expected_uplift" in per_customer_df.columns
    if has_expected:
        aggs.append(F.avg("expected_uplift").alias("exp"))
    has_campaign = "campaign_id" in per_customer_df.columns
    campaign = F.col("campaign_id") if has_campaign else F.lit(None).cast("string")
    rows = df.groupBy(campaign.alias("campaign_id"), group.alias("k"), F.col("bucket")).agg(*aggs).collect()
    clustered = {}
    if cluster_col is not None:
        require_columns(per_customer_df, [cluster_col], "realized uplift (cluster)")
        keyed = df.select(campaign.alias("_cp"), group.alias("_k"), "bucket", cluster_col, *outcomes)
        for i, o in enumerate(outcomes):
            clustered[o] = cluster_moments(keyed, o, cluster_col, ["_cp", "_k", "bucket"])
    stats: Dict[tuple, Dict[str, object]] = {}
    for r in rows:
        stats.setdefault((r["campaign_id"], r["k"]), {})[r["bucket"]] = r
    out: List[Dict[str, object]] = []
    for (campaign_id, action), by_bucket in sorted(stats.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        t, c = by_bucket.get(policy_bucket), by_bucket.get(holdout_bucket)
        for i, o in enumerate(outcomes):
            n_t = int(t["n"]) if t else 0
            n_c = int(c["n"]) if c else 0
            m_t = float(t[f"m{i}"]) if t and t[f"m{i}"] is not None else float("nan")
            m_c = float(c[f"m{i}"]) if c and c[f"m{i}"] is not None else float("nan")
            v_t = float(t[f"v{i}"]) if t and t[f"v{i}"] is not None else float("nan")
            v_c = float(c[f"v{i}"]) if c and c[f"v{i}"] is not None else float("nan")
            diff, se, low, high, dof = welch_interval(m_t, v_t, n_t, m_c, v_c, n_c, cfg.ci_level)
            if cluster_col is not None:
                diff, se, low, high, dof = _cluster_interval(clustered[o], campaign_id, action, policy_bucket,
                                                             holdout_bucket, cfg.ci_level)
            expected = float("nan")
            if has_expected and t is not None and t["exp"] is not None and o == (expected_outcome or outcomes[0]):
                expected = float(t["exp"])
            status, message = "ok", ""
            if n_t < cfg.min_group_size or n_c < cfg.min_group_size:
                message = f"too few customers to judge (treated {n_t}, holdout {n_c}, need {cfg.min_group_size})"
            elif not math.isnan(high) and high < 0:
                status, message = "alert", f"{action!r} lowers {o}: {diff:+.4f} [{low:+.4f}, {high:+.4f}]"
            elif not math.isnan(expected) and not math.isnan(low) and not (low <= expected <= high):
                status = "warn"
                message = f"expected {expected:+.4f} outside realized [{low:+.4f}, {high:+.4f}] for {action!r}"
            out.append({
                "campaign_id": campaign_id, "action": action, "outcome": o, "n_treated": n_t, "n_holdout": n_c,
                "mean_treated": m_t, "mean_holdout": m_c, "realized_uplift": diff, "se": se, "ci_low": low,
                "ci_high": high, "dof": dof, "expected_uplift": expected, "status": status, "message": message,
            })
    return pd.DataFrame(out, columns=list(REALIZED_COLUMNS))


def _cluster_interval(moments, campaign_id, action, policy_bucket: str, holdout_bucket: str, ci_level: float):
    """(diff, cluster-robust se, low, high, dof) of treated minus holdout; NaN below two clusters a group."""
    from scipy import stats

    t = moments.get((campaign_id, action, policy_bucket))
    c = moments.get((campaign_id, action, holdout_bucket))
    if t is None or c is None or t.n == 0 or c.n == 0:
        nan = float("nan")
        return nan, nan, nan, nan, nan
    diff, se = difference_se(t, c)
    dof = t.clusters + c.clusters - 2.0
    if t.clusters < 2 or c.clusters < 2 or not math.isfinite(se):
        return diff, float("nan"), float("nan"), float("nan"), dof
    q = float(stats.t.ppf(0.5 + ci_level / 2.0, dof))
    return diff, se, diff - q * se, diff + q * se, dof
