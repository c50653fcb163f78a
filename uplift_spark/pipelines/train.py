"""``uplift-spark train``: fit every configured learner × outcome on the run's ``train`` split.

Reads ``experiment_log`` and ``splits`` for the run, trains on ``train`` with early stopping on ``valid``,
saves each model under ``<model_dir>/<learner>/<outcome>/``, writes ``<model_dir>/manifest.json`` (how
score/decide/monitor find the models) and the ``feature_importance`` and ``uplift_importance`` tables.

Choice on ``valid`` (the policy outcome only; other outcomes reuse each learner's chosen settings):
with ``model.tune`` every learner is fitted at each point of a small LightGBM grid and keeps the point
with the best mean validation Qini AUC over the policy arms; the learner with the best such score is
the manifest's ``selection`` (what ``policy.learner: auto`` deploys). The held-out policy value of
``evaluate-policy`` cannot choose: that stage runs after ``decide``. The valid rows also drive early
stopping, so the scores are slightly optimistic alike for every candidate; ``test`` stays untouched.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Tuple

from ..config import DataConfig
from ..errors import DataError, ModelError
from ..joins import join_customers
from ..io import fs as hfs
from ..learners import learner_class, write_manifest
from ..learners.persistence import digest_sha256
from ..logs import get_logger
from ..schemas import conform, require_columns
from .context import RunContext, Stopwatch

log = get_logger("train")

VALID_COL = "__is_valid"
FOLD_COL = "__fold"
TRAIN_SPLITS = ("train", "valid")


def data_config(ctx: RunContext, log_df) -> DataConfig:
    """The data contract as the experiment log spells it (ingest stores ``customer_id``/``arm``)."""
    from ..datasets import logged_data_config

    data = logged_data_config(ctx.cfg)
    require_columns(log_df, (data.customer_id, data.arm), "experiment_log")
    return data


def treatment_arms(log_df, data: DataConfig) -> Tuple[str, ...]:
    """Configured treatment arms, else every arm in the log except control (a small aggregate)."""
    if data.treatment_arms:
        return tuple(data.treatment_arms)
    arms = sorted(r[0] for r in log_df.select(data.arm).distinct().collect() if r[0] is not None)
    if data.control_arm not in arms:
        raise DataError(f"experiment_log: control arm {data.control_arm!r} not found in column {data.arm!r} ({arms})")
    return tuple(a for a in arms if a != data.control_arm)


def training_frame(ctx: RunContext, data: DataConfig, log_df):
    """Experiment rows of the run with their split and cross-fitting fold, restricted to train + valid."""
    from pyspark.sql import functions as F

    splits = ctx.store.read_run("splits", ctx.run_id).select(
        F.col("customer_id").alias("__split_customer"), "split", F.col("fold").alias(FOLD_COL))
    joined = join_customers(log_df, splits, log_df[data.customer_id] == splits["__split_customer"], "inner").drop(
        "__split_customer")
    return joined.where(F.col("split").isin(*TRAIN_SPLITS)).withColumn(VALID_COL, F.col("split") == "valid")


def selection_outcome(cfg, data: DataConfig, outcomes: List[str]) -> str:
    """The policy outcome (as score/decide resolve it) when it is modelled, else the first outcome:
    tuning and ``policy.learner: auto`` are judged on it."""
    if cfg.policy.outcome:
        wanted = cfg.policy.outcome
    elif data.outcomes:
        wanted = data.main_outcome
    else:
        wanted = outcomes[0]
    return wanted if wanted in outcomes else outcomes[0]


def _scored_arms(cfg, arms: Tuple[str, ...]) -> List[str]:
    """The policy's arms (``policy.arms``; all treatment arms when empty) that the model knows."""
    listed = [a for a in arms if a in cfg.policy.arms]
    return listed or list(arms)


def _arm_rows(frame, data: DataConfig) -> Dict[str, int]:
    """Train rows per arm (a small aggregate): sizes the grid and the importance sample."""
    from pyspark.sql import functions as F

    rows = frame.where(~F.col(VALID_COL)).groupBy(F.col(data.arm).cast("string").alias("a")).count().collect()
    return {r["a"]: int(r["count"]) for r in rows}


def make_estimator(cfg, data: DataConfig, learner: str, outcome: str, arms: Tuple[str, ...], overrides=None):
    """The configured estimator of ``learner`` for ``outcome`` (cross-fitted learners read the split's
    folds), with the tuned LightGBM ``overrides`` applied."""
    from ..learners.tuning import with_overrides

    est = learner_class(learner).from_config(data, cfg.model, outcome=outcome, validation_col=VALID_COL,
                                             treatment_arms=arms, fold_col=FOLD_COL,
                                             min_rows_per_arm=cfg.split.min_rows_per_arm)
    if overrides:
        est.setLightGBMConfig(with_overrides(est.getLightGBMConfig(), overrides))
    return est


