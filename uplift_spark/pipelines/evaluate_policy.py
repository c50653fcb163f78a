"""``uplift-spark evaluate-policy``: what the configured policy earns on held-out randomized customers,
against simple alternatives at equal spend → ``policy_evaluation`` and ``policy_curves``.

Why: ``decide`` writes the models' own predicted values; only the randomized held-out outcomes can say
what a rule really earns. For each split in ``policy_evaluation.splits`` that the run has:

* the policy is re-solved for the split's customers as ``decide`` would (same values, eligibility and
  constraints) with budget, top_k and capacities scaled by the split's share of the decided population,
  and without holdout/exploration buckets (the evaluation is of the rule itself);
* values come from AIPW (outcome models μ_k = the T-learner's outcome boosters, trained on train only),
  IPW and self-normalized IPW scores with the design propensities (``data.propensity`` columns or
  ``data.allocation``); SEs from the per-customer scores (cluster-robust with ``policy_evaluation.cluster``);
* baselines at equal spend: nobody; random targeting with the policy's contacts per arm (expectation
  form: Σ_k share_k·mean Γ_k, no random draw); the best single arm for a random subset with the policy's
  spend and the best single arm for everyone (the arm chosen by its estimated value, its own spend);
  response-model targeting (values from μ_k(x) instead of uplift, same constraints); every learner's policy;
* multi-armed cost curves (LP-relaxation path, see :mod:`uplift_spark.evaluation.cost_curves`) per learner,
  for response targeting and for random allocation, with pointwise CIs and areas with paired SEs.

Everything is a Spark aggregation of per-customer scores; both tables are written after every check
and estimate succeeded (one commit each per run id).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError, ModelError, PolicyError
from ..evaluation import cost_curves as cc
from ..evaluation.policy_scan import ScoreSpec, curve_thresholds, score_moments, segments
from ..evaluation.policy_value import Moments, difference, linear, p_text, value
from ..logs import get_logger
from ..policy import decide, policy_arms
from ..policy.decide import check_constraints
from ..policy.value import economics
from ..schemas import TABLE_COLUMNS, conform, slug, uplift_column
from .context import RunContext, Stopwatch

log = get_logger("evaluate_policy")

ESTIMATORS = ("aipw", "ipw", "snipw")
BASELINES = ("nobody", "random", "best_arm_random", "best_arm_all")


# ------------------------------------------------------------------------------------------ inputs


def outcome_model_columns(model_dir: str, manifest: dict, outcome: str, df, arms: Sequence[str]):
    """``df`` + ``mu_0..mu_K`` (control first): the T-learner's outcome boosters for ``outcome``.

    The only place that touches the learners' internals (``boosters``, ``encoding``, ``score_boosters``),
    so a change of model classes is adapted here. The boosters were fitted on the train split only.
    """
    from ..learners import load_entry
    from ..learners.scoring import score_boosters

    entries = [e for e in manifest.get("models", []) if e.get("learner") == "t" and e.get("outcome") == outcome]
    if not entries:
        raise ModelError(f"evaluate-policy: no T-learner model for outcome {outcome!r}: its outcome boosters "
                         "mu_<arm> are the AIPW outcome models (add 't' to model.learners and retrain)")
    model = load_entry(model_dir, entries[0])
    keys = [f"mu_{slug(a)}" for a in arms]
    missing = [k for k in keys if k not in model.boosters]
    if missing:
        raise ModelError(f"evaluate-policy: outcome model {missing[0]!r} missing from the T-learner for {outcome!r}")
    enc = model.encoding
    with_enc = df.select("*", *enc.encoded_exprs(df))
    outputs = {f"mu_{i}": (lambda preds, extra, n, _key=key: preds(_key)) for i, key in enumerate(keys)}
    scored, _ = score_boosters(with_enc, enc.encoded_columns, model.boosters, outputs)
    return scored.drop(*enc.encoded_columns)


def design_propensities(cfg, columns: Sequence[str], arms: Sequence[str], split: str):
    """Column expressions e_0..e_K of the randomized design; a clear error when there is none."""
    from pyspark.sql import functions as F

    data = cfg.data
    prefix = data.propensity
    cols = [f"{prefix}_{slug(a)}" for a in arms] if prefix else []
    if cols and all(c in columns for c in cols):
        return [F.col(c).cast("double") for c in cols], "columns"
    alloc = dict(data.allocation or {})
    if alloc and all(a in alloc for a in arms):
        total = float(sum(alloc[a] for a in arms))
        return [F.lit(float(alloc[a]) / total) for a in arms], "allocation"
    raise DataError(f"evaluate-policy: split {split!r} has no randomized assignment probabilities: set "
                    f"data.propensity (columns <prefix>_<arm>) or data.allocation for every arm {list(arms)}")


def scaled_policy(p, arms: Sequence[str], share: float):
    """The policy config for a share of the population: budget, top_k and capacities scaled, no buckets."""
    from ..config import ArmEconomics

    arm_cfg = {}
    for arm in arms:
        econ = economics(p, arm)
        cap = None if econ.capacity is None else int(math.floor(econ.capacity * share))
        arm_cfg[arm] = dataclasses.replace(econ, capacity=cap) if arm in p.arms else ArmEconomics(capacity=None)
    budget = None if p.budget is None else float(p.budget) * share
    top_k = None if p.top_k is None else int(math.floor(p.top_k * share))
    out = dataclasses.replace(p, arms=arm_cfg if p.arms else p.arms, budget=budget, top_k=top_k,
                              holdout_share=0.0, explore_share=0.0)
    if p.policy == "budget" and budget is not None:
        cheapest = min(float(economics(p, a).cost) for a in arms)
        if budget < cheapest:
            raise PolicyError(f"evaluate-policy: policy.budget {p.budget} scaled to the split's share {share:.4f} "
                              f"is {budget:.4f}, below the cheapest arm's cost {cheapest}: too small for any contact")
    if p.policy == "top_k" and top_k is not None and top_k < 1 <= p.top_k:
        raise PolicyError(f"evaluate-policy: policy.top_k {p.top_k} scaled to the split's share {share:.4f} "
                          "is below one contact")
    return out


def curve_reward_columns(df, p, treatment_arms: Sequence[str], arms: Sequence[str], curve: int,
                         sources: Sequence[str], risk: Optional[str]):
    """``r_<curve>_<k>``: the predicted reward the cost curve allocates by, as ``decide`` values an arm:
    benefit × ``sources[k]`` − risk.weight × the risk outcome's predicted uplift (when ``risk``), null
    (not available) for a customer the arm's eligibility rule excludes and for arms outside the policy."""
    from pyspark.sql import functions as F

    from ..policy import outcome_uplift_column
    from ..policy.eligibility import rule_expression

    out = []
    for k, (a, src) in enumerate(zip(treatment_arms, sources)):
        name = f"r_{curve}_{k + 1}"
        if a not in arms:
            out.append(F.lit(None).cast("double").alias(name))
            continue
        econ = economics(p, a)
        r = F.col(src).cast("double") * F.lit(float(econ.benefit))
        if risk:
            r = r - F.lit(float(p.risk.weight)) * F.coalesce(F.col(outcome_uplift_column(a, risk)).cast("double"),
                                                            F.lit(0.0))
        if econ.eligibility:
            r = F.when(rule_expression(df, a, econ.eligibility), r)
        out.append(r.alias(name))
    return out


