"""The whole pipeline under one run id: ingest → validate → split → train → predict → evaluate → score
→ decide → publish (when ``publish.enabled``) → evaluate-policy → monitor → report. Each stage is the same function its own command calls, so a failed gate
stops the run exactly where ``uplift-spark <stage>`` would, and rerunning the run id is idempotent."""

from __future__ import annotations

import importlib
from typing import Dict, List, Optional

from ..errors import ConfigError
from ..logs import get_logger
from .context import RunContext, Stopwatch
from .gates import AFTER_VALIDATE, require_validated
from .tracking import Tracker

log = get_logger("run")

# The report comes last so it can show the decisions and the drift of this very run.
STAGE_ORDER = (
    "ingest", "validate", "split", "train", "predict", "evaluate", "score", "decide", "publish", "evaluate-policy",
    "monitor", "report",
)

# Which CLI kwargs each stage accepts.
_STAGE_KWARGS = {"score": ("population",), "decide": ("population", "as_of"), "evaluate-policy": ("population",), "monitor": ("batch", "batch_id", "outcomes")}


def run(ctx: RunContext, stages: Optional[List[str]] = None, skip_validation: bool = False,
        **kwargs) -> Dict[str, object]:
    """Run ``stages`` (default: all) in order; return per-stage summaries and where the outputs are.

    A subset without ``validate`` (e.g. ``evaluate,report``) needs a run that passed its gate,
    unless ``skip_validation``.
    """
    # publishing to the CRM is opt-in for a full run (publish.enabled), or named in --stages
    wanted = list(stages or [s for s in STAGE_ORDER if s != "publish" or ctx.cfg.publish.enabled])
    unknown = [s for s in wanted if s not in STAGE_ORDER]
    if unknown:
        raise ConfigError(f"--stages: unknown stage {unknown[0]!r}; stages are {', '.join(STAGE_ORDER)}")
    if "validate" not in wanted and not skip_validation and any(s in AFTER_VALIDATE for s in wanted):
        require_validated(ctx)
    total = Stopwatch()
    summaries: Dict[str, object] = {}
    tracker = Tracker(ctx)
    with tracker:
        for i, stage in enumerate(s for s in STAGE_ORDER if s in wanted):
            watch = Stopwatch()
            print(f"[uplift-spark] run {ctx.run_id} · stage {i + 1}/{len(wanted)} {stage} …", flush=True)
            module = importlib.import_module(f".{stage.replace('-', '_')}", __package__)
            stage_kwargs = {k: kwargs[k] for k in _STAGE_KWARGS.get(stage, ()) if kwargs.get(k) is not None}
            if stage == "publish" and skip_validation:
                stage_kwargs["skip_validation"] = True
            summary = module.run(ctx, **stage_kwargs)
            summaries[stage] = summary
            tracker.log_stage(stage, summary, watch())
            print(f"[uplift-spark]   {stage} ok in {watch():.1f}s: {_short(summary)}", flush=True)
        result = {
            "run_id": ctx.run_id,
            "seconds": round(total(), 1),
            "output_root": ctx.store.root,
            "tables": {name: ctx.store.location(name) for name in _written_tables(ctx)},
            "models": ctx.model_dir,
            "report": summaries.get("report", {}).get("html") if isinstance(summaries.get("report"), dict) else None,
            "stages": summaries,
        }
        tracker.finish(result)
    _print_final(result)
    return result


def _written_tables(ctx: RunContext) -> List[str]:
    from ..io import TABLES

    return [name for name in TABLES if ctx.store.exists(name)]


def _short(summary, limit: int = 220) -> str:
    if not isinstance(summary, dict):
        return str(summary)[:limit]
    parts = []
    for key, value in summary.items():
        if isinstance(value, (int, float, str, bool)):
            parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text[:limit] + ("…" if len(text) > limit else "")


def _num(value) -> str:
    return "?" if value is None else f"{float(value):,.2f}"


def _headlines(stages: Dict[str, object]) -> List[str]:
    """The few numbers a person looks for first: model quality on test, the decision, the drift."""
    lines = []
    evaluation = stages.get("evaluate") or {}
    for key, item in sorted((evaluation.get("headline") or {}).items()):
        if key.endswith("/test") and isinstance(item, dict) and item.get("value") is not None:
            lines.append(f"{item.get('metric')} {key}: {item['value']:.4f}")
    decide = stages.get("decide") or {}
    if decide:
        line = (f"decisions: {decide.get('contacts')} contacts, cost {_num(decide.get('cost'))}, expected value "
                f"{_num(decide.get('expected_value'))} (models' prediction")
        if decide.get("expected_value_calibrated") is not None:
            line += f"; calibrated on held-out data {_num(decide.get('expected_value_calibrated'))}"
            if decide.get("calibrated_ci_low") is not None:
                line += f", CI {_num(decide['calibrated_ci_low'])} to {_num(decide['calibrated_ci_high'])}"
        lines.append(line + f") ({decide.get('policy')} policy)")
    policy_eval = stages.get("evaluate-policy") or {}
    for split, item in sorted((policy_eval.get("headline") or {}).items()):
        if isinstance(item, dict) and item.get("sentence"):
            lines.append(item["sentence"])
    monitor = stages.get("monitor") or {}
    if monitor:
        lines.append(f"monitoring: {monitor.get('alerts')} alerts, drifted features "
                     f"{monitor.get('features_drifted')}, retrain recommended: {monitor.get('retrain_recommended')}")
    return lines


def _print_final(result: Dict[str, object]) -> None:
    print(f"[uplift-spark] run {result['run_id']} finished in {result['seconds']}s")
    for line in _headlines(result.get("stages") or {}):
        print(f"[uplift-spark]   {line}")
    print(f"[uplift-spark]   output root: {result['output_root']}")
    for name, loc in result["tables"].items():
        print(f"[uplift-spark]   table {name:<18} {loc}")
    print(f"[uplift-spark]   models: {result['models']}")
    if result.get("report"):
        print(f"[uplift-spark]   report: {result['report']}")
