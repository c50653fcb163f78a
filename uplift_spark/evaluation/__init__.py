"""Exact, distributed uplift evaluation (Qini/uplift curves, AUUC, uplift@k, bootstrap CIs, deciles).

Pure functions on DataFrames: no config files, no sessions, no table names (pipelines do that).
"""

from .calibration import deciles_frame
from .curves import CurveResult
from .metrics import MetricRow, uplift_at_name
from .scan import ScanSettings, scan_slices, scan_uplift
from .suite import (UpliftEvaluation, decile_calibration, evaluate_slices, evaluate_uplift, exact_curve,
                    scan_settings, uplift_metrics)

__all__ = [
    "CurveResult", "MetricRow", "ScanSettings", "UpliftEvaluation", "decile_calibration", "deciles_frame",
    "evaluate_uplift", "evaluate_slices", "exact_curve", "scan_settings", "scan_slices", "scan_uplift", "uplift_at_name",
    "uplift_metrics",
    "UpliftEvaluator",
]


def __getattr__(name):
    # imported on first use: the evaluator needs pyspark.ml, and the pure NumPy modules here
    # (e.g. ``curves``) must stay importable without pyspark
    if name == "UpliftEvaluator":
        from .evaluator import UpliftEvaluator

        return UpliftEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