def _learner_uplifts(preds, learner: str, outcome: str, split: str, arms: Sequence[str], suffix: str = ""):
    from pyspark.sql import functions as F

    rows = preds.where((F.col("learner") == learner) & (F.col("outcome") == outcome) & (F.col("split") == split))
    return rows.groupBy("customer_id").agg(
        *[F.max(F.when(F.col("arm") == a, F.col("uplift"))).alias(uplift_column(a) + suffix) for a in arms])


def _action_index(decisions, treatment_arms: Sequence[str], name: str):
    from pyspark.sql import functions as F

    idx = F.lit(0)
    for i, arm in reversed(list(enumerate(treatment_arms, start=1))):
        idx = F.when(F.col("action") == arm, F.lit(i)).otherwise(idx)
    return decisions.select("customer_id", idx.cast("int").alias(name))


# ------------------------------------------------------------------------------------------ baselines


def _constant_policy_rows(lay, k_arms: int, pi: np.ndarray, benefits, costs) -> List[np.ndarray]:
    """Rows (over the score layout + a constant) of a policy that gives arm k to a share π_k of everyone."""
    m = len(lay)
    omega = np.asarray(pi, dtype=float).copy()
    omega[1:] = pi[1:] * np.asarray(benefits)
    omega[0] = 1.0 - omega[1:].sum()
    cost = float(np.dot(pi[1:], costs))
    aipw, ipw, weight, c = np.zeros(m + 1), np.zeros(m + 1), np.zeros(m + 1), np.zeros(m + 1)
    for k in range(k_arms + 1):
        aipw[lay[f"arm{k}|gamma"]] = omega[k]
        ipw[lay[f"arm{k}|ipw"]] = omega[k]
        weight[lay[f"arm{k}|hit"]] = omega[k]
    aipw[m] = ipw[m] = -cost
    c[m] = cost
    rows = [aipw, ipw, weight, c]
    for k in range(1, k_arms + 1):
        r = np.zeros(m + 1)
        r[m] = pi[k]
        rows.append(r)
    return rows


