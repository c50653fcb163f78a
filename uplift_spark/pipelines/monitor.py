"""``uplift-spark monitor``: compare a new batch with the training reference and say when to retrain.

Reads the batch (``--batch``: Delta, Parquet or CSV path, or a table; default the run's ``oot`` rows of experiment_log, or
its ``test`` rows when there is no out-of-time split), the reference profile in the model folder, the
saved model, the run's ``decisions`` and, with ``--outcomes``, the campaign outcomes. Writes
``drift_features``, ``drift_scores``, ``drift_policy``, ``realized_uplift`` and ``monitoring_alerts``,
each replaced per (run_id, batch_id) so a rerun of the same batch leaves one copy of its rows.

Reference sections missing from ``reference_profile.json`` are built once and saved, so later batches
compare with the same frozen reference: features from the run's ``train`` rows, scores from the run's
held-out ``predictions`` (valid/test) of the monitored model, and the policy mix from the first
campaign monitored (later campaigns are compared with it).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

from ..datasets import resolve_data_config
from ..errors import DataError, ModelError, MonitoringError
from ..io.sources import read_input
from ..joins import join_customers
from ..logs import get_logger
from ..monitoring import (
    build_feature_profile,
    build_policy_profile,
    build_score_profile,
    campaign_outcomes,
    collect_alerts,
    feature_drift,
    load_profile,
    policy_drift,
    profile_path,
    realized_uplift,
    retrain_recommended,
    save_profile,
    score_drift,
    wide_to_long,
)
from ..policy.value import arm_value
from ..schemas import TABLE_COLUMNS, conform, slug, uplift_column
from .context import RunContext, Stopwatch

log = get_logger("monitor")

MONITOR_TABLES = ("drift_features", "drift_scores", "drift_policy", "realized_uplift", "monitoring_alerts")


# ------------------------------------------------------------------------------------------ sources


def _read_source(ctx: RunContext, source: str, what: str = "monitor: batch/outcomes"):
    """One of our table names (this run's rows), else any input :func:`read_input` reads: a Delta,
    Parquet or CSV path, or a metastore table."""
    if source in TABLE_COLUMNS or source == "experiment_log":
        if ctx.store.exists(source):
            return ctx.store.read(source, run_id=ctx.run_id)
    return read_input(ctx.spark, source, what, config_file=ctx.cfg.source_file)


def _derived_batch_id(source: str) -> str:
    """Stable id for a source: readable name + hash of the full location (fits the run-id alphabet)."""
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", os.path.basename(source.rstrip("/")) or "batch").strip("_.-")
    digest = hashlib.sha1(os.path.abspath(source).encode("utf-8") if os.sep in source else source.encode("utf-8")).hexdigest()[:8]
    return f"{(base or 'batch')[:80]}-{digest}"


def default_batch(ctx: RunContext) -> Tuple[object, str]:
    """The run's out-of-time rows (or test rows) of experiment_log: (DataFrame, batch id)."""
    from pyspark.sql import functions as F

    if not ctx.store.exists("splits"):
        raise MonitoringError("monitor: no --batch given and the run has no splits table to take oot/test rows from")
    log_df = ctx.store.read("experiment_log", run_id=ctx.run_id)
    splits = ctx.store.read("splits", run_id=ctx.run_id).select("customer_id", "split")
    present = {r["split"] for r in splits.select("split").distinct().collect()}
    for split in ("oot", "test"):
        if split in present:
            chosen = splits.where(F.col("split") == split).select("customer_id")
            return join_customers(log_df, chosen, "customer_id"), split
    raise MonitoringError(f"monitor: run {ctx.run_id!r} has no 'oot' or 'test' rows in splits (have {sorted(present)})")


def _train_rows(ctx: RunContext):
    from pyspark.sql import functions as F

    log_df = ctx.store.read_run("experiment_log", ctx.run_id)
    train = ctx.store.read("splits", run_id=ctx.run_id).where(F.col("split") == "train").select("customer_id")
    return join_customers(log_df, train, "customer_id")


# ------------------------------------------------------------------------------------------ model


def _features(ctx: RunContext, manifest: Optional[dict]) -> Tuple[List[str], List[str]]:
    """The model's features (manifest), else the logged data contract's."""
    features = list((manifest or {}).get("features") or [])
    categorical = list((manifest or {}).get("categorical_features") or [])
    if not features:
        try:
            from ..datasets import logged_data_config

            data = logged_data_config(ctx.cfg)
        except ImportError:
            data = ctx.cfg.data
        features, categorical = list(data.features), list(data.categorical_features)
    return features, [c for c in categorical if c in features]


def _manifest(ctx: RunContext) -> Optional[dict]:
    try:
        from ..learners import load_manifest
    except ImportError:
        return None
    try:
        return load_manifest(ctx.model_dir)
    except (ModelError, OSError, ValueError) as exc:
        log.warning("monitor: no usable model manifest in %s (%s): score drift skipped", ctx.model_dir, exc)
        return None


def _chosen_model(ctx: RunContext, manifest: Optional[dict]) -> Optional[dict]:
    """The model the policy acts on: the policy (else primary) outcome, the first configured learner."""
    models = list((manifest or {}).get("models") or [])
    if not models:
        return None
    outcome = ctx.cfg.policy.outcome or (manifest or {}).get("primary_outcome") or (
        ctx.cfg.data.main_outcome if ctx.cfg.data.outcomes else None)
    learners = list(ctx.cfg.model.learners)

    def rank(m):
        return (0 if outcome is None or m.get("outcome") == outcome else 1,
                learners.index(m.get("learner")) if m.get("learner") in learners else len(learners))

    return sorted(models, key=rank)[0]


def _score(ctx: RunContext, entry: dict, batch_df, arm_names=()):
    """The batch with ``uplift_<arm>`` columns from the saved model, and the arm names they belong to."""
    from ..learners import load_entry

    model = load_entry(ctx.model_dir, entry)
    scored = model.transform(batch_df)
    known = getattr(model, "uplift_columns", None)  # {arm: column}: UpliftModel.uplift_columns
    if known:
        return scored, [arm for arm, col in known.items() if col in scored.columns]
    added = [c for c in scored.columns if c.startswith("uplift_") and c not in batch_df.columns]
    by_slug = {slug(a): a for a in list(ctx.cfg.data.treatment_arms) + list(arm_names)}
    arms = [by_slug.get(c[len("uplift_"):], c[len("uplift_"):]) for c in added]
    return scored, [a for a in arms if uplift_column(a) in scored.columns]


def _reference_scores(ctx: RunContext, entry: dict):
    """Held-out predictions (valid/test) of the monitored model, long: arm, uplift, value."""
    from pyspark.sql import functions as F

    if not ctx.store.exists("predictions"):
        return None
    preds = ctx.store.read("predictions", run_id=ctx.run_id).where(F.col("split").isin("valid", "test"))
    if entry.get("learner"):
        preds = preds.where(F.col("learner") == entry["learner"])
    if entry.get("outcome"):
        preds = preds.where(F.col("outcome") == entry["outcome"])
    if preds.limit(1).count() == 0:
        return None
    value = F.lit(None).cast("double")
    for arm in ctx.cfg.policy.arms:  # the same value definition as the batch's (policy.value.arm_value)
        value = F.when(F.col("arm") == arm, arm_value(preds, ctx.cfg.policy, arm, F.col("uplift"))).otherwise(value)
    if not ctx.cfg.policy.arms:
        value = F.col("uplift").cast("double")
    else:
        value = F.coalesce(value, F.col("uplift").cast("double"))
    return preds.select("arm", F.col("uplift").cast("double").alias("uplift"), value.alias("value"))


# ------------------------------------------------------------------------------------------ policy


def _policy_summary(ctx: RunContext, campaign_id: str) -> Dict[str, object]:
    from pyspark.sql import functions as F

    summary: Dict[str, object] = {"campaign_id": campaign_id}
    if ctx.store.exists("decision_summary"):
        rows = (ctx.store.read("decision_summary", run_id=ctx.run_id, campaign_id=campaign_id)
                .where((F.col("kind") == "constraint") & (F.col("constraint") == "budget"))
                .select("used", "limit").collect())
        if rows and rows[0]["limit"]:
            summary["budget_use"] = float(rows[0]["used"] or 0.0) / float(rows[0]["limit"])
    if "budget_use" not in summary and ctx.cfg.policy.budget:
        summary["budget"] = ctx.cfg.policy.budget
        summary["costs"] = {arm: econ.cost for arm, econ in ctx.cfg.policy.arms.items()}
    return summary


# ------------------------------------------------------------------------------------------ writing


def _clean(value):
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def _to_spark(ctx: RunContext, pdf, table: str, extra: Dict[str, object]):
    """A small pandas frame + per-batch columns → a Spark frame conforming to the table contract."""
    from pyspark.sql import types as T

    type_of = {"string": T.StringType(), "double": T.DoubleType(), "long": T.LongType(), "int": T.IntegerType(),
               "timestamp": T.TimestampType(), "boolean": T.BooleanType()}
    spec = TABLE_COLUMNS[table]
    schema = T.StructType([T.StructField(c, type_of[t], True) for c, t in spec])
    rows = []
    for rec in pdf.to_dict("records"):
        rec = {**rec, **extra}
        row = []
        for c, t in spec:
            v = _clean(rec.get(c))
            if v is not None and t == "double":
                v = float(v)
            elif v is not None and t in ("long", "int"):
                v = int(v)
            elif v is not None and t == "boolean":
                v = bool(v)
            elif v is not None and t == "string":
                v = str(v)
            row.append(v)
        rows.append(tuple(row))
    return conform(ctx.spark.createDataFrame(rows, schema=schema), table)


def _write(ctx: RunContext, pdf, table: str, extra: Dict[str, object], batch_id: str) -> str:
    return ctx.store.write(_to_spark(ctx, pdf, table, extra), table, ctx.run_id, keys={"batch_id": batch_id})


# ------------------------------------------------------------------------------------------ stage


def _reference_features(ctx: RunContext, profile: dict, features, categorical) -> bool:
    """Build the frozen feature reference from the run's train rows once; True when it was built."""
    from pyspark import StorageLevel

    if profile.get("features"):
        return False
    log.info("monitor: building the reference feature profile from run %s's train rows", ctx.run_id)
    train = _train_rows(ctx).persist(StorageLevel.MEMORY_AND_DISK)  # three passes over one join
    try:
        profile.update(build_feature_profile(train, features, categorical, ctx.cfg.monitoring))
    finally:
        train.unpersist()
    return True


def _batch_stats(ctx: RunContext, batch_df, batch_id: str, monitored_at: datetime):
    """(rows, batch time): the batch's latest assignment time when it has one, else now."""
    from pyspark.sql import functions as F

    time_col = ctx.cfg.data.assigned_at or "assigned_at"
    stats = batch_df.agg(F.count(F.lit(1)).alias("n"),
                         (F.max(time_col) if time_col in batch_df.columns else F.lit(None)).alias("t")).first()
    if not stats["n"]:
        raise MonitoringError(f"monitor: batch {batch_id!r} has no rows")
    return int(stats["n"]), stats["t"] if isinstance(stats["t"], datetime) else monitored_at


def _score_section(ctx: RunContext, manifest, profile: dict, batch_df, extra, batch_id, written, notes):
    """Score drift of the monitored model; returns (drift frame or None, reference built?)."""
    entry = _chosen_model(ctx, manifest)
    if entry is None:
        notes.append("score drift skipped: no saved model")
        return None, False
    changed = False
    scored, arms = _score(ctx, entry, batch_df, (manifest or {}).get("treatment_arms") or ())
    model_name = f"{entry.get('learner')}/{entry.get('outcome')}"
    if not profile.get("scores"):
        ref = _reference_scores(ctx, entry)
        if ref is not None:
            profile["scores"] = build_score_profile(ref, ctx.cfg.monitoring.bins, ctx.cfg.monitoring.quantile_error)
            profile["scores"]["model"] = model_name
            changed = True
    if not profile.get("scores"):
        notes.append("score drift skipped: no reference predictions (run predict first)")
        return None, changed
    values = {arm: arm_value(scored, ctx.cfg.policy, arm) for arm in arms}
    sdrift = score_drift(wide_to_long(scored, arms, values), profile["scores"], ctx.cfg.monitoring)
    written["drift_scores"] = _write(ctx, sdrift, "drift_scores", {**extra, "model": model_name}, batch_id)
    return sdrift, changed


def _decisions(ctx: RunContext):
    campaign_id = ctx.cfg.policy.campaign_id
    if not ctx.store.exists("decisions"):
        return None
    decisions = ctx.store.read("decisions", run_id=ctx.run_id, campaign_id=campaign_id)
    return None if decisions.limit(1).count() == 0 else decisions


def _policy_section(ctx: RunContext, decisions, profile: dict, extra, batch_id, written, notes):
    """Policy-mix drift against the first monitored campaign; returns (drift frame or None, reference built?)."""
    campaign_id = ctx.cfg.policy.campaign_id
    if decisions is None:
        notes.append(f"policy drift skipped: no decisions for campaign {campaign_id!r}")
        return None, False
    current = build_policy_profile(decisions, _policy_summary(ctx, campaign_id))
    changed = not profile.get("policy")
    if changed:
        profile["policy"] = current
    pdrift = policy_drift(current, profile["policy"], ctx.cfg.monitoring)
    written["drift_policy"] = _write(
        ctx, pdrift, "drift_policy",
        {**extra, "campaign_id": campaign_id, "reference_campaign_id": profile["policy"].get("campaign_id")}, batch_id)
    return pdrift, changed


def _realized_section(ctx: RunContext, decisions, outcomes: str, extra, batch_id, written, notes):
    """Realized uplift of the campaign from its outcomes (contacted vs holdout)."""
    mcfg = ctx.cfg.monitoring
    if decisions is None:
        raise MonitoringError(f"monitor: outcomes given but run {ctx.run_id!r} has no decisions for "
                              f"campaign {ctx.cfg.policy.campaign_id!r}")
    out_df = _read_source(ctx, outcomes, "monitor --outcomes")
    specs = {o.name: o.type for o in ctx.cfg.data.outcomes if o.name in out_df.columns}
    if not specs:
        raise DataError(f"monitor: outcomes {outcomes!r} has none of the outcome columns "
                        f"{list(ctx.cfg.data.outcome_names)} (have {sorted(out_df.columns)})")
    cluster = resolve_data_config(ctx.cfg).cluster
    if cluster is not None and cluster not in out_df.columns:
        notes.append(f"realized uplift: outcomes have no cluster column {cluster!r}; customer-level SEs")
        cluster = None
    customer_id = ctx.cfg.data.customer_id if ctx.cfg.data.customer_id in out_df.columns else "customer_id"
    per_customer = campaign_outcomes(decisions, out_df, specs, mcfg, customer_id=customer_id,
                                     outcome_time=mcfg.outcome_time_column, cluster_col=cluster)
    expected = ctx.cfg.policy.outcome or ctx.cfg.data.main_outcome
    rdrift = realized_uplift(per_customer, list(specs), mcfg, expected_outcome=expected, cluster_col=cluster)
    written["realized_uplift"] = _write(ctx, rdrift, "realized_uplift", extra, batch_id)
    return rdrift


def run(ctx: RunContext, batch: Optional[str] = None, batch_id: Optional[str] = None,
        outcomes: Optional[str] = None, **_ignored) -> Dict[str, object]:
    """Feature/score/policy drift of one batch, realized uplift when outcomes are given, and alerts."""
    from pyspark import StorageLevel

    from ..io import check_run_id

    watch = Stopwatch()
    mcfg = ctx.cfg.monitoring
    batch, batch_id, outcomes = batch or mcfg.batch, batch_id or mcfg.batch_id, outcomes or mcfg.outcomes
    if batch:
        batch_df = _read_source(ctx, batch, "monitor --batch")
        batch_id = batch_id or _derived_batch_id(batch)
    else:
        batch_df, split = default_batch(ctx)
        batch_id = batch_id or split
    check_run_id(batch_id, "batch id")
    monitored_at = datetime.now(timezone.utc).replace(tzinfo=None)

    manifest = _manifest(ctx)
    features, categorical = _features(ctx, manifest)
    if not features:
        raise MonitoringError("monitor: no features to profile (data.features is empty and the model manifest lists none)")
    try:
        profile = load_profile(ctx.model_dir)
    except MonitoringError:
        profile = {}
    changed = _reference_features(ctx, profile, features, categorical)

    batch_df = batch_df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows, batch_time = _batch_stats(ctx, batch_df, batch_id, monitored_at)
        extra = {"run_id": ctx.run_id, "batch_id": batch_id, "batch_time": batch_time, "monitored_at": monitored_at}
        monitored = [f for f in features if f in profile["features"]]
        fdrift = feature_drift(batch_df, profile["features"], mcfg, features=monitored)
        written = {"drift_features": _write(ctx, fdrift, "drift_features", extra, batch_id)}
        notes: List[str] = []
        sdrift, built = _score_section(ctx, manifest, profile, batch_df, extra, batch_id, written, notes)
        decisions = _decisions(ctx)
        pdrift, built_policy = _policy_section(ctx, decisions, profile, extra, batch_id, written, notes)
        changed = changed or built or built_policy
        rdrift = _realized_section(ctx, decisions, outcomes, extra, batch_id, written, notes) if outcomes else None
        alerts = collect_alerts(mcfg, fdrift, sdrift, pdrift, rdrift)
        written["monitoring_alerts"] = _write(ctx, alerts, "monitoring_alerts", extra, batch_id)
    finally:
        batch_df.unpersist()
    if changed:
        save_profile(profile, ctx.model_dir)

    drifted = fdrift.loc[fdrift["status"] != "ok", "feature"].tolist()
    summary = {
        "batch_id": batch_id,
        "rows": rows,
        "features_drifted": drifted,
        "max_feature_psi": None if fdrift.empty else _clean(float(fdrift["psi"].max())),
        "score_alerts": 0 if sdrift is None else int((sdrift["status"] != "ok").sum()),
        "alerts": int(len(alerts)),
        "retrain_recommended": retrain_recommended(alerts),
        "profile": profile_path(ctx.model_dir),
        "tables": written,
        "notes": notes,
        "seconds": round(watch(), 1),
    }
    if rdrift is not None and not rdrift.empty:
        summary["realized"] = {f"{r['action']}/{r['outcome']}": _clean(r["realized_uplift"])
                               for r in rdrift.to_dict("records")}
    log.info("monitor: batch %s: %d rows, %d features drifted, %d alerts", batch_id, rows, len(drifted), len(alerts))
    return summary
