"""``uplift-spark decide``: one action per customer from the run's ``scores`` → ``decisions`` and
``decision_summary``.

Eligibility rules read population columns, which ``scores`` does not carry: the rules are evaluated on
the population (``--population`` / ``policy.population`` / the run's ``experiment_log``, as in ``score``)
and only the boolean ``eligible_<arm>`` flags are joined to the scores by customer id. A scored customer
missing from the population is not eligible for arms that have a rule. Values are recomputed from the
stored uplifts with the current ``policy`` config. Every check (arms, rules, constraints) runs before the
first write, so a bad config writes nothing; each table is written in one commit per run id.

Frequency caps (``policy.frequency``) count the published ``contact_history`` up to ``--as-of`` /
``policy.as_of`` (default: now); the capped customers' ``capped_<arm>`` flags are joined like the
eligibility flags (no history yet: nobody is capped).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

from ..errors import PolicyError
from ..logs import get_logger
from ..policy import decide, outcome_uplift_column, policy_arms
from ..policy.decide import check_constraints
from ..policy.rules import needs_rules
from ..policy.eligibility import eligible_column, has_rules, rule_expression
from ..policy.frequency import as_of_time, capped_flags, rule_names
from ..policy.value import economics
from ..schemas import conform, slug, uplift_column
from .calibrate_values import CALIBRATED_CI_COLUMNS, CALIBRATED_COLUMNS, add_calibrated, calibrated_uplift_frame, \
    calibrated_value_interval, calibration_maps, summary_with_calibration
from .context import RunContext
from .score import cost_model_outcomes, load_population

log = get_logger("decide")


def _treatment_arms(ctx: RunContext, scores) -> List[str]:
    arms = sorted(r["arm"] for r in scores.select("arm").distinct().collect())
    try:
        from ..learners import load_manifest

        order = list(load_manifest(ctx.model_dir)["treatment_arms"])
        return [a for a in order if a in arms] + [a for a in arms if a not in order]
    except Exception:  # noqa: BLE001 - scores alone are enough; the manifest only fixes the order
        return arms


def wide_scores(scores, treatment_arms: List[str], risk_outcome: Optional[str] = None,
                guardrail_outcomes: Sequence[str] = (), mean_outcomes: Optional[Dict[str, List[str]]] = None):
    """One row per customer: ``uplift_<arm>`` (and ``uplift_<arm>__<outcome>`` for the risk and the
    guardrail outcomes, ``mu_<arm>__<outcome>`` for expected-cost models) from long scores."""
    from pyspark.sql import functions as F

    from ..policy.costs import outcome_mu_column

    aggs = [F.max(F.when(F.col("arm") == arm, F.col("uplift"))).alias(uplift_column(arm)) for arm in treatment_arms]
    seen = set()
    for key, outcome in [("policy.risk.outcome", risk_outcome)] + [("policy.guardrails", o) for o in guardrail_outcomes]:
        if not outcome or outcome in seen:
            continue
        seen.add(outcome)
        col = f"uplift_{slug(outcome)}"
        if col not in scores.columns:
            raise PolicyError(f"{key}: scores have no {col!r} column for outcome {outcome!r}: rerun score with that "
                              "outcome's model")
        aggs += [F.max(F.when(F.col("arm") == arm, F.col(col))).alias(outcome_uplift_column(arm, outcome))
                 for arm in treatment_arms]
    for outcome, arms in (mean_outcomes or {}).items():
        col = f"mu_{slug(outcome)}"
        if col not in scores.columns:
            raise PolicyError(f"policy.arms.{arms[0]}.cost: scores have no {col!r} column (the predicted "
                              f"{outcome!r} per arm): rerun score with this policy config")
        aggs += [F.max(F.when(F.col("arm") == arm, F.col(col))).alias(outcome_mu_column(arm, outcome)) for arm in arms]
    return scores.groupBy("customer_id").agg(*aggs)


def rule_columns(population, policy_cfg, arms: List[str]):
    """customer_id + what the business rules read from the population: ``cost_<arm>`` for arms whose
    cost is a column/expression (checked now) and the fairness group column; None when nothing."""
    from pyspark.sql import functions as F

    from ..policy.costs import cost_column, cost_expression, cost_spec

    exprs = []
    for a in arms:
        spec = cost_spec(economics(policy_cfg, a), a)
        if isinstance(spec, str):
            exprs.append(F.first(cost_expression(population, a, spec)).alias(cost_column(a)))
    group = policy_cfg.fairness.group
    if group is not None:
        if group not in population.columns:
            raise PolicyError(f"policy.fairness.group: column {group!r} is not in the population")
        exprs.append(F.first(F.col(group)).alias(group))
    if not exprs:
        return None
    return population.groupBy("customer_id").agg(*exprs)


def eligibility_flags(population, policy_cfg, arms: List[str]):
    """customer_id + ``eligible_<arm>`` per arm with a rule (checked now: a bad rule raises here)."""
    from pyspark.sql import functions as F

    ruled = [a for a in arms if economics(policy_cfg, a).eligibility]
    exprs = [rule_expression(population, a, economics(policy_cfg, a).eligibility).alias(eligible_column(a))
             for a in ruled]
    flags = population.select("customer_id", *exprs)
    return flags.groupBy("customer_id").agg(*[F.bool_and(eligible_column(a)).alias(eligible_column(a)) for a in ruled])


def frequency_flags(ctx: RunContext, arms: List[str], as_of: Optional[str] = None):
    """customer_id + ``capped_<arm>`` for customers at a frequency cap, or None without history."""
    p = ctx.cfg.policy
    when = as_of_time(as_of or p.as_of)
    if not ctx.store.exists("contact_history"):
        log.info("frequency caps (%s): no contact_history yet, nobody is capped", "; ".join(rule_names(p)))
        return None
    log.info("frequency caps (%s) as of %s", "; ".join(rule_names(p)), when.isoformat())
    return capped_flags(ctx.store.read("contact_history"), p, arms, when, exclude_run_id=ctx.run_id)


def run(ctx: RunContext, population: Optional[str] = None, as_of: Optional[str] = None, **_) -> dict:
    from pyspark.sql import functions as F

    cfg = ctx.cfg
    p = cfg.policy
    scores = ctx.store.read_run("scores", ctx.run_id)
    treatment_arms = _treatment_arms(ctx, scores)
    arms = policy_arms(p, treatment_arms)
    check_constraints(p, arms)
    risk = p.risk.outcome if (p.risk.outcome and p.risk.weight > 0) else None
    wide = wide_scores(scores, treatment_arms, risk, [g.outcome for g in p.guardrails],
                       cost_model_outcomes(p, arms))
    if has_rules(p, arms):
        flags = eligibility_flags(load_population(ctx, population), p, arms)
        wide = wide.join(flags, "customer_id", "left")
    ruled = rule_columns(load_population(ctx, population), p, arms) if needs_rules(p, arms) else None
    if ruled is not None:  # a scored customer missing from the population: null cost → no candidate
        wide = wide.join(ruled, "customer_id", "left")
    capped = frequency_flags(ctx, arms, as_of) if p.frequency else None
    if capped is not None:
        wide = wide.join(capped, "customer_id", "left")
    # the pivot of the scores (and the eligibility join) feeds the search's frame, the summary and the
    # write: computed once (one shuffle) instead of three times, released after the write
    from pyspark import StorageLevel

    # held-out calibration of predicted uplift (before any write: a bad calibration config writes nothing)
    maps, why_not = calibration_maps(ctx, treatment_arms)
    if maps is None:
        if p.calibrated:
            raise PolicyError(f"policy.calibrated: no held-out calibration: {why_not}")
        log.warning("decide: expected_*_calibrated left empty: %s", why_not)
    if p.calibrated:
        wide = calibrated_uplift_frame(wide, maps, arms)
    wide = wide.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        decisions, summary = decide(wide, p, treatment_arms)
        preds = wide.select("customer_id", *[f"__pred_{slug(a)}" for a in arms]) if p.calibrated else None
        decisions = add_calibrated(decisions, maps, p, arms, p.calibrated, preds)
        decided_at = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
        decisions = conform(decisions.withColumn("run_id", F.lit(ctx.run_id))
                                     .withColumn("decided_at", F.lit(decided_at).cast("timestamp")), "decisions")
        loc = ctx.store.write(decisions, "decisions", ctx.run_id)
        written = ctx.store.read("decisions", run_id=ctx.run_id)
        interval = calibrated_value_interval(written, maps, p, arms, ctx.cfg.policy_evaluation.ci_level)
        summary_df = conform(summary_with_calibration(ctx.spark, summary.to_dataframe(ctx.spark, ctx.run_id), written,
                                                      interval), "decision_summary")
        totals = summary_df.where(F.col("kind") == "total").select(*CALIBRATED_COLUMNS, *CALIBRATED_CI_COLUMNS).collect()
        loc_summary = ctx.store.write(summary_df, "decision_summary", ctx.run_id)
    finally:
        wide.unpersist()
    out = summary.to_dict()
    if totals:
        out.update({c: None if totals[0][c] is None else round(float(totals[0][c]), 4)
                    for c in CALIBRATED_COLUMNS + CALIBRATED_CI_COLUMNS})
    out["calibrated"] = bool(p.calibrated)
    out.update({"table": loc, "summary_table": loc_summary, "campaign_id": p.campaign_id})
    log.info("decide: %d contacts, expected value %.2f (calibrated %s); multiplier search: %d passes over the population "
             "+ %d on a %d-row sample, dual gap %s", out["contacts"], out["expected_value"], out.get("expected_value_calibrated"),
             out["aggregation_passes"], out["sample_passes"], out["search_sample_rows"], out["dual_gap"])
    return out
