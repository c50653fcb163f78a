"""Contact-frequency caps: at most ``max_contacts`` contacts in the last ``window_days`` per channel.

The contacts are the ``contact_history`` rows (every campaign, actions other than ``holdout``/``none``)
with ``as_of − window_days < contacted_at ≤ as_of``; ``as_of`` is fixed per run (config or CLI) so a rerun
sees the same contacts, and the run's own rows never count against it (republishing then deciding again
must not cap its own customers). A rule with a channel counts and blocks only that channel's contacts
and arms; without one, every contact and every arm. A customer at the cap of a rule is not eligible
for the arms it blocks: it is an eligibility rule, so the solver, the exploration draw and the counts
all see it; one blocked from every arm it was otherwise eligible for gets the reason ``frequency_cap``.

Everything here is a Spark aggregation or join: the history is never collected.
"""

from __future__ import annotations

import datetime
from typing import List, Optional, Sequence

from ..config import FrequencyRule, PolicyConfig, parse_timestamp
from ..errors import ConfigError, PolicyError
from ..schemas import slug
from .eligibility import add_eligibility, eligible_column
from .value import economics

FREQUENCY_CAP = "frequency_cap"  # decisions.reason and the decide frame's flag column
NOT_CONTACTED = ("holdout", "none")


def capped_column(arm: str) -> str:
    return f"capped_{slug(arm)}"


def as_of_time(value: Optional[str] = None) -> datetime.datetime:
    """The window's end as naive UTC: ``value`` (ISO) or now, to the second."""
    if value is None:
        return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
    try:
        return parse_timestamp(value, "policy.as_of")
    except ConfigError as exc:
        raise PolicyError(str(exc)) from None


def rule_applies(rule: FrequencyRule, policy_cfg: PolicyConfig, arm: str) -> bool:
    return rule.channel is None or economics(policy_cfg, arm).channel == rule.channel


def check_channels(policy_cfg: PolicyConfig, arms: Sequence[str]) -> None:
    """A channel rule with an arm of unknown channel would silently not cap that arm: refuse it."""
    named = sorted({r.channel for r in policy_cfg.frequency if r.channel is not None})
    if not named:
        return
    for arm in arms:
        if economics(policy_cfg, arm).channel is None:
            raise PolicyError(f"policy.arms.{arm}.channel: required when policy.frequency caps a channel "
                              f"({', '.join(named)}); declare the arm's channel")


def capped_flags(history, policy_cfg: PolicyConfig, arms: Sequence[str], as_of: datetime.datetime,
                 exclude_run_id: Optional[str] = None):
    """customer_id + ``capped_<arm>`` (boolean) for the customers at the cap of at least one rule.

    One filtered scan of ``history`` (pruned to the widest window's ``contact_date`` partitions) and
    one aggregation by customer: a count per rule, compared with its cap.
    """
    from pyspark.sql import functions as F

    rules = list(policy_cfg.frequency)
    if not rules:
        raise PolicyError("policy.frequency: no rules to apply")
    check_channels(policy_cfg, arms)
    widest = max(r.window_days for r in rules)
    start = as_of - datetime.timedelta(days=widest)
    h = history.where(F.col("contact_date") >= F.lit(start.date()))  # partition pruning
    h = h.where((F.col("contacted_at") > F.lit(start)) & (F.col("contacted_at") <= F.lit(as_of))
                & F.col("customer_id").isNotNull() & ~F.coalesce(F.col("action"), F.lit("none")).isin(*NOT_CONTACTED))
    if exclude_run_id is not None:
        h = h.where(F.col("run_id") != F.lit(exclude_run_id))
    counts = []
    for i, r in enumerate(rules):
        inside = F.col("contacted_at") > F.lit(as_of - datetime.timedelta(days=r.window_days))
        if r.channel is not None:
            inside = inside & (F.col("channel") == F.lit(r.channel))
        counts.append(F.sum(F.when(inside, 1).otherwise(0)).alias(f"n_{i}"))
    per_customer = h.groupBy("customer_id").agg(*counts)
    at_cap = [F.col(f"n_{i}") >= F.lit(r.max_contacts) for i, r in enumerate(rules)]
    flags = []
    for arm in arms:
        blocking = [c for c, r in zip(at_cap, rules) if rule_applies(r, policy_cfg, arm)]
        flag = F.lit(False)
        for c in blocking:
            flag = flag | c
        flags.append(flag.alias(capped_column(arm)))
    out = per_customer.select("customer_id", *flags)
    any_capped = F.lit(False)
    for arm in arms:
        any_capped = any_capped | F.col(capped_column(arm))
    return out.where(any_capped)


def apply_caps(df_wide, policy_cfg: PolicyConfig, arms: Sequence[str]):
    """Eligibility after the caps, and the ``frequency_cap`` flag (the hook ``decide`` calls first).

    ``capped_<arm>`` columns (joined by the decide pipeline; missing or null = not capped) switch
    ``eligible_<arm>`` off. ``frequency_cap`` is true when a cap removed every arm the customer was
    otherwise eligible for. Without caps the frame only gains ``frequency_cap = false``.
    """
    from pyspark.sql import functions as F

    present = [a for a in arms if capped_column(a) in df_wide.columns]
    if not present:
        return df_wide.withColumn(FREQUENCY_CAP, F.lit(False))
    df = add_eligibility(df_wide, policy_cfg, arms)
    capped = {a: F.coalesce(F.col(capped_column(a)), F.lit(False)) if a in present else F.lit(False) for a in arms}
    blocked_any, left_any = F.lit(False), F.lit(False)
    for a in arms:
        blocked_any = blocked_any | (F.col(eligible_column(a)) & capped[a])
        left_any = left_any | (F.col(eligible_column(a)) & ~capped[a])
    df = df.withColumn(FREQUENCY_CAP, blocked_any & ~left_any)
    for a in arms:
        df = df.withColumn(eligible_column(a), F.col(eligible_column(a)) & ~capped[a])
    return df


def contact_rows(decisions, policy_cfg: PolicyConfig):
    """``contact_history`` rows of one run's decisions: every contact (action = the arm, channel = the
    arm's) and every holdout customer (action ``holdout``, not contacted); ``contacted_at`` is the run's
    ``decided_at``, so publishing the same run again gives the same rows."""
    from pyspark.sql import functions as F

    channel = F.lit(None).cast("string")
    for arm, econ in policy_cfg.arms.items():
        if econ.channel is not None:
            channel = F.when(F.col("action") == F.lit(arm), F.lit(econ.channel)).otherwise(channel)
    holdout = F.col("bucket") == F.lit("holdout")
    rows = decisions.where((F.col("action") != F.lit("none")) | holdout)
    return rows.select(
        "customer_id", "campaign_id",
        F.when(holdout, F.lit(None).cast("string")).otherwise(channel).alias("channel"),
        F.when(holdout, F.lit("holdout")).otherwise(F.col("action")).alias("action"),
        F.col("decided_at").alias("contacted_at"), "run_id",
        F.to_date("decided_at").alias("contact_date"))


def rule_names(policy_cfg: PolicyConfig) -> List[str]:
    """Readable rules for logs and summaries: ``3 per 30d on email``."""
    return [f"{r.max_contacts} per {r.window_days}d on {r.channel or 'any channel'}" for r in policy_cfg.frequency]