def _copy(lay):
    out = type(lay)()
    out.index = dict(lay.index)
    return out


def _add_constant_policy(mom: Moments, lay, name: str, pi, k_arms, benefits, costs) -> Moments:
    rows = _constant_policy_rows(lay, k_arms, np.asarray(pi, dtype=float), benefits, costs)
    for col in ("aipw", "ipw", "weight", "cost", *[f"arm_{k}" for k in range(1, k_arms + 1)]):
        lay.add(f"{name}|{col}")
    return mom.extend(np.vstack(rows))


# ------------------------------------------------------------------------------------------ stage


def run(ctx: RunContext, population: Optional[str] = None, **_) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..learners import load_manifest
    from .score import _policy_outcome, choose_models, load_population
    from .train import data_config

    watch = Stopwatch()
    cfg, store, spark = ctx.cfg, ctx.store, ctx.spark
    p, pe = cfg.policy, cfg.policy_evaluation
    manifest = load_manifest(ctx.model_dir)
    treatment_arms = list(manifest["treatment_arms"])
    control = manifest.get("control_arm", cfg.data.control_arm)
    all_arms = [control] + treatment_arms
    k_arms = len(treatment_arms)
    arms = policy_arms(p, treatment_arms)
    check_constraints(p, arms)
    outcome = _policy_outcome(ctx, manifest)
    learners = [e["learner"] for e in manifest["models"] if e.get("outcome") == outcome]
    if not learners:
        raise ModelError(f"evaluate-policy: no saved model for the policy outcome {outcome!r}")
    main_learner = choose_models(manifest, p.learner, [outcome], tuple(cfg.model.learners) or ("t", "x"))[outcome]["learner"]
    risk = p.risk.outcome if (p.risk.outcome and p.risk.weight > 0) else None
    benefits = tuple(float(economics(p, a).benefit) if a in arms else 0.0 for a in treatment_arms)
    costs = tuple(float(economics(p, a).cost) for a in treatment_arms)

    log_df = store.read_run("experiment_log", ctx.run_id)
    data = data_config(ctx, log_df)
    if outcome not in log_df.columns:
        raise DataError(f"experiment_log: policy outcome column {outcome!r} is missing")
    from ..datasets import resolve_data_config

    cluster = pe.cluster or resolve_data_config(cfg).cluster
    if cluster and cluster not in log_df.columns:
        raise DataError(f"policy_evaluation.cluster: column {cluster!r} is not in experiment_log")
    splits_df = store.read_run("splits", ctx.run_id).select(F.col("customer_id").alias("__sid"), "split")
    held = (log_df.join(splits_df, log_df[data.customer_id].cast("string") == splits_df["__sid"])
            .drop("__sid").where(F.col("split").isin(*pe.splits)))
    if data.customer_id != "customer_id":
        held = held.withColumnRenamed(data.customer_id, "customer_id")
    held = held.withColumn("customer_id", F.col("customer_id").cast("string"))
    counts = {(r["split"], r["arm"]): int(r["count"])
              for r in held.groupBy("split", F.col(data.arm).cast("string").alias("arm")).count().collect()}
    wanted = [s for s in pe.splits if any(k[0] == s for k in counts)]
    if not wanted:
        raise DataError(f"evaluate-policy: none of policy_evaluation.splits {list(pe.splits)} has rows in run "
                        f"{ctx.run_id!r}")
    for s in wanted:
        empty = [a for a in all_arms if counts.get((s, a), 0) == 0]
        if empty:
            raise DataError(f"evaluate-policy: split {s!r} has no customers in arm {empty[0]!r}: not a randomized "
                            "split of every arm")
    e_cols, e_source = design_propensities(cfg, held.columns, all_arms, wanted[0])
    n_pop = load_population(ctx, population).count()
    preds = store.read_run("predictions", ctx.run_id)

    rows: List[tuple] = []
    curve_rows: List[tuple] = []
    headline: Dict[str, object] = {}
    for split in wanted:
        n_split = sum(v for (s, _), v in counts.items() if s == split)
        share = min(1.0, n_split / float(max(n_pop, 1)))
        p_split = scaled_policy(p, arms, share)
        w_expr = F.lit(0)
        for i, a in reversed(list(enumerate(all_arms))):
            w_expr = F.when(F.col(data.arm).cast("string") == a, F.lit(i)).otherwise(w_expr)
        base = held.where(F.col("split") == split).select(
            "*", w_expr.cast("int").alias("w"), F.col(outcome).cast("double").alias("y"),
            *[e.alias(f"e_{i}") for i, e in enumerate(e_cols)],
            F.xxhash64(F.col("customer_id"), F.lit(str(pe.seed))).alias("tie"))
        base = outcome_model_columns(ctx.model_dir, manifest, outcome, base, all_arms)
        base = base.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            stats = base.agg(*[F.min(f"e_{i}").alias(f"min{i}") for i in range(k_arms + 1)],
                             *[F.sum(F.col(f"e_{i}").isNull().cast("long")).alias(f"null{i}") for i in range(k_arms + 1)],
                             F.sum(F.col("y").isNull().cast("long")).alias("ynull")).collect()[0]
            for i, a in enumerate(all_arms):
                if stats[f"null{i}"] or stats[f"min{i}"] is None or not stats[f"min{i}"] > 0:
                    raise DataError(f"evaluate-policy: split {split!r}: propensity of arm {a!r} is missing or not "
                                    f"positive (min {stats[f'min{i}']}): IPW/AIPW need a randomized design")
            if stats["ynull"]:
                raise DataError(f"evaluate-policy: split {split!r}: outcome {outcome!r} has {stats['ynull']} nulls")

            # ---- policies re-solved as decide would: each learner's uplifts, and response targeting (μ_k)
            ordered = [main_learner] + [l for l in learners if l != main_learner]
            pol_names, acts, curve_names, reward_frames = [], [], [], []
            for li, learner in enumerate(ordered):
                up = _learner_uplifts(preds, learner, outcome, split, treatment_arms)
                wide = base.join(up, "customer_id")
                if risk:
                    wide = wide.join(_learner_uplifts(preds, learner, risk, split, treatment_arms,
                                                      suffix=f"__{slug(risk)}"), "customer_id", "left")
                decisions, _ = decide(wide, p_split, treatment_arms)
                name = "policy" if li == 0 else f"learner:{learner}"
                pol_names.append(name)
                acts.append(_action_index(decisions, treatment_arms, f"act_{len(acts)}"))
                curve_names.append(f"learner:{learner}")
                reward_frames.append(wide.select("customer_id", *curve_reward_columns(
                    wide, p_split, treatment_arms, arms, len(reward_frames),
                    [uplift_column(a) for a in treatment_arms], risk)))
            resp = base.select("*", *[F.col(f"mu_{k + 1}").alias(uplift_column(a)) for k, a in enumerate(treatment_arms)])
            p_resp = dataclasses.replace(p_split, risk=dataclasses.replace(p_split.risk, weight=0.0))
            decisions, _ = decide(resp, p_resp, treatment_arms)
            pol_names.append("response")
            acts.append(_action_index(decisions, treatment_arms, f"act_{len(acts)}"))
            curve_names.append("response")
            reward_frames.append(base.select("customer_id", *curve_reward_columns(
                base, p_split, treatment_arms, arms, len(reward_frames),
                [f"mu_{k + 1}" for k in range(k_arms)], None)))

            keep = ["customer_id", "w", "y", "tie", *[f"e_{i}" for i in range(k_arms + 1)],
                    *[f"mu_{i}" for i in range(k_arms + 1)]] + ([cluster] if cluster else [])
            frame = base.select(*keep)
            for a in acts:
                frame = frame.join(a, "customer_id")
            for r in reward_frames:
                frame = frame.join(r, "customer_id", "left")
            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
            try:
                n = frame.count()
                if n != n_split:
                    log.warning("evaluate-policy: %d of %d %s customers have predictions for every learner",
                                n, n_split, split)
                # the models' own predicted gain of each learner's policy on the same customers, to set
                # beside the held-out estimate (what decisions.expected_value would have promised)
                predicted = {}
                for i, name in enumerate(pol_names[:-1]):
                    g = F.lit(0.0)
                    for k in range(k_arms):
                        g = F.when(F.col(f"act_{i}") == k + 1,
                                   F.coalesce(F.col(f"r_{i}_{k + 1}"), F.lit(0.0)) - F.lit(costs[k])).otherwise(g)
                    predicted[name] = g
                prow = frame.agg(*[F.avg(g).alias(f"p{i}") for i, g in enumerate(predicted.values())]).collect()[0]
                predicted = {name: float(prow[f"p{i}"] or 0.0) for i, name in enumerate(predicted)}
                # ---- curve thresholds: exact global order of hull segments, grid up to the longest path
                segs = segments(frame, len(curve_names), k_arms, costs)
                full = {int(r["curve"]): float(r["s"] or 0.0)
                        for r in segs.groupBy("curve").agg(F.sum("dcost").alias("s")).collect()}
                max_spend = max(full.values()) / n if full else 0.0
                grid = cc.spend_grid(max_spend, pe.curve_points)
                ths = curve_thresholds(segs, {c: [b * n for b in grid] for c in range(len(curve_names))},
                                       cfg.spark.shuffle_partitions)
                spec = ScoreSpec(k_arms, benefits, costs, tuple(pol_names), tuple(curve_names),
                                 tuple(tuple(ths[c]) for c in range(len(curve_names))))
                mom = score_moments(frame, spec, cluster)
            finally:
                frame.unpersist()
        finally:
            base.unpersist()
        lay = spec.layout()
        split_rows, split_curves, line = _summarize(ctx.run_id, split, mom, lay, spec, grid, share, p_split,
                                                   pe.ci_level, main_learner, e_source, n,
                                                   treatment_arms, predicted)
        rows += split_rows
        curve_rows += split_curves
        headline[split] = line
    tables = {
        "policy_evaluation": store.write(_frame(spark, rows, "policy_evaluation"), "policy_evaluation", ctx.run_id),
        "policy_curves": store.write(_frame(spark, curve_rows, "policy_curves"), "policy_curves", ctx.run_id),
    }
    from .calibrate_values import with_held_out

    summary_loc = with_held_out(store, ctx.run_id, headline, n_pop)
    if summary_loc:
        tables["decision_summary"] = summary_loc
    for split, line in headline.items():
        log.info("evaluate-policy %s: %s", split, line["sentence"])
    return {"splits": wanted, "rows": len(rows), "curve_rows": len(curve_rows), "tables": tables,
            "headline": headline, "seconds": round(watch(), 1)}


