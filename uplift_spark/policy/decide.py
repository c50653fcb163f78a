"""One action per customer: values → eligibility → buckets → constrained allocation → decisions.

``decide(df_wide, policy_cfg, treatment_arms)`` takes one row per customer with ``uplift_<arm>`` per
arm (and the eligibility flags ``eligible_<arm>`` or the columns the rules read) and returns the
decisions DataFrame (lazy, customer-level, without ``run_id``/``decided_at``) and a small
:class:`DecisionSummary`. Exploration contacts are fixed by the hash; they are charged to the budget and
the capacities first, and the policy bucket gets what remains (``top_k`` counts policy contacts only).
Holdout and explore customers also get ``policy_action``: what the policy rule, with the same
multipliers, would have chosen for them.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..config import PolicyConfig
from ..errors import PolicyError
from ..logs import get_logger
from ..schemas import uplift_column
from .allocate import Allocation, Limits, LocalRows, Solver, choose, frame_values, value_col
from .buckets import EXPLORE, HOLDOUT, POLICY, assign_buckets, unit_hash
from .eligibility import add_eligibility, eligible_column
from .frequency import FREQUENCY_CAP, apply_caps, check_channels
from .reasons import NONE, reason_column
from .summary import DecisionSummary
from .value import add_values, economics, policy_arms, value_column

log = get_logger("policy")

DECISION_COLUMNS = ("campaign_id", "customer_id", "action", "expected_value", "expected_uplift", "bucket",
                    "policy_action", "reason")


def check_constraints(policy_cfg: PolicyConfig, arms: Sequence[str]) -> None:
    """Config-level infeasibility and inconsistency, raised before any Spark work."""
    p = policy_cfg
    if p.policy == "budget" and p.budget is None:
        raise PolicyError("policy.budget: required when policy.policy is 'budget'")
    if p.policy == "top_k" and p.top_k is None:
        raise PolicyError("policy.top_k: required when policy.policy is 'top_k'")
    if p.budget is not None and p.budget < 0:
        raise PolicyError(f"policy.budget: {p.budget!r} is negative")
    if p.top_k is not None and p.top_k < 0:
        raise PolicyError(f"policy.top_k: {p.top_k!r} is negative")
    for arm in arms:
        cap = economics(p, arm).capacity
        if cap is not None and cap < 0:
            raise PolicyError(f"policy.arms.{arm}.capacity: {cap!r} is negative")
    if p.holdout_share + p.explore_share >= 1.0:
        raise PolicyError("policy: holdout_share + explore_share must be below 1")
    # per-customer costs, fairness and guardrails go to the multi-constraint path (policy/rules.py);
    # frequency caps are eligibility (policy/frequency.py)
    check_channels(p, arms)


def _prepare(df_wide, policy_cfg: PolicyConfig, arms: Sequence[str], treatment_arms, id_col: str):
    from pyspark.sql import functions as F

    if id_col not in df_wide.columns:
        raise PolicyError(f"policy: input has no customer id column {id_col!r}")
    df = add_values(df_wide, policy_cfg, treatment_arms)
    df = add_eligibility(df, policy_cfg, arms)
    df = assign_buckets(df, policy_cfg, arms, id_col)
    cols = [F.col(id_col).cast("string").alias("customer_id"), "bucket", "explore_arm", "tie_u", FREQUENCY_CAP,
            unit_hash(id_col, policy_cfg.salt + "#sample").alias("sample_u")]
    for k, arm in enumerate(arms):
        value, elig = F.col(value_column(arm)), F.col(eligible_column(arm))
        cols += [
            F.when(elig & (value >= F.lit(float(policy_cfg.min_value))), value).alias(value_col(k)),
            value.alias(f"w_{k}"),
            F.col(uplift_column(arm)).cast("double").alias(f"t_{k}"),
            elig.alias(f"e_{k}"),
        ]
    return df.select(*cols)


def _limits(policy_cfg: PolicyConfig, arms, explore_counts) -> Tuple[Limits, dict]:
    costs = tuple(float(economics(policy_cfg, a).cost) for a in arms)
    explore_spend = float(np.dot(costs, explore_counts))
    budget = None
    if policy_cfg.budget is not None:
        budget = float(policy_cfg.budget) - explore_spend
        if budget < -1e-9:
            raise PolicyError(
                f"policy: infeasible: exploration alone costs {explore_spend:.2f} > budget {policy_cfg.budget:.2f}; "
                "lower policy.explore_share or raise policy.budget")
        budget = max(budget, 0.0)
    caps = []
    for arm, used in zip(arms, explore_counts):
        cap = economics(policy_cfg, arm).capacity
        if cap is not None and used > cap:
            raise PolicyError(
                f"policy.arms.{arm}.capacity: infeasible: exploration alone contacts {int(used)} > capacity {cap}; "
                "lower policy.explore_share or raise the capacity")
        caps.append(None if cap is None else float(cap - used))
    contacts = float(policy_cfg.top_k) if policy_cfg.policy == "top_k" else None
    return Limits(costs, budget, tuple(caps), contacts), {"explore_spend": explore_spend}


def _drop_slack(limits: Limits, positive: Sequence[float], max_spend: float) -> Limits:
    """Constraints that cannot bind (fewer positive-value customers than the capacity, or a budget above
    what contacting everyone with their costliest positive arm would cost) need no multiplier search."""
    import dataclasses

    caps = tuple(None if cap is not None and positive[k] <= cap else cap for k, cap in enumerate(limits.capacity))
    budget = None if limits.budget is not None and max_spend <= limits.budget else limits.budget
    contacts = None if limits.contacts is not None and sum(positive) <= limits.contacts else limits.contacts
    return dataclasses.replace(limits, capacity=caps, budget=budget, contacts=contacts)


def _solve(policy_rows, limits: Limits, arms: Sequence[str], policy_cfg: PolicyConfig, vmax: float,
           n_policy: int) -> Tuple[Allocation, dict]:
    """The multiplier search, bracketed on a bounded seeded sample when the population is larger.

    The sample is the policy rows whose ``sample_u`` hash (salted id, independent of buckets and tie
    breaks) is below ``search_sample_rows / n_policy``: the same customers for the same salt whatever
    the partitioning, at most ``2·search_sample_rows`` rows on the driver. The search on it (limits
    scaled by the sample share) only places the windows of the exact search on the full rows, which
    still checks every candidate on exact counts: the guarantees (never over a limit, the dual-gap
    certificate) do not depend on the sample. A population within the sample size is solved on the
    driver outright, with the same NumPy rule and no aggregation pass.
    """
    from pyspark.sql import functions as F

    k_arms = len(arms)
    cols = [value_col(k) for k in range(k_arms)] + ["tie_u"]
    kw = dict(grid_points=policy_cfg.grid_points, max_passes=policy_cfg.bisection_iterations,
              gap_tol=policy_cfg.dual_gap_tol)
    info = {"sample_rows": 0, "sample_passes": 0}
    cap = int(policy_cfg.search_sample_rows)
    if not limits.coordinates() or not vmax > 0 or cap <= 0 or n_policy <= 0:
        return Solver(policy_rows.select(*cols), limits, arms, **kw).solve(vmax), info
    share = min(1.0, cap / float(n_policy))
    sample = policy_rows if share >= 1.0 else policy_rows.where(F.col("sample_u") < F.lit(share))
    pdf = sample.select(*cols).limit(2 * cap).toPandas()  # bounded by config, not by the population
    pdf = pdf.sort_values(["tie_u"] + cols[:-1], kind="mergesort").reset_index(drop=True)  # order-free
    local = LocalRows.from_pandas(pdf, k_arms)
    info["sample_rows"] = len(local)
    if share >= 1.0:
        alloc = Solver(local, limits, arms, **kw).solve(vmax)
        info["sample_passes"], alloc.passes = alloc.passes, 0
        return alloc, info
    if len(local) == 0:
        return Solver(policy_rows.select(*cols), limits, arms, **kw).solve(vmax), info
    # on the sample: grid_points candidates per pass and a coarser stop (sampling noise is ~1/√rows)
    bracket = Solver(local, limits.scaled(len(local) / float(n_policy)), arms, grid_points=policy_cfg.grid_points,
                     max_passes=policy_cfg.bisection_iterations, zoom_points=policy_cfg.grid_points,
                     zoom_stop=1e-3).solve(vmax, multipliers_only=True)
    info["sample_passes"] = bracket.passes
    log.info("policy search: %d-row sample brackets the multipliers at %s", len(local), bracket.multipliers)
    window = min(0.5, max(0.02, 8.0 / np.sqrt(len(local))))  # a few sampling sds of a multiplier
    solver = Solver(policy_rows.select(*cols), limits, arms, refine_points=policy_cfg.grid_points, window=window, **kw)
    return solver.solve(vmax, start=bracket.mult), info


def _final_rows(frame, arms, alloc, labels):
    """Customer-level decisions with the exact numpy rule the solver counted (mapInPandas)."""
    from pyspark.sql import functions as F

    k_arms = len(arms)
    nu_hi, nu_lo, theta = alloc.nu_hi.tolist(), alloc.nu_lo.tolist(), float(alloc.theta)
    names = np.array(list(arms) + [NONE], dtype=object)  # index -1 → "none"

    def assign(batches):
        import pandas as pd

        hi, lo = np.array([nu_hi]), np.array([nu_lo])
        lab = np.array(list(labels) + [""], dtype=object)
        for pdf in batches:
            vals = frame_values(pdf, k_arms)
            w = pdf[[f"w_{k}" for k in range(k_arms)]].to_numpy(dtype=float, na_value=np.nan)
            t = pdf[[f"t_{k}" for k in range(k_arms)]].to_numpy(dtype=float, na_value=np.nan)
            e = pdf[[f"e_{k}" for k in range(k_arms)]].to_numpy(dtype=bool)
            pol = choose(vals, pdf["tie_u"].to_numpy(dtype=float), hi, lo, np.array([theta]))[0]
            n_cand = np.isfinite(vals).sum(axis=1)
            best = np.where(n_cand > 0, vals.argmax(axis=1), -1)
            bucket = pdf["bucket"].to_numpy(dtype=object)
            explore_idx = np.full(len(pdf), -1)
            ex = pdf["explore_arm"].to_numpy(dtype=object)
            for k, arm in enumerate(arms):
                explore_idx[ex == arm] = k
            act = np.where(bucket == POLICY, pol, np.where(bucket == EXPLORE, explore_idx, -1))
            rows = np.arange(len(pdf))
            pick_w = np.where(act >= 0, w[rows, np.maximum(act, 0)], 0.0)
            pick_t = np.where(act >= 0, t[rows, np.maximum(act, 0)], 0.0)
            yield pd.DataFrame({
                "customer_id": pdf["customer_id"], "bucket": bucket,
                "action": names[act], "policy_action": names[pol],
                "expected_value": np.nan_to_num(pick_w), "expected_uplift": np.nan_to_num(pick_t),
                "policy_value": np.where(pol >= 0, w[rows, np.maximum(pol, 0)], np.nan),
                "best_arm": names[best], "best_value": np.where(best >= 0, w[rows, np.maximum(best, 0)], np.nan),
                "binding": lab[best], "n_cand": n_cand.astype("int32"), "n_elig": e.sum(axis=1).astype("int32"),
                FREQUENCY_CAP: pdf[FREQUENCY_CAP].astype(bool),
            })

    schema = ("customer_id string, bucket string, action string, policy_action string, expected_value double, "
              "expected_uplift double, policy_value double, best_arm string, best_value double, binding string, "
              "n_cand int, n_elig int, frequency_cap boolean")
    out = frame.mapInPandas(assign, schema)
    c = F.col
    capped = c(FREQUENCY_CAP) & (c("action") == NONE)
    unchosen = (F.when(capped, F.lit(FREQUENCY_CAP))
                .when(c("n_elig") == 0, F.lit("not eligible for any arm"))
                .when(c("n_cand") == 0, F.lit("no arm above min_value"))
                .otherwise(F.format_string("%s (best value %.2f via %s)", c("binding"), c("best_value"), c("best_arm"))))
    reason = reason_column(unchosen, F.when(capped, F.lit(FREQUENCY_CAP))
                           .otherwise(F.lit("explore: not eligible for any arm")))
    return out.withColumn("reason", reason)


def decide(df_wide, policy_cfg: PolicyConfig, treatment_arms: Sequence[str], id_col: str = "customer_id"):
    """Choose at most one action per customer. Returns ``(decisions_df, DecisionSummary)``.

    ``decisions_df`` columns: campaign_id, customer_id, action, expected_value, expected_uplift, bucket,
    policy_action, reason. Raises :class:`PolicyError` for unknown arms, bad eligibility rules and
    infeasible constraints (before anything is returned, so a pipeline writes nothing).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    arms = policy_arms(policy_cfg, treatment_arms)
    check_constraints(policy_cfg, arms)
    df_wide = apply_caps(df_wide, policy_cfg, arms)  # capped_<arm> columns, when joined, as eligibility
    from .rules import decide_rules, needs_rules

    if needs_rules(policy_cfg, arms):
        return decide_rules(df_wide, policy_cfg, arms, treatment_arms, id_col)
    frame = _prepare(df_wide, policy_cfg, arms, treatment_arms, id_col)
    k_arms = len(arms)

    # the narrow frame every pass reads: computed once (by the stats job), released after the search
    narrow = frame.select("bucket", "explore_arm", *[value_col(k) for k in range(k_arms)], "tie_u", "sample_u")
    narrow = narrow.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = narrow.agg(
            *[F.sum(F.when((F.col("bucket") == EXPLORE) & (F.col("explore_arm") == arm), 1).otherwise(0)).alias(f"x{k}")
              for k, arm in enumerate(arms)],
            F.max(F.when(F.col("bucket") == POLICY,
                         F.greatest(*[F.coalesce(F.col(value_col(k)), F.lit(float("-inf"))) for k in range(k_arms)]
                                    + [F.lit(float("-inf"))]))).alias("vmax"),
            *[F.sum(F.when((F.col("bucket") == POLICY) & (F.col(value_col(k)) > 0), 1).otherwise(0)).alias(f"p{k}")
              for k in range(k_arms)],
            F.sum(F.when(F.col("bucket") == POLICY, F.greatest(
                *[F.when(F.col(value_col(k)) > 0, F.lit(float(economics(policy_cfg, a).cost))) for k, a in enumerate(arms)]
                + [F.lit(0.0)])).otherwise(0.0)).alias("max_spend"),
            F.sum(F.when(F.col("bucket") == POLICY, 1).otherwise(0)).alias("n_policy"),
            F.count(F.lit(1)).alias("n"),
        ).collect()[0]
        if stats["n"] == 0:
            raise PolicyError("policy: the population to decide on is empty")
        explore_counts = [float(stats[f"x{k}"]) for k in range(k_arms)]
        limits, _ = _limits(policy_cfg, arms, explore_counts)
        limits = _drop_slack(limits, [float(stats[f"p{k}"]) for k in range(k_arms)], float(stats["max_spend"]))
        vmax = float(stats["vmax"]) if stats["vmax"] is not None else float("-inf")
        policy_rows = narrow.where(F.col("bucket") == POLICY)
        alloc, search = _solve(policy_rows, limits, arms, policy_cfg, vmax, int(stats["n_policy"] or 0))
    finally:
        narrow.unpersist()
    labels = alloc.labels(arms)
    decisions = _final_rows(frame, arms, alloc, labels)

    costs = dict(zip(arms, limits.costs))
    agg = decisions.groupBy("bucket", "action").agg(
        F.count(F.lit(1)).alias("customers"), F.sum("expected_uplift").alias("expected_uplift"),
        F.sum("expected_value").alias("expected_value")).collect()
    allocation = sorted(({"bucket": r["bucket"], "action": r["action"], "customers": int(r["customers"]),
                          "cost": float(r["customers"]) * costs.get(r["action"], 0.0),
                          "expected_uplift": float(r["expected_uplift"] or 0.0),
                          "expected_value": float(r["expected_value"] or 0.0)} for r in agg),
                        key=lambda r: (r["bucket"], r["action"]))
    constraints = []
    contacts = {a: sum(r["customers"] for r in allocation if r["action"] == a and r["bucket"] != HOLDOUT) for a in arms}
    if policy_cfg.budget is not None:
        constraints.append({"constraint": "budget", "used": float(sum(contacts[a] * costs[a] for a in arms)),
                            "limit": float(policy_cfg.budget), "multiplier": alloc.multipliers.get("budget", 0.0)})
    for a in arms:
        cap = economics(policy_cfg, a).capacity
        if cap is not None:
            constraints.append({"constraint": f"capacity:{a}", "used": float(contacts[a]), "limit": float(cap),
                                "multiplier": alloc.multipliers.get(f"capacity:{a}", 0.0)})
    if policy_cfg.policy == "top_k":
        used = sum(r["customers"] for r in allocation if r["action"] != NONE and r["bucket"] == POLICY)
        constraints.append({"constraint": "top_k", "used": float(used), "limit": float(policy_cfg.top_k),
                            "multiplier": alloc.multipliers.get("top_k", 0.0)})
    summary = DecisionSummary(policy=policy_cfg.policy, campaign_id=policy_cfg.campaign_id, arms=list(arms),
                              allocation=allocation, constraints=constraints, multipliers=alloc.multipliers,
                              fill_threshold=alloc.theta, passes=alloc.passes,
                              sample_passes=search["sample_passes"], sample_rows=search["sample_rows"],
                              dual_gap=alloc.dual_gap)
    log.info("policy %s: %d aggregation passes over the population (+%d on a %d-row sample), dual gap %s, "
             "multipliers %s", policy_cfg.policy, alloc.passes, search["sample_passes"], search["sample_rows"],
             "n/a" if alloc.dual_gap is None else f"{alloc.dual_gap:.2e}", alloc.multipliers)
    out = decisions.withColumn("campaign_id", F.lit(policy_cfg.campaign_id)).select(*DECISION_COLUMNS)
    return out, summary
