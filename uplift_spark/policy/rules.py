"""``decide`` under business rules: per-customer costs, fairness/coverage across groups and guardrail
outcomes, solved jointly by :class:`uplift_spark.policy.lagrange.MultiSolver`.

Why a separate path: the constant-cost path (:mod:`policy.allocate`) prices arms only; here every
customer has its own prices (cost × budget multiplier, group and guardrail terms), so the narrow
frame carries per-row costs ``c_k``, the group code ``grp`` and the aggregate guardrails' uplifts
``u<q>_k``. Per-customer guardrails (``max_uplift``) are eligibility: a blocked arm is no candidate in
any bucket (exploration included), and the reason names the guardrail.

Scale: the population is read by Spark aggregations only (stats, one margins scan, one collect of at
most ``policy.exact_rows`` marginal rows, plus price-search passes only when the exact fill fails).
A population within ``policy.search_sample_rows`` is solved on the driver outright; a larger one
starts from the smoothed dual of a seeded, bounded hash sample.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..config import PolicyConfig
from ..errors import PolicyError
from ..logs import get_logger
from ..schemas import uplift_column
from .buckets import EXPLORE, HOLDOUT, POLICY, assign_buckets, unit_hash
from .costs import add_costs, cost_column, varies
from .eligibility import add_eligibility, eligible_column
from .frequency import FREQUENCY_CAP
from .lagrange import KEY, Layout, MultiSolver, Rows, assign, business_constraints, row_columns
from .reasons import NONE, reason_column
from .summary import DecisionSummary
from .value import add_values, economics, outcome_uplift_column, value_column

log = get_logger("policy")

MAX_GROUPS = 1000


def needs_rules(policy_cfg: PolicyConfig, arms: Sequence[str]) -> bool:
    """Does this decision need the multi-constraint path?"""
    return varies(policy_cfg, arms) or policy_cfg.fairness.group is not None or bool(policy_cfg.guardrails)


def _guard_columns(df, policy_cfg: PolicyConfig, arms: Sequence[str]) -> None:
    for i, g in enumerate(policy_cfg.guardrails):
        for arm in arms:
            col = outcome_uplift_column(arm, g.outcome)
            if col not in df.columns:
                raise PolicyError(
                    f"policy.guardrails[{i}]: no predicted uplift of {g.outcome!r} for arm {arm!r} (expected column "
                    f"{col!r}; score a model trained on that outcome)")


def _prepare(df_wide, policy_cfg: PolicyConfig, arms, treatment_arms, id_col: str):
    """Costs, values, eligibility (SQL rules, then per-customer guardrails), buckets, group codes."""
    from pyspark.sql import functions as F

    p = policy_cfg
    if id_col not in df_wide.columns:
        raise PolicyError(f"policy: input has no customer id column {id_col!r}")
    _guard_columns(df_wide, p, arms)
    group = p.fairness.group
    if group is not None and group not in df_wide.columns:
        raise PolicyError(f"policy.fairness.group: column {group!r} is not in the population to decide on")
    df = add_costs(df_wide, p, arms)
    df = add_values(df, p, treatment_arms)
    df = add_eligibility(df, p, arms)
    caps = [(g.outcome, float(g.max_uplift)) for g in p.guardrails if g.max_uplift is not None]
    for arm in arms:
        ok = F.lit(True)
        for outcome, top in caps:  # unknown risk is not "below the threshold": blocked
            ok = ok & F.coalesce(F.col(outcome_uplift_column(arm, outcome)).cast("double") <= F.lit(top), F.lit(False))
        df = df.withColumn(f"r_{eligible_column(arm)}", F.col(eligible_column(arm)))
        df = df.withColumn(eligible_column(arm), F.col(eligible_column(arm)) & ok)
    blocked = F.lit(None).cast("string")
    for outcome, top in reversed(caps):  # the first guardrail (config order) that blocks an allowed arm
        hit = None
        for arm in arms:
            c = F.col(f"r_{eligible_column(arm)}") & ~F.coalesce(
                F.col(outcome_uplift_column(arm, outcome)).cast("double") <= F.lit(top), F.lit(False))
            hit = c if hit is None else hit | c
        blocked = F.when(hit, F.lit(f"guardrail:{outcome}")).otherwise(blocked)
    if FREQUENCY_CAP in df.columns:  # every arm the customer could get is capped (policy/frequency.py)
        blocked = F.when(F.col(FREQUENCY_CAP), F.lit(FREQUENCY_CAP)).otherwise(blocked)
    df = df.withColumn("guard_reason", blocked)
    df = assign_buckets(df, p, arms, id_col)
    floors = [g for g in p.guardrails if g.min_total_uplift is not None]
    cols = [F.col(id_col).cast("string").alias(KEY), "bucket", "explore_arm", "tie_u", "guard_reason",
            unit_hash(id_col, p.salt + "#sample").alias("sample_u"),
            (F.col(group).cast("string") if group else F.lit("all")).alias("group_value")]
    for k, arm in enumerate(arms):
        value, elig = F.col(value_column(arm)), F.col(eligible_column(arm))
        cols += [
            F.when(elig & (value >= F.lit(float(p.min_value))), value).alias(f"v_{k}"),
            F.col(cost_column(arm)).alias(f"c_{k}"),
            value.alias(f"w_{k}"),
            F.col(uplift_column(arm)).cast("double").alias(f"t_{k}"),
            elig.alias(f"e_{k}"),
            F.col(f"r_{eligible_column(arm)}").alias(f"r_{k}"),
        ]
        cols += [F.coalesce(F.col(outcome_uplift_column(arm, g.outcome)).cast("double"), F.lit(0.0)).alias(f"u{q}_{k}")
                 for q, g in enumerate(floors)]
    return df.select(*cols), floors


def _group_codes(frame, group: str) -> Tuple[List[str], List[float], object]:
    """Group names and policy-bucket sizes (one small aggregation) and the frame with ``grp`` codes."""
    from pyspark.sql import functions as F

    rows = (frame.where(F.col("bucket") == POLICY).groupBy("group_value").count()
                 .orderBy("group_value").limit(MAX_GROUPS + 1).collect())
    if len(rows) > MAX_GROUPS:
        raise PolicyError(f"policy.fairness.group: column {group!r} has more than {MAX_GROUPS} groups")
    names = ["null" if r["group_value"] is None else str(r["group_value"]) for r in rows]
    sizes = [float(r["count"]) for r in rows]
    mapping = F.create_map(*[x for i, r in enumerate(rows) if r["group_value"] is not None
                             for x in (F.lit(r["group_value"]), F.lit(i))])
    null_code = next((i for i, r in enumerate(rows) if r["group_value"] is None), -1)
    code = F.coalesce(mapping[F.col("group_value")], F.lit(null_code)) if len(rows) else F.lit(0)
    return names, sizes, frame.withColumn("grp", code.cast("long"))


def _solve(narrow, cons_for, layout: Layout, p: PolicyConfig, vmax: float, n_policy: int):
    from pyspark.sql import functions as F

    policy_rows = narrow.where(F.col("bucket") == POLICY)
    cols = row_columns(layout) + [KEY]
    kw = dict(grid_points=min(int(p.grid_points), 32), max_passes=int(p.bisection_iterations),
              gap_tol=float(p.dual_gap_tol), seed=0, exact_rows=int(p.exact_rows),
              exact_seconds=float(p.exact_seconds))
    cap = int(p.search_sample_rows)
    info = {"sample_rows": 0, "sample_passes": 0}
    cons = cons_for(1.0)
    if not cons or not vmax > 0:
        return MultiSolver(Rows(np.zeros((0, layout.k)), layout=layout), cons, layout).solve(vmax), cons, info
    if n_policy <= cap:  # bounded by config: the whole policy bucket on the driver
        pdf = policy_rows.select(*cols).toPandas().sort_values([KEY], kind="mergesort").reset_index(drop=True)
        rows = Rows.from_pandas(pdf, layout)
        alloc = MultiSolver(rows, cons, layout, **kw).solve(vmax)
        info.update(sample_rows=len(rows), sample_passes=alloc.passes)
        alloc.passes = 0
        return alloc, cons, info
    share = cap / float(n_policy)
    pdf = (policy_rows.where(F.col("sample_u") < F.lit(share)).select(*cols).limit(2 * cap).toPandas()
           .sort_values([KEY], kind="mergesort").reset_index(drop=True))
    sample = Rows.from_pandas(pdf, layout)
    info["sample_rows"] = len(sample)
    s_share = len(sample) / float(n_policy)
    local = MultiSolver(sample, cons_for(s_share), layout, **kw)
    m_s = local.soft_dual(sample)
    prices = local.prices(m_s)  # per-row prices are what carries over from the sample to the population
    pop = MultiSolver(policy_rows.select(*cols), cons, layout, scale_rows=sample, scale_share=s_share, **kw)
    from scipy.optimize import nnls

    start = nnls(pop.A.T, prices)[0] if len(cons) else np.zeros(0)
    alloc = pop.solve(vmax, start=start, rows_hint=sample)
    return alloc, cons, info


def _final(frame, arms, layout: Layout, alloc, cons):
    """Customer-level decisions: the solver's rule (prices + the exact fill's choices) on policy rows,
    the explore arm on explore rows; per row the constraint that priced its best arm out."""
    from pyspark.sql import functions as F

    k_arms = len(arms)
    hi, lo, theta = alloc.hi.tolist(), alloc.lo.tolist(), float(alloc.theta)
    override = dict(alloc.override)
    names = np.array(list(arms) + [NONE], dtype=object)
    rule_of = [c.name if c.kind in ("capacity", "guardrail") else c.kind for c in cons]
    # price terms in original units: multiplier × the constraint's coefficient on the row's stats
    weights = [(float(alloc.multipliers.get(c.name, 0.0)) * np.asarray(c.coef, dtype=float)).tolist() for c in cons]

    def run(batches):
        import pandas as pd

        from .lagrange import MultiAllocation

        a = MultiAllocation(np.array(hi), np.array(lo), theta, {}, np.zeros(layout.size), 0.0, {}, 0,
                            override=override)
        wa = np.array(weights, dtype=float).reshape(len(rule_of), layout.size)
        rule_arr = np.array(rule_of + ["constraints"], dtype=object)
        for pdf in batches:
            if not len(pdf):
                continue
            rows = Rows.from_pandas(pdf, layout)
            pol = assign(rows, a)
            n = len(pdf)
            w = pdf[[f"w_{k}" for k in range(k_arms)]].to_numpy(dtype=float, na_value=np.nan)
            t = pdf[[f"t_{k}" for k in range(k_arms)]].to_numpy(dtype=float, na_value=np.nan)
            e = pdf[[f"e_{k}" for k in range(k_arms)]].to_numpy(dtype=bool)
            r = pdf[[f"r_{k}" for k in range(k_arms)]].to_numpy(dtype=bool)
            n_cand = np.isfinite(rows.values).sum(axis=1)
            best = np.where(n_cand > 0, np.argmax(np.where(np.isfinite(rows.values), rows.values, -np.inf), axis=1), -1)
            bucket = pdf["bucket"].to_numpy(dtype=object)
            ex = pdf["explore_arm"].to_numpy(dtype=object)
            explore_idx = np.full(n, -1)
            for k, arm in enumerate(arms):
                explore_idx[ex == arm] = k
            act = np.where(bucket == POLICY, pol, np.where(bucket == EXPLORE, explore_idx, -1))
            idx = np.arange(n)
            b0 = np.maximum(best, 0)
            # the constraint whose price term on the best arm is largest: what excluded the customer
            if len(rule_of):
                per = np.zeros((n, layout.size))
                per[idx, b0] = 1.0
                per[:, layout.spend] = rows.costs[idx, b0]
                if layout.g:
                    per[idx, layout.k + 1 + rows.groups] = 1.0
                for q in range(layout.o):
                    per[:, layout.guard(q)] = rows.guards[idx, b0, q]
                contrib = per @ wa.T
                top = np.argmax(contrib, axis=1)
                binding = np.where(contrib[idx, top] > 0, rule_arr[top], "constraints")
            else:
                binding = np.full(n, "constraints", dtype=object)
            a0 = np.maximum(act, 0)
            yield pd.DataFrame({
                "customer_id": pdf[KEY], "bucket": bucket, "grp": rows.groups,
                "action": names[act], "policy_action": names[pol],
                "expected_value": np.where(act >= 0, np.nan_to_num(w[idx, a0]), 0.0),
                "expected_uplift": np.where(act >= 0, np.nan_to_num(t[idx, a0]), 0.0),
                "cost": np.where(act >= 0, rows.costs[idx, a0], 0.0),
                **{f"gu{q}": np.where(act >= 0, rows.guards[idx, a0, q], 0.0) for q in range(layout.o)},
                "policy_value": np.where(pol >= 0, w[idx, np.maximum(pol, 0)], np.nan),
                "best_arm": names[best], "best_value": np.where(best >= 0, w[idx, b0], np.nan),
                "binding": binding.astype(object), "n_cand": n_cand.astype("int32"),
                "n_elig": e.sum(axis=1).astype("int32"), "n_rule": r.sum(axis=1).astype("int32"),
                "guard_reason": pdf["guard_reason"],
            })

    schema = ("customer_id string, bucket string, grp long, action string, policy_action string, "
              "expected_value double, expected_uplift double, cost double, "
              + "".join(f"gu{q} double, " for q in range(layout.o))
              + "policy_value double, best_arm string, best_value double, binding string, n_cand int, n_elig int, "
              "n_rule int, guard_reason string")
    out = frame.mapInPandas(run, schema)
    c = F.col
    unchosen = (F.when(c("n_rule") == 0, F.when(c("guard_reason") == FREQUENCY_CAP, c("guard_reason"))
                       .otherwise(F.lit("ineligible")))
                .when((c("n_elig") == 0) & c("guard_reason").isNotNull(), c("guard_reason"))
                .when(c("n_cand") == 0, F.lit("no arm above min_value"))
                .otherwise(F.format_string("%s (best value %.2f via %s)", c("binding"), c("best_value"), c("best_arm"))))
    reason = reason_column(unchosen, F.when(c("guard_reason").isNotNull() & (c("n_elig") == 0), c("guard_reason"))
                           .otherwise(F.lit("explore: not eligible for any arm")))
    return out.withColumn("reason", reason)


def decide_rules(df_wide, policy_cfg: PolicyConfig, arms: Sequence[str], treatment_arms, id_col: str = "customer_id"):
    """See the module docstring; same return contract as :func:`uplift_spark.policy.decide`."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    p = policy_cfg
    k_arms = len(arms)
    frame, floors = _prepare(df_wide, p, arms, treatment_arms, id_col)
    group = p.fairness.group
    if group is not None:
        gnames, gsizes, frame = _group_codes(frame, group)
    else:
        gnames, gsizes, frame = [], [], frame.withColumn("grp", F.lit(0).cast("long"))
    layout = Layout(k_arms, len(gnames), len(floors))
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        is_x = lambda k: (F.col("bucket") == EXPLORE) & (F.col("explore_arm") == arms[k])  # noqa: E731
        stats = frame.agg(
            *[F.sum(F.when(is_x(k), 1).otherwise(0)).alias(f"x{k}") for k in range(k_arms)],
            F.sum(F.coalesce(*[F.when(is_x(k), F.col(f"c_{k}")) for k in range(k_arms)], F.lit(0.0))).alias("xspend"),
            *[F.sum(F.coalesce(*[F.when(is_x(k), F.col(f"u{q}_{k}")) for k in range(k_arms)], F.lit(0.0))).alias(f"xg{q}")
              for q in range(len(floors))],
            F.max(F.when(F.col("bucket") == POLICY, F.greatest(
                *[F.coalesce(F.col(f"v_{k}"), F.lit(float("-inf"))) for k in range(k_arms)], F.lit(float("-inf"))))).alias("vmax"),
            F.sum(F.when(F.col("bucket") == POLICY, 1).otherwise(0)).alias("n_policy"),
            F.count(F.lit(1)).alias("n")).collect()[0]
        if stats["n"] == 0:
            raise PolicyError("policy: the population to decide on is empty")
        explore = [float(stats[f"x{k}"]) for k in range(k_arms)]
        budget = None
        if p.budget is not None:
            budget = float(p.budget) - float(stats["xspend"])
            if budget < -1e-9:
                raise PolicyError(f"policy: infeasible: exploration alone costs {stats['xspend']:.2f} > budget "
                                  f"{p.budget:.2f}; lower policy.explore_share or raise policy.budget")
            budget = max(budget, 0.0)
        caps = []
        for arm, used in zip(arms, explore):
            cap = economics(p, arm).capacity
            if cap is not None and used > cap:
                raise PolicyError(f"policy.arms.{arm}.capacity: infeasible: exploration alone contacts {int(used)} > "
                                  f"capacity {cap}; lower policy.explore_share or raise the capacity")
            caps.append(None if cap is None else float(cap - used))
        contacts = float(p.top_k) if p.policy == "top_k" else None
        guard_floors = [(g.outcome, float(g.min_total_uplift) - float(stats[f"xg{q}"])) for q, g in enumerate(floors)]

        def cons_for(share: float):
            sc = lambda x: None if x is None else x * share  # noqa: E731
            return business_constraints(
                layout, arms, budget=sc(budget), capacity=[sc(c) for c in caps], contacts=sc(contacts),
                groups=gnames, group_sizes=[s * share for s in gsizes], max_gap=p.fairness.max_treated_share_gap,
                min_share=dict(p.fairness.min_share), max_share=dict(p.fairness.max_share),
                guardrails=[(o, f * share) for o, f in guard_floors])

        vmax = float(stats["vmax"]) if stats["vmax"] is not None else float("-inf")
        narrow = frame.select(*row_columns(layout), KEY, "bucket", "sample_u")
        alloc, cons, search = _solve(narrow, cons_for, layout, p, vmax, int(stats["n_policy"] or 0))
        decisions = _final(frame, arms, layout, alloc, cons)
        summary = _summary(decisions, p, arms, alloc, cons, gnames, floors, search)
    finally:
        frame.unpersist()
    out = decisions.withColumn("campaign_id", F.lit(p.campaign_id)).select(
        "campaign_id", "customer_id", "action", "expected_value", "expected_uplift", "bucket", "policy_action", "reason")
    return out, summary