def _frame(spark, rows: List[tuple], table: str):
    schema = ", ".join(f"`{c}` {t}" for c, t in TABLE_COLUMNS[table] if c != "*")

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return conform(spark.createDataFrame([tuple(clean(v) for v in r) for r in rows], schema), table)


def _summarize(run_id, split, mom: Moments, lay, spec: ScoreSpec, grid, share, p_split, ci_level, main_learner,
               e_source, n, arm_names: Sequence[str], predicted: Dict[str, float]) -> Tuple[List[tuple], List[tuple], dict]:
    k_arms, benefits, costs = spec.k_arms, spec.benefits, spec.costs
    budget = p_split.budget
    note_scale = f"budget/top_k/capacities scaled by the split's share {share:.4f}; propensities from {e_source}"
    mean = mom.mean()
    # ---- baselines (constant allocations: exact linear maps of the per-arm scores)
    mom = _add_constant_policy(mom, lay, "nobody", np.eye(k_arms + 1)[0], k_arms, benefits, costs)
    mean = mom.mean()
    shares = np.array([mean[lay[f"policy|arm_{k}"]] for k in range(1, k_arms + 1)])
    mom = _add_constant_policy(mom, lay, "random", np.concatenate([[1 - shares.sum()], shares]), k_arms, benefits,
                               costs)
    spend = float(mean[lay["policy|cost"]])  # per customer
    notes = {"random": "expected value of random targeting with the policy's contacts per arm (no draw)"}
    best_r, best_a = None, None
    for k in range(1, k_arms + 1):
        if benefits[k - 1] == 0.0:
            continue  # not a policy arm
        f = 1.0 if costs[k - 1] <= 0 else min(1.0, spend / costs[k - 1])
        pi = np.zeros(k_arms + 1)
        pi[k], pi[0] = f, 1 - f
        tl = _copy(lay)
        trial = _add_constant_policy(mom, tl, f"_arm_random_{k}", pi, k_arms, benefits, costs)
        v = value(trial, tl, f"_arm_random_{k}", "aipw").estimate
        if best_r is None or v > best_r[0]:
            best_r = (v, k, pi)
        pi_all = np.eye(k_arms + 1)[k]
        tl = _copy(lay)
        trial = _add_constant_policy(mom, tl, f"_arm_all_{k}", pi_all, k_arms, benefits, costs)
        v = value(trial, tl, f"_arm_all_{k}", "aipw").estimate
        if best_a is None or v > best_a[0]:
            best_a = (v, k, pi_all)
    baselines = ["nobody", "random"]
    if best_r is not None:
        mom = _add_constant_policy(mom, lay, "best_arm_random", best_r[2], k_arms, benefits, costs)
        mom = _add_constant_policy(mom, lay, "best_arm_all", best_a[2], k_arms, benefits, costs)
        baselines += ["best_arm_random", "best_arm_all"]
        notes["best_arm_random"] = (f"arm {arm_names[best_r[1] - 1]} for a random {best_r[2][best_r[1]]:.4f} of customers (the "
                                    "policy's spend); arm chosen by its estimated value")
        notes["best_arm_all"] = f"arm {arm_names[best_a[1] - 1]} for everyone (its own spend); arm chosen by its estimated value"
    policies = list(spec.policies)
    rows: List[tuple] = []

    def add(policy, baseline, estimator, metric, est, note=""):
        rows.append((run_id, split, policy, baseline, estimator, metric, est.estimate, est.se, est.ci_low,
                     est.ci_high, est.p_value, int(n), float(share), budget, note))

    def add_plain(policy, metric, number, note=""):
        rows.append((run_id, split, policy, None, None, metric, float(number), None, None, None, None, int(n),
                     float(share), budget, note))

    for pol in policies + baselines:
        note = notes.get(pol, note_scale if pol == "policy" else "")
        if pol == "policy":
            note = f"learner {main_learner}; " + note_scale
        for est in ESTIMATORS:
            add(pol, None, est, "value", value(mom, lay, pol, est, ci_level), note)
            if pol != "nobody":
                add(pol, "nobody", est, "gain", difference(mom, lay, pol, "nobody", est, ci_level))
        add_plain(pol, "spend", mom.mean()[lay[f"{pol}|cost"]] * n, "total on the split")
        for k in range(1, k_arms + 1):
            add_plain(pol, f"contacts:{arm_names[k - 1]}", mom.mean()[lay[f"{pol}|arm_{k}"]] * n)
    for pol, g in predicted.items():
        add_plain(pol, "predicted_gain", g, "the models' own predicted gain per customer (what decide promises)")
    for pol in policies:
        others = baselines[1:] + [q for q in policies if q != pol]
        for q in others:
            for est in ESTIMATORS:
                add(pol, q, est, "difference", difference(mom, lay, pol, q, est, ci_level))

    # ---- curves: learners/response from the pass, random allocation from per-arm mean gains
    mean = mom.mean()
    gains = np.array([benefits[k - 1] * (mean[lay[f"arm{k}|gamma"]] - mean[lay["arm0|gamma"]])
                      for k in range(1, k_arms + 1)])
    rewards = np.where(np.asarray(benefits) > 0, gains, -np.inf)[None, :]
    allocs, _, _ = cc.local_curve(rewards, np.asarray(costs), np.zeros((1, k_arms)), np.zeros(1, dtype=np.int64), grid)
    m = len(lay)
    extra = []
    for j, pi in enumerate(allocs):
        r = np.zeros(m + 1)
        for k in range(1, k_arms + 1):
            r[lay[f"arm{k}|gamma"]] += pi[0, k] * benefits[k - 1]
            r[lay["arm0|gamma"]] -= pi[0, k] * benefits[k - 1]
        extra.append(r)
        lay.add(f"curve:random|{j}")
        for k in range(1, k_arms + 1):
            s = np.zeros(m + 1)
            s[m] = pi[0, k]
            extra.append(s)
            lay.add(f"curve:random|{j}|arm_{k}")
    mom = mom.extend(np.vstack(extra))
    mean = mom.mean()
    curve_rows = []
    weights = cc.trapezoid_weights(grid)
    curves = list(spec.curves) + ["random"]
    for c in curves:
        for j, b in enumerate(grid):
            est = linear(mom, {lay[f"curve:{c}|{j}"]: 1.0}, ci_level)
            arm_shares = {arm_names[k - 1]: float(mean[lay[f"curve:{c}|{j}|arm_{k}"]]) for k in range(1, k_arms + 1)}
            curve_rows.append((run_id, split, c, j, float(b), est.estimate, est.se, est.ci_low, est.ci_high,
                               est.estimate - float(b), arm_shares))
        area = {lay[f"curve:{c}|{j}"]: float(wj) for j, wj in enumerate(weights)}
        add(c, None, "aipw", "curve_area", linear(mom, area, ci_level), "trapezoid area under Q(B) over the grid")
        for q in curves:
            if q == c:
                continue
            diff = dict(area)
            for j, wj in enumerate(weights):
                diff[lay[f"curve:{q}|{j}"]] = diff.get(lay[f"curve:{q}|{j}"], 0.0) - float(wj)
            add(c, q, "aipw", "curve_area_difference", linear(mom, diff, ci_level))
    gain = difference(mom, lay, "policy", "nobody", "aipw", ci_level)
    rnd = difference(mom, lay, "random", "nobody", "aipw", ci_level)
    dif = difference(mom, lay, "policy", "random", "aipw", ci_level)
    pct = int(round(ci_level * 100))
    budget_txt = "its constraints" if budget is None else f"a budget of {budget / share:,.0f}"
    sentence = (f"At {budget_txt} the policy earns {gain.estimate:+.4f} per customer ({pct}% CI {gain.ci_low:.4f} "
                f"to {gain.ci_high:.4f}); random at equal spend earns {rnd.estimate:+.4f}; difference "
                f"{dif.estimate:+.4f} (CI {dif.ci_low:.4f} to {dif.ci_high:.4f}, {p_text(dif.p_value)}) "
                f"[{split}, {int(n)} customers, AIPW]")
    if "policy" in predicted:
        sentence += f"; the models predicted {predicted['policy']:+.4f}"
    line = {"sentence": sentence, "gain": gain.as_dict(), "random": rnd.as_dict(), "difference": dif.as_dict(),
            "spend_per_customer": spend, "scale": share}
    return rows, curve_rows, line


__all__ = ["run", "outcome_model_columns", "design_propensities", "scaled_policy", "curve_reward_columns"]
