"""``uplift-spark score``: score a population with the run's saved model into the ``scores`` table.

Population: ``--population`` (a Delta/Parquet folder, a CSV file or a table name) or ``policy.population``;
by default the run's ``experiment_log`` rows. Any customer with the model's features can be scored.
``scores`` is long (customer × treatment arm): ``uplift`` is the policy outcome's predicted uplift,
``uplift_<outcome>`` one column per scored outcome, ``value`` the policy value of that arm (null for
arms outside ``policy.arms``). ``decide`` recomputes values from the uplifts, so changing economics
does not need a rescore.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Optional

from ..errors import DataError, ModelError
from ..io.sources import read_input
from ..logs import get_logger
from ..policy import add_values, outcome_uplift_column, policy_arms, value_column
from ..policy.value import economics
from ..schemas import conform, slug, uplift_column
from .context import RunContext

log = get_logger("score")


def _numeric_features(ctx: RunContext) -> List[str]:
    """The contract's numeric features: a text column among them (a CSV with a bad value) is cast and
    checked, so a malformed value is a DataError naming the column, not a failure inside the model."""
    from ..datasets import logged_data_config

    data = logged_data_config(ctx.cfg)
    return [c for c in data.features if c not in set(data.categorical_features)]


def load_population(ctx: RunContext, population: Optional[str] = None):
    """The customers to score/decide on, with ``customer_id`` as a string column."""
    source = population or ctx.cfg.policy.population
    if source is None:
        df = ctx.store.read_run("experiment_log", ctx.run_id)
    else:
        df = read_input(ctx.spark, source, "population", config_file=ctx.cfg.source_file,
                        numeric=_numeric_features(ctx))
    id_col = ctx.cfg.data.customer_id
    if "customer_id" not in df.columns:
        if id_col not in df.columns:
            raise DataError(f"population {source or 'experiment_log'}: no customer id column {id_col!r}")
        df = df.withColumnRenamed(id_col, "customer_id")
    return df.withColumn("customer_id", df["customer_id"].cast("string"))


def _policy_outcome(ctx: RunContext, manifest: dict) -> str:
    if ctx.cfg.policy.outcome:
        return ctx.cfg.policy.outcome
    if ctx.cfg.data.outcomes:
        return ctx.cfg.data.main_outcome
    return manifest["models"][0]["outcome"]


def choose_models(manifest: dict, learner: str, outcomes: List[str], preference=("t", "x")) -> Dict[str, dict]:
    """outcome → manifest entry: ``learner`` if set; for ``auto`` the learner the train stage chose on
    validation (the manifest's ``selection``), else the first of ``preference`` that was saved."""
    if learner == "auto":
        chosen = (manifest.get("selection") or {}).get("learner")
        preference = ((chosen,) if chosen else ()) + tuple(p for p in preference if p != chosen)
    out = {}
    for outcome in outcomes:
        entries = [e for e in manifest.get("models", []) if e.get("outcome") == outcome]
        if learner != "auto":
            entries = [e for e in entries if e.get("learner") == learner]
        else:
            rank = {name: i for i, name in enumerate(preference)}
            entries = sorted(entries, key=lambda e: rank.get(e.get("learner"), len(rank)))
        if not entries:
            have = [(e.get("learner"), e.get("outcome")) for e in manifest.get("models", [])]
            raise ModelError(f"score: no saved model for outcome {outcome!r} (learner {learner!r}); have {have}")
        out[outcome] = entries[0]
    return out


def cost_model_outcomes(policy_cfg, arms: List[str]) -> Dict[str, List[str]]:
    """outcome → policy arms whose cost is an expected cost ``{face, outcome}`` of that outcome."""
    from ..config import CostModel
    from ..policy.costs import cost_spec

    out: Dict[str, List[str]] = {}
    for arm in arms:
        spec = cost_spec(economics(policy_cfg, arm), arm)
        if isinstance(spec, CostModel):
            out.setdefault(spec.outcome, []).append(arm)
    return out


def score_population(population, models: Dict[str, object], policy_outcome: str, policy_cfg, treatment_arms,
                     mean_outcomes: Optional[Dict[str, List[str]]] = None):
    """Wide scores: ``uplift_<arm>`` (policy outcome), ``uplift_<arm>__<outcome>`` for every scored
    outcome, ``mu_<arm>__<outcome>`` (predicted outcome under the arm) for the outcomes of expected-cost
    models (``mean_outcomes``: outcome → arms), ``value_<arm>`` for policy arms. ``models``: outcome →
    fitted model with ``transform``."""
    from pyspark.sql import functions as F

    from ..policy.costs import outcome_mu_column

    wide = population
    for outcome, arms in (mean_outcomes or {}).items():
        if outcome not in models:
            raise ModelError(f"policy.arms.{arms[0]}.cost: no saved model for outcome {outcome!r} "
                             "(add it to model.outcomes / data.outcomes)")
        wide = models[outcome].transform_outcome_means(wide, {a: outcome_mu_column(a, outcome) for a in arms})
    for outcome, model in models.items():
        scored = model.transform(wide)
        for arm in treatment_arms:
            col = uplift_column(arm)
            if col not in scored.columns:
                raise ModelError(f"score: model for {outcome!r} did not produce {col!r}")
            scored = scored.withColumnRenamed(col, outcome_uplift_column(arm, outcome))
        wide = scored
    for arm in treatment_arms:
        wide = wide.withColumn(uplift_column(arm), F.col(outcome_uplift_column(arm, policy_outcome)))
    return add_values(wide, policy_cfg, treatment_arms)


def to_long(wide, treatment_arms, outcomes: List[str], policy_arm_list: List[str],
            mean_outcomes: Optional[Dict[str, List[str]]] = None):
    """customer × arm rows (explode of a small per-row array: no shuffle); ``mu_<outcome>`` for the
    outcomes of expected-cost models (null for arms without that cost)."""
    from pyspark.sql import functions as F

    from ..policy.costs import outcome_mu_column

    structs = []
    for arm in treatment_arms:
        fields = [F.lit(arm).alias("arm"), F.col(uplift_column(arm)).cast("double").alias("uplift")]
        fields += [F.col(outcome_uplift_column(arm, o)).cast("double").alias(f"uplift_{slug(o)}") for o in outcomes]
        for o, arms in (mean_outcomes or {}).items():
            mu = F.col(outcome_mu_column(arm, o)) if arm in arms else F.lit(None)
            fields.append(mu.cast("double").alias(f"mu_{slug(o)}"))
        value = F.col(value_column(arm)) if arm in policy_arm_list else F.lit(None)
        fields.append(value.cast("double").alias("value"))
        structs.append(F.struct(*fields))
    return wide.select("customer_id", F.explode(F.array(*structs)).alias("s")).select("customer_id", "s.*")


def run(ctx: RunContext, population: Optional[str] = None, **_) -> dict:
    from pyspark.sql import functions as F

    from ..learners import load_entry, load_manifest

    cfg = ctx.cfg
    manifest = load_manifest(ctx.model_dir)
    treatment_arms = list(manifest["treatment_arms"])
    arms = policy_arms(cfg.policy, treatment_arms)  # unknown policy arm → PolicyError before any work
    main = _policy_outcome(ctx, manifest)
    outcomes = [main]
    if cfg.policy.risk.outcome and cfg.policy.risk.outcome not in outcomes:
        outcomes.append(cfg.policy.risk.outcome)
    means = cost_model_outcomes(cfg.policy, arms)
    outcomes += [o for o in means if o not in outcomes]  # a missing model: clear error in choose_models
    outcomes += [o for o in cfg.model.outcomes if o not in outcomes and
                 any(e.get("outcome") == o for e in manifest.get("models", []))]
    entries = choose_models(manifest, cfg.policy.learner, outcomes, tuple(cfg.model.learners) or ("t", "x"))
    models = {o: load_entry(ctx.model_dir, e) for o, e in entries.items()}
    pop = load_population(ctx, population)
    wide = score_population(pop, models, main, cfg.policy, treatment_arms, means)
    long = to_long(wide, treatment_arms, outcomes, arms, means)
    scored_at = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    version = str(manifest.get("model_version") or ctx.run_id)
    scores = long.select(
        F.lit(ctx.run_id).alias("run_id"), F.lit(version).alias("model_version"), "*",
        F.lit(scored_at).cast("timestamp").alias("scored_at"))
    scores = conform(scores, "scores")
    loc = ctx.store.write(scores, "scores", ctx.run_id)
    stats = ctx.store.read("scores", run_id=ctx.run_id).groupBy("arm").agg(
        F.count(F.lit(1)).alias("n"), F.avg("uplift").alias("mean_uplift"), F.avg("value").alias("mean_value"),
        F.sum(F.when(F.col("value") > 0, 1).otherwise(0)).alias("positive")).collect()
    per_arm = {r["arm"]: {"rows": int(r["n"]), "mean_uplift": r["mean_uplift"], "mean_value": r["mean_value"],
                          "positive_value": int(r["positive"])} for r in stats}
    summary = {"table": loc, "model_version": version, "outcome": main, "outcomes": outcomes,
               "learners": {o: e.get("learner") for o, e in entries.items()},
               "rows": sum(v["rows"] for v in per_arm.values()), "arms": per_arm}
    log.info("score: %d rows for %d arms (model %s)", summary["rows"], len(per_arm), version)
    return summary
