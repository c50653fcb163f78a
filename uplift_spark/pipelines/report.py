"""``uplift-spark report``: read the run's tables, aggregate segments on Spark, write one HTML + PNGs.

Every input table is optional: a missing table (or a run that never wrote it) becomes a note in its
section, so the report can be produced after any stage. Only small aggregates reach the driver: the
evaluation/monitoring tables are already per-arm summaries, and predictions are aggregated per
(arm, feature, bin) on the executors before ``toPandas``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import pandas as pd

from ..config import DataConfig, UpliftConfig
from ..errors import DataError
from ..logs import get_logger
from ..report import ReportData, render_report, segment_uplift, strongest_features
from ..report.data import SECTION_TABLES, TABLE_STAGES
from ..report.selection import best_learner, choose_learners, choose_outcome, choose_split
from .context import RunContext, Stopwatch

log = get_logger("report")

# the small tables read whole (per run); a guard against reading a big table by mistake
SMALL_TABLE_MAX_ROWS = 200_000
REPORT_FILE = "report.html"


def _data_config(cfg: UpliftConfig) -> DataConfig:
    """The data contract in force (the synthetic generator's when the config lists no features)."""
    try:
        from ..datasets import resolve_data_config
    except ImportError:  # pragma: no cover - datasets package not installed
        return cfg.data
    try:
        return resolve_data_config(cfg)
    except Exception:  # a report must not fail on the data section; fall back to what the YAML says
        return cfg.data


def read_small(ctx: RunContext, table: str, notes: Dict[str, str], section: str) -> Optional[pd.DataFrame]:
    """One run's rows of a small summary table as pandas, or ``None`` with a note saying why."""
    stage = TABLE_STAGES.get(table)
    hint = f" (run 'uplift-spark {stage}' to produce it)" if stage else ""
    if not ctx.store.exists(table):
        notes[section] = f"Not available: table '{table}' does not exist yet{hint}."
        return None
    df = ctx.store.read(table, run_id=ctx.run_id).limit(SMALL_TABLE_MAX_ROWS + 1)
    pdf = df.toPandas()
    if pdf.empty:
        notes[section] = f"Not available: table '{table}' has no rows for run '{ctx.run_id}'{hint}."
        return None
    if len(pdf) > SMALL_TABLE_MAX_ROWS:
        log.warning("report: %s has more than %d rows for this run; showing the first %d",
                    table, SMALL_TABLE_MAX_ROWS, SMALL_TABLE_MAX_ROWS)
        pdf = pdf.head(SMALL_TABLE_MAX_ROWS)
    return pdf


def _non_features(data_cfg: DataConfig, columns: Sequence[str]) -> set:
    """Columns that must never be sliced as segments: ids, arms, outcomes, truths, propensities."""
    skip = {"run_id", data_cfg.customer_id, "customer_id", data_cfg.arm, "arm", "assigned_at", "features_at",
            *data_cfg.outcome_names, *data_cfg.outcome_like_columns}
    if data_cfg.assigned_at:
        skip.add(data_cfg.assigned_at)
    skip |= set(data_cfg.feature_observed_at.values())
    for c in columns:
        if c.startswith("true_uplift_") or (data_cfg.propensity and c.startswith(data_cfg.propensity + "_")):
            skip.add(c)
    return skip


def compute_segments(ctx: RunContext, data_cfg: DataConfig, importance: Optional[pd.DataFrame],
                     outcome: Optional[str], split: Optional[str], learner: Optional[str],
                     notes: Dict[str, str]) -> Optional[pd.DataFrame]:
    """Per-(arm, feature, bin) predicted and observed uplift for the strongest features (Spark)."""
    from pyspark.sql import functions as F

    rcfg = ctx.cfg.report
    for table in ("predictions", "experiment_log"):
        if not ctx.store.exists(table):
            notes["segments"] = (f"Segments not available: table '{table}' does not exist yet "
                                 f"(run 'uplift-spark {TABLE_STAGES[table]}').")
            return None
    if outcome is None or learner is None:
        notes["segments"] = "Segments not available: no evaluated outcome/learner to describe."
        return None
    log_df = ctx.store.read("experiment_log", run_id=ctx.run_id)
    if outcome not in log_df.columns:
        notes["segments"] = f"Segments not available: experiment_log has no outcome column '{outcome}'."
        return None
    preds = ctx.store.read("predictions", run_id=ctx.run_id, learner=learner, outcome=outcome)
    if split is not None:
        preds = preds.where(F.col("split") == split)
    skip = _non_features(data_cfg, log_df.columns)
    available = [c for c in log_df.columns if c not in skip]
    if data_cfg.features:
        available = [c for c in data_cfg.features if c in log_df.columns]
    arms = list(data_cfg.treatment_arms) or [r["arm"] for r in preds.select("arm").distinct().limit(1000).collect()]
    if not arms:
        notes["segments"] = (f"Segments not available: no predictions for learner '{learner}', outcome "
                             f"'{outcome}', split '{split}'.")
        return None
    by_arm = strongest_features(importance, available, rcfg.segment_features) if importance is not None else {}
    fallback = list(available[: rcfg.segment_features])
    by_arm = {a: by_arm.get(a) or fallback for a in arms}
    features = list(dict.fromkeys(f for fs in by_arm.values() for f in fs))
    if not features:
        notes["segments"] = "Segments not available: no feature columns found in experiment_log."
        return None
    id_col = data_cfg.customer_id if data_cfg.customer_id in log_df.columns else "customer_id"
    arm_col = data_cfg.arm if data_cfg.arm in log_df.columns else "arm"
    log_small = log_df.select(F.col(id_col).cast("string").alias("customer_id"),
                              F.col(arm_col).cast("string").alias("actual_arm"), F.col(outcome), *features)
    joined = preds.select("customer_id", "arm", "uplift").join(log_small, "customer_id", "inner")
    categorical = [c for c in data_cfg.categorical_features if c in features]
    return segment_uplift(joined, features, categorical, control_arm=data_cfg.control_arm, outcome_col=outcome,
                          bins=rcfg.segment_bins, max_categories=rcfg.segment_max_categories,
                          features_by_arm=by_arm)


def collect_report_data(ctx: RunContext) -> ReportData:
    """Fill :class:`ReportData` from the run's tables (each optional)."""
    cfg = ctx.cfg
    data_cfg = _data_config(cfg)
    notes: Dict[str, str] = {}
    frames = {section: read_small(ctx, table, notes, section)
              for section, table in SECTION_TABLES.items() if section != "segments"}
    data = ReportData(
        run_id=ctx.run_id,
        control_arm=data_cfg.control_arm,
        treatment_arms=tuple(data_cfg.treatment_arms),
        outcome=cfg.report.outcome or data_cfg.primary_outcome or (data_cfg.outcomes[0].name if data_cfg.outcomes else None),
        outcome_types={o.name: o.type for o in data_cfg.outcomes},
        split=cfg.report.split,
        learners=tuple(cfg.report.learners),
        ci_level=cfg.evaluation.ci_level,
        psi_warn=cfg.monitoring.psi_warn,
        psi_alert=cfg.monitoring.psi_alert,
        notes=notes,
        **frames,
    )
    # the configured outcome may not have been evaluated (e.g. model.outcomes is narrower): use what exists
    evaluated = set()
    for section in ("metrics", "curves"):
        df = data.frame(section)
        if df is not None and "outcome" in df:
            evaluated |= set(df["outcome"].dropna())
    if evaluated and data.outcome not in evaluated and not cfg.report.outcome:
        data.outcome = None
    outcome = choose_outcome(data, cfg.report)
    split = choose_split(data, cfg.report)
    learners = choose_learners(data, cfg.report)
    learner = best_learner(data.frame("metrics"), None, outcome, split, learners)
    selected = (_manifest(ctx).get("selection") or {}).get("learner")
    if cfg.policy.learner == "auto" and selected and (not learners or selected in learners):
        learner = selected  # the learner auto deploys (chosen on valid at train time)
    elif cfg.policy.learner != "auto" and (not learners or cfg.policy.learner in learners):
        learner = cfg.policy.learner
    data.outcome, data.split, data.segment_learner = outcome, split, learner
    importance = data.frame("feature_importance")
    if importance is not None:
        importance = importance[(importance["outcome"] == outcome) & (importance["learner"] == learner)]
    uplift_imp = read_small(ctx, "uplift_importance", {}, "uplift_importance")
    if uplift_imp is not None:  # segments slice what changes the effect, not what predicts the outcome
        part = uplift_imp[(uplift_imp["outcome"] == outcome) & (uplift_imp["learner"] == learner)]
        importance = part if not part.empty else importance
    try:
        data.segments = compute_segments(ctx, data_cfg, importance, outcome, split, learner, notes)
    except DataError as exc:
        notes["segments"] = f"Segments not available: {exc}"
    return data


def _manifest(ctx: RunContext) -> dict:
    """The run's model manifest, or {} when train has not run (the report works after any stage)."""
    from ..errors import ModelError
    from ..learners import load_manifest

    try:
        return load_manifest(ctx.model_dir)
    except ModelError:
        return {}


def _choice_sections(ctx: RunContext) -> list:
    """"Which model, and what drives the effect?" (manifest choice + uplift importance)."""
    from ..report.choice_section import choice_data, choice_report_section

    importance = read_small(ctx, "uplift_importance", {}, "uplift_importance")
    section = choice_report_section(choice_data(_manifest(ctx), importance, ctx.cfg.report.segment_features))
    return [section] if section else []


def write_report(folder: str, html_text: str, figures: Dict[str, bytes]) -> str:
    """Write ``report.html`` and the PNGs into ``folder``; stale PNGs of an earlier attempt are removed."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".png") and name not in figures:
            os.remove(os.path.join(folder, name))
    for name, png in figures.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(png)
    path = os.path.join(folder, REPORT_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(html_text)
    os.replace(tmp, path)  # readers never see a half-written report
    return path


def _policy_sections(ctx: RunContext) -> list:
    """The "Does the policy beat the alternatives?" section when evaluate-policy ran (small tables)."""
    from ..report.policy_section import policy_report_section

    store = ctx.store
    if not (store.exists("policy_evaluation") and store.exists("policy_curves")):
        return []
    ev = store.read("policy_evaluation", run_id=ctx.run_id).toPandas()  # policies × metrics: small
    curves = store.read("policy_curves", run_id=ctx.run_id).toPandas()  # curves × grid points: small
    if ev.empty:
        return []
    summary = None
    if store.exists("decision_summary"):
        summary = store.read("decision_summary", run_id=ctx.run_id).toPandas()  # bucket × action rows: small
    section = policy_report_section(ev, curves, ctx.cfg.policy_evaluation.ci_level, summary=summary)
    return [section] if section else []


def run(ctx: RunContext, **_ignored) -> dict:
    """Build the report of ``ctx.run_id`` into ``<output_root>/reports/<run_id>/report.html``."""
    watch = Stopwatch()
    data = collect_report_data(ctx)
    extra = _policy_sections(ctx) + _choice_sections(ctx)
    rendered = render_report(data, ctx.cfg.report, extra_sections=extra)
    path = write_report(ctx.report_dir, rendered.html, rendered.figures)
    missing: List[str] = sorted(s for s in SECTION_TABLES if data.frame(s) is None)
    log.info("report: %d figures, %d missing sections, %.1fs -> %s", len(rendered.figures), len(missing),
             watch(), path)
    return {
        "report": path,
        "html": path,  # the key pipelines/run.py reads
        "report_dir": ctx.report_dir,
        "figures": sorted(rendered.figures),
        "outcome": data.outcome,
        "split": data.split,
        "segment_learner": data.segment_learner,
        "missing_sections": missing,
        "findings": len(rendered.summary),
        "seconds": round(watch(), 1),
    }
