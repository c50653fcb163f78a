"""``uplift-spark train``: fit every configured learner × outcome on the run's ``train`` split.

Reads ``experiment_log`` and ``splits`` for the run, trains on ``train`` with early stopping on ``valid``,
saves each model under ``<model_dir>/<learner>/<outcome>/``, writes ``<model_dir>/manifest.json`` (how
score/decide/monitor find the models) and the ``feature_importance`` table.
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
    try:
        estimators = {(learner, outcome): learner_class(learner).from_config(
                          data, cfg.model, outcome=outcome, validation_col=VALID_COL, treatment_arms=arms,
                          fold_col=FOLD_COL, min_rows_per_arm=cfg.split.min_rows_per_arm)
                      for learner in cfg.model.learners for outcome in outcomes}
        for est in estimators.values():  # input checks (folds per arm, ...) before any model is written
            est.preflight(frame)
        for learner in cfg.model.learners:
            for outcome in outcomes:
                est = estimators[(learner, outcome)]
                model = est.fit(frame)
                rel = f"{learner}/{outcome}"
                folder = hfs.join(ctx.model_dir, learner, outcome)
                model.write().overwrite().save(folder)
                entries.append({"learner": learner, "outcome": outcome, "outcome_type": model.outcome_type,
                                "path": rel, "backend": model.training.get("backend"),
                                "seconds": model.training.get("seconds"),
                                # per booster: per_task or distributed (model.distribution)
                                "strategy": {k: b.get("strategy") for k, b in
                                             (model.training.get("boosters") or {}).items()},
                                "digest_sha256": digest_sha256(folder)})
                importance_rows += model.feature_importance()
                log.info("trained %s-learner for %s in %.1fs", learner, outcome, watch())
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
    }
    write_manifest(ctx.model_dir, manifest)

    importance = ctx.spark.createDataFrame(
        [dict(r, run_id=run_id) for r in importance_rows],
        "learner string, outcome string, arm string, model string, feature string, gain double, "
        "gain_share double, run_id string")
    location = store.write(conform(importance, "feature_importance"), "feature_importance", run_id)
    return {
        "models": len(entries),
        "model_dir": ctx.model_dir,
        "learners": list(cfg.model.learners),
        "outcomes": outcomes,
        "treatment_arms": list(arms),
        "backend": entries[0]["backend"] if entries else None,
        "feature_importance": location,
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