def _summary(decisions, p: PolicyConfig, arms, alloc, cons, gnames, floors, search) -> DecisionSummary:
    from pyspark.sql import functions as F

    agg = decisions.groupBy("bucket", "action").agg(
        F.count(F.lit(1)).alias("customers"), F.sum("cost").alias("cost"),
        F.sum("expected_uplift").alias("expected_uplift"), F.sum("expected_value").alias("expected_value"),
        *[F.sum(f"gu{q}").alias(f"gu{q}") for q in range(len(floors))]).collect()
    allocation = sorted(({"bucket": r["bucket"], "action": r["action"], "customers": int(r["customers"]),
                          "cost": float(r["cost"] or 0.0), "expected_uplift": float(r["expected_uplift"] or 0.0),
                          "expected_value": float(r["expected_value"] or 0.0)} for r in agg),
                        key=lambda r: (r["bucket"], r["action"]))
    treated = [r for r in agg if r["action"] != NONE and r["bucket"] != HOLDOUT]
    mult = alloc.multipliers
    rows: List[Dict[str, object]] = []
    if p.budget is not None:
        rows.append({"constraint": "budget", "used": float(sum(r["cost"] or 0.0 for r in treated)),
                     "limit": float(p.budget), "multiplier": mult.get("budget", 0.0)})
    for a in arms:
        cap = economics(p, a).capacity
        if cap is not None:
            rows.append({"constraint": f"capacity:{a}", "used": float(sum(r["customers"] for r in treated if r["action"] == a)),
                         "limit": float(cap), "multiplier": mult.get(f"capacity:{a}", 0.0)})
    if p.policy == "top_k":
        rows.append({"constraint": "top_k", "used": float(sum(r["customers"] for r in treated if r["bucket"] == POLICY)),
                     "limit": float(p.top_k), "multiplier": mult.get("top_k", 0.0)})
    if gnames:  # achieved shares in the policy bucket (what the fairness rows constrain)
        g = {int(r["grp"]): (float(r["n"]), float(r["t"])) for r in decisions.where(F.col("bucket") == POLICY)
             .groupBy("grp").agg(F.count(F.lit(1)).alias("n"), F.sum(F.when(F.col("action") != NONE, 1).otherwise(0)).alias("t"))
             .collect()}
        n_all = sum(v[0] for v in g.values())
        t_all = sum(v[1] for v in g.values())
        share = t_all / n_all if n_all else 0.0
        gap_limit = p.fairness.max_treated_share_gap
        gaps = []
        for i, name in enumerate(gnames):
            n_g, t_g = g.get(i, (0.0, 0.0))
            d = (t_g / n_g - share) if n_g else 0.0
            gaps.append(abs(d))
            if gap_limit is not None:
                m = mult.get(f"fairness:{name}:above", 0.0) + mult.get(f"fairness:{name}:below", 0.0)
                rows.append({"constraint": f"fairness:{name}", "used": float(d), "limit": float(gap_limit), "multiplier": m})
            for key, lim in (("min_share", p.fairness.min_share), ("max_share", p.fairness.max_share)):
                if name in lim:
                    rows.append({"constraint": f"{key}:{name}", "used": float(t_g / t_all) if t_all else 0.0,
                                 "limit": float(lim[name]), "multiplier": mult.get(f"{key}:{name}", 0.0)})
        if gap_limit is not None:
            rows.append({"constraint": "fairness_gap", "used": float(max(gaps, default=0.0)), "limit": float(gap_limit),
                         "multiplier": float(max((v for k, v in mult.items() if k.startswith("fairness:")), default=0.0))})
    for q, gr in enumerate(floors):
        rows.append({"constraint": f"guardrail:{gr.outcome}", "used": float(sum(r[f"gu{q}"] or 0.0 for r in treated)),
                     "limit": float(gr.min_total_uplift), "multiplier": mult.get(f"guardrail:{gr.outcome}", 0.0)})
    for gr in p.guardrails:
        if gr.max_uplift is not None:
            blocked = decisions.where(F.col("reason") == f"guardrail:{gr.outcome}").count()
            rows.append({"constraint": f"guardrail:{gr.outcome}:max_uplift", "used": float(blocked),
                         "limit": float(gr.max_uplift), "multiplier": None})
    return DecisionSummary(policy=p.policy, campaign_id=p.campaign_id, arms=list(arms), allocation=allocation,
                           constraints=rows, multipliers=mult, fill_threshold=float(alloc.theta), passes=alloc.passes,
                           sample_passes=search["sample_passes"], sample_rows=search["sample_rows"],
                           dual_gap=alloc.dual_gap)


__all__ = ["needs_rules", "decide_rules"]