def fit_and_choose(ctx: RunContext, data: DataConfig, arms: Tuple[str, ...], outcome: str, frame,
                   smallest_arm_rows: int):
    """Fit every learner × grid point on ``outcome``, score each on ``valid`` (one exact scan) and keep
    the best point per learner. Returns ``({learner: model}, {learner: overrides}, tuning, selection)``
    where ``tuning``/``selection`` are the manifest records (grid, scores, the chosen learner)."""
    from pyspark.sql import functions as F

    from ..evaluation.selection import selection_metric, validation_scores
    from ..learners.tuning import best_point, mean_score, tuning_grid

    cfg = ctx.cfg
    grid = tuning_grid(cfg.model, smallest_arm_rows)
    candidates = {}
    for learner in cfg.model.learners:
        for i, overrides in enumerate(grid):
            candidates[(learner, i)] = make_estimator(cfg, data, learner, outcome, arms, overrides).fit(frame)
            log.info("fitted %s-learner grid point %d/%d for %s", learner, i + 1, len(grid), outcome)
    scored_arms = _scored_arms(cfg, arms)
    binary = data.outcome(outcome).type == "binary" if outcome in data.outcome_names else None
    metric = selection_metric(binary is not False)
    need_scores = len(candidates) > 1
    scores: Dict[tuple, Dict[str, object]] = {k: {} for k in candidates}
    if need_scores:
        valid = frame.where(F.col(VALID_COL))
        scores = validation_scores({k: m.transform(valid) for k, m in candidates.items()}, scored_arms,
                                   data.control_arm, data.arm, outcome, data.customer_id, binary)
    models, chosen, tuning, learner_scores = {}, {}, {}, {}
    for learner in cfg.model.learners:
        means = [mean_score(scores[(learner, i)]) for i in range(len(grid))]
        best = best_point(means)
        models[learner], chosen[learner] = candidates[(learner, best)], dict(grid[best])
        learner_scores[learner] = means[best]
        tuning[learner] = {
            "outcome": outcome, "split": "valid", "metric": metric, "arms": scored_arms,
            "tuned": bool(cfg.model.tune and len(grid) > 1), "best": best, "params": dict(grid[best]),
            "grid": [{"params": dict(p), "score": means[i], "by_arm": dict(scores[(learner, i)])}
                     for i, p in enumerate(grid)],
        }
    order = list(cfg.model.learners)
    best_learner = order[best_point([learner_scores[n] for n in order])]
    selection = {
        "learner": best_learner, "outcome": outcome, "split": "valid", "metric": metric, "arms": scored_arms,
        "scores": learner_scores,
        "rule": ("highest mean validation " + metric + " over the policy arms at train time (evaluate-policy "
                 "runs after decide, so its held-out value cannot choose); ties and undefined scores keep "
                 "the order of model.learners"),
    }
    log.info("policy.learner auto -> %s (%s on valid: %s)", best_learner, metric, learner_scores)
    return models, chosen, tuning, selection


