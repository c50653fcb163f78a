"""Optional MLflow tracking: params, per-stage metrics, the report and the model folder as artifacts.

Off by default; when ``mlflow.enabled`` is true and ``mlflow`` is not installed the run fails early with a
clear message rather than silently not tracking.
"""

from __future__ import annotations

import os
from typing import Dict

from ..config import to_dict
from ..errors import ConfigError
from ..logs import get_logger

log = get_logger("tracking")


def _flatten(prefix: str, value, out: Dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:490]


class Tracker:
    """Context manager that mirrors a pipeline run into MLflow when enabled; a no-op otherwise."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cfg = ctx.cfg.mlflow
        self.mlflow = None

    def __enter__(self):
        if not self.cfg.enabled:
            return self
        try:
            import mlflow
        except ImportError:
            raise ConfigError("mlflow.enabled is true but mlflow is not installed (pip install mlflow)") from None
        self.mlflow = mlflow
        if self.cfg.tracking_uri:
            mlflow.set_tracking_uri(self.cfg.tracking_uri)
        mlflow.set_experiment(self.cfg.experiment)
        mlflow.start_run(run_name=self.ctx.run_id)
        params: Dict[str, str] = {}
        cfg = to_dict(self.ctx.cfg)
        for section in ("data", "split", "model", "evaluation", "policy"):
            _flatten(section, cfg.get(section, {}), params)
        mlflow.log_params({k: v for k, v in list(params.items())[:100]})
        mlflow.set_tag("uplift_spark.run_id", self.ctx.run_id)
        return self

    def log_stage(self, stage: str, summary, seconds: float) -> None:
        if self.mlflow is None:
            return
        metrics = {f"{stage}.seconds": seconds}
        if isinstance(summary, dict):
            for key, value in summary.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[f"{stage}.{key}"] = float(value)
        self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items()})

    def finish(self, result) -> None:
        if self.mlflow is None:
            return
        if result.get("report") and os.path.isfile(result["report"]):
            self.mlflow.log_artifacts(os.path.dirname(result["report"]), artifact_path="report")
        if os.path.isdir(self.ctx.model_dir):
            self.mlflow.log_artifacts(self.ctx.model_dir, artifact_path="model")

    def __exit__(self, exc_type, exc, tb):
        if self.mlflow is not None:
            self.mlflow.end_run(status="FAILED" if exc_type else "FINISHED")
        return False