def uplift_importance_rows(ctx: RunContext, data: DataConfig, frame, fitted, train_rows: int) -> List[dict]:
    """Surrogate gain on τ̂ per (learner, outcome, arm) over one seeded, bounded sample of train rows."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..learners.importance import effects_by_arm, sample_rows, surrogate_importance
    from ..schemas import uplift_column

    n = ctx.cfg.model.uplift_importance_rows
    if n <= 0 or not fitted or not data.features:
        return []
    features = list(data.features)
    # whole rows (propensity columns feed the X-learner's combination); only features + τ̂ are collected
    sample = sample_rows(frame.where(~F.col(VALID_COL)), n, ctx.cfg.run.seed, train_rows)
    sample = sample.persist(StorageLevel.MEMORY_AND_DISK)
    rows: List[dict] = []
    try:
        for (learner, outcome), model in fitted.items():
            cols = {arm: uplift_column(arm) for arm in model.treatment_arms}
            pdf = model.transform(sample).select(*features, *cols.values()).toPandas()  # bounded: <= n rows
            if pdf.empty:
                continue
            got = surrogate_importance(pdf[features], effects_by_arm(pdf, cols), data.categorical_features,
                                       seed=ctx.cfg.run.seed)
            rows += [dict(r, learner=learner, outcome=outcome) for r in got]
    finally:
        sample.unpersist()
    return rows


def run(ctx: RunContext, **_ignored) -> Dict[str, object]:
    from pyspark import StorageLevel

    watch = Stopwatch()
    cfg, store, run_id = ctx.cfg, ctx.store, ctx.run_id
    log_df = store.read_run("experiment_log", run_id)
    data = data_config(ctx, log_df)
    arms = treatment_arms(log_df, data)
    outcomes = list(cfg.model.outcomes or data.outcome_names)
    if not outcomes:
        raise ModelError("no outcome to model: set data.outcomes (or model.outcomes)")
    frame = training_frame(ctx, data, log_df).persist(StorageLevel.MEMORY_AND_DISK)
    entries: List[dict] = []
    importance_rows: List[dict] = []
    uplift_rows: List[dict] = []
    try:
        for learner in cfg.model.learners:  # input checks (folds per arm, ...) before any model is written
            for outcome in outcomes:
                make_estimator(cfg, data, learner, outcome, arms).preflight(frame)
        arm_rows = _arm_rows(frame, data)
        smallest = min([arm_rows.get(a, 0) for a in (data.control_arm, *arms)] or [0])
        chosen_outcome = selection_outcome(cfg, data, outcomes)
        first, tuned_params, tuning, selection = fit_and_choose(ctx, data, arms, chosen_outcome, frame, smallest)
        fitted = {}
        for learner in cfg.model.learners:
            for outcome in outcomes:
                if outcome == chosen_outcome:
                    model = first[learner]
                else:  # other outcomes reuse the learner's chosen settings (tuning them too costs a grid each)
                    model = make_estimator(cfg, data, learner, outcome, arms, tuned_params[learner]).fit(frame)
                rel = f"{learner}/{outcome}"
                folder = hfs.join(ctx.model_dir, learner, outcome)
                model.write().overwrite().save(folder)
                entries.append({"learner": learner, "outcome": outcome, "outcome_type": model.outcome_type,
                                "path": rel, "backend": model.training.get("backend"),
                                "seconds": model.training.get("seconds"), "tuned_params": tuned_params[learner],
                                # per booster: per_task or distributed (model.distribution)
                                "strategy": {k: b.get("strategy") for k, b in
                                             (model.training.get("boosters") or {}).items()},
                                "digest_sha256": digest_sha256(folder)})
                importance_rows += model.feature_importance()
                fitted[(learner, outcome)] = model
                log.info("trained %s-learner for %s in %.1fs", learner, outcome, watch())
        train_rows = sum(arm_rows.get(a, 0) for a in (data.control_arm, *arms))
        uplift_rows = uplift_importance_rows(ctx, data, frame, fitted, train_rows)
        # --- monitoring reference profile: feature distributions of the train rows, saved as
        # <model_dir>/reference_profile.json for `uplift-spark monitor` (monitor rebuilds it if absent).
        _save_reference_profile(ctx, data, frame)
    finally:
        frame.unpersist()
    manifest = {
        "model_version": run_id,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "control_arm": data.control_arm,
        "treatment_arms": list(arms),
        "features": list(data.features),
        "categorical_features": list(data.categorical_features),
        "primary_outcome": data.main_outcome if data.outcomes else outcomes[0],
        "models": entries,
        "tuning": tuning,
        "selection": selection,
    }
    write_manifest(ctx.model_dir, manifest)

    importance = ctx.spark.createDataFrame(
        [dict(r, run_id=run_id) for r in importance_rows],
        "learner string, outcome string, arm string, model string, feature string, gain double, "
        "gain_share double, run_id string")
    location = store.write(conform(importance, "feature_importance"), "feature_importance", run_id)
    uplift_location = None
    if uplift_rows:
        uplift_df = ctx.spark.createDataFrame(
            [dict(r, run_id=run_id) for r in uplift_rows],
            "learner string, outcome string, arm string, feature string, gain double, gain_share double, "
            "rank int, sample_rows long, surrogate_r2 double, run_id string")
        uplift_location = store.write(conform(uplift_df, "uplift_importance"), "uplift_importance", run_id)
    return {
        "models": len(entries),
        "model_dir": ctx.model_dir,
        "learners": list(cfg.model.learners),
        "outcomes": outcomes,
        "treatment_arms": list(arms),
        "backend": entries[0]["backend"] if entries else None,
        "feature_importance": location,
        "uplift_importance": uplift_location,
        "selected_learner": selection["learner"],
        "selection_scores": selection["scores"],
        "seconds": round(watch(), 1),
    }


def _save_reference_profile(ctx: RunContext, data: DataConfig, frame) -> None:
    """Monitoring reference: summaries of the train rows only, never the rows themselves."""
    from pyspark.sql import functions as F

    from ..errors import MonitoringError
    from ..monitoring import build_feature_profile, save_profile

    if not data.features:
        return
    try:
        profile = build_feature_profile(frame.where(~F.col(VALID_COL)), list(data.features),
                                        list(data.categorical_features), ctx.cfg.monitoring)
        save_profile(profile, ctx.model_dir)
    except (DataError, MonitoringError) as exc:  # monitoring must not block training; monitor rebuilds it
        log.warning("reference profile not saved (%s); monitor will build it from the train split", exc)
