"""The Spark entry points of evaluation: curves, metrics and deciles of score columns from one scan.

Everything that touches a DataFrame lives here (and in :mod:`.scan`, which does the distributed
work); :mod:`.curves`, :mod:`.metrics` and :mod:`.calibration` stay pure NumPy so they can be read,
tested and reused without a Spark session. :func:`scan_settings` is the one place the configured
evaluation turns into scan settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from ..config import EvaluationConfig
from .calibration import deciles_frame
from .curves import CurveResult, curve_frame
from .metrics import MetricRow, cut_fractions, metrics_from_scan
from .scan import ScanResult, ScanSettings, scan_slices, scan_uplift


@dataclass(frozen=True)
class UpliftEvaluation:
    """``curve``/``deciles`` are small pandas tables; ``metrics`` are rows; ``binary`` tells whether
    the normalized (perfect-curve) metrics were computed."""

    curve: "object"
    metrics: List[MetricRow]
    deciles: "object"
    binary: bool

    def metric(self, name: str) -> MetricRow:
        for row in self.metrics:
            if row.metric == name:
                return row
        raise KeyError(name)


def scan_settings(cfg: EvaluationConfig, n_segments: Optional[int] = None) -> ScanSettings:
    """Scan settings of the configured evaluation (``n_segments`` overrides the configured one)."""
    return ScanSettings(replicates=cfg.bootstrap_replicates, seed=cfg.bootstrap_seed,
                        curve_points=cfg.curve_points, cut_fractions=cut_fractions(cfg.top_k_percents),
                        n_deciles=cfg.n_deciles, n_segments=n_segments or cfg.n_segments)


def _evaluation(scan: ScanResult, cfg: EvaluationConfig, binary: Optional[bool]) -> UpliftEvaluation:
    is_binary = scan.binary if binary is None else bool(binary) and scan.binary
    return UpliftEvaluation(
        curve=curve_frame(scan.points, cfg.ci_level),
        metrics=metrics_from_scan(scan, cfg.top_k_percents, cfg.ci_level, is_binary),
        deciles=deciles_frame(scan.deciles),
        binary=is_binary,
    )


def evaluate_uplift(df, score_col: str, treatment_col: str, outcome_col: str, cfg: EvaluationConfig,
                    id_col: str = "customer_id", binary: Optional[bool] = None,
                    n_segments: Optional[int] = None, cluster_col: Optional[str] = None) -> UpliftEvaluation:
    """Curves (sampled, with bootstrap bands), metrics (with CIs) and decile calibration of one score.

    ``binary=None`` detects 0/1 outcomes from the data; pass the configured outcome type to be strict.
    """
    scan = scan_uplift(df, score_col, treatment_col, outcome_col, id_col, scan_settings(cfg, n_segments), cluster_col)
    return _evaluation(scan, cfg, binary)


def evaluate_slices(df, slice_col: str, score_col: str, treatment_col: str, outcome_col: str,
                    cfg: EvaluationConfig, id_col: str = "customer_id",
                    labels: Optional[Mapping[int, str]] = None,
                    binary: Optional[Mapping[int, Optional[bool]]] = None,
                    n_segments: Optional[int] = None,
                    cluster_col: Optional[str] = None) -> Dict[int, UpliftEvaluation]:
    """:func:`evaluate_uplift` for every slice id in ``slice_col`` at once (one shuffle for all):
    e.g. every (learner, arm, outcome, split) of a run. ``binary`` maps slice id → outcome type.
    ``cluster_col``: bootstrap by cluster (cluster-randomized experiments)."""
    scans = scan_slices(df, slice_col, score_col, treatment_col, outcome_col, id_col,
                        scan_settings(cfg, n_segments), labels, cluster_col)
    binary = binary or {}
    return {k: _evaluation(scan, cfg, binary.get(k)) for k, scan in scans.items()}


def uplift_metrics(df, score_col: str, treatment_col: str, outcome_col: str, cfg: EvaluationConfig,
                   id_col: str = "customer_id", binary: Optional[bool] = None) -> List[MetricRow]:
    """Exact metrics (with bootstrap CIs) of one score column, treatment 1/0, on Spark."""
    scan = scan_uplift(df, score_col, treatment_col, outcome_col, id_col, scan_settings(cfg))
    return metrics_from_scan(scan, cfg.top_k_percents, cfg.ci_level, binary)


def exact_curve(df, score_col: str, treatment_col: str, outcome_col: str, id_col: str = "customer_id",
                curve_points: int = 101, replicates: int = 0, seed: int = 11, ci_level: float = 0.95,
                n_segments: Optional[int] = None) -> CurveResult:
    """Exact Qini and uplift curves of one score column (treatment 1/0) over all rows, on Spark.

    Only ``curve_points`` sampled points come back (origin and exact end point included); the areas
    cover every tie block. ``curve_points`` > number of rows returns the full curve.
    """
    scan = scan_uplift(df, score_col, treatment_col, outcome_col, id_col,
                       ScanSettings(replicates=replicates, seed=seed, curve_points=curve_points,
                                    n_segments=n_segments))
    n, n_t, y_t, y_c = (float(v) for v in scan.totals[:, 0])
    return CurveResult(points=curve_frame(scan.points, ci_level), qini_area=float(scan.qini_area[0]),
                       uplift_area=float(scan.uplift_area[0]), n=int(n), n_t=int(n_t), n_c=int(n - n_t),
                       y_t=y_t, y_c=y_c)


def decile_calibration(df, score_col: str, treatment_col: str, outcome_col: str,
                       id_col: str = "customer_id", n_deciles: int = 10,
                       n_segments: Optional[int] = None):
    """The calibration table (pandas) of one score column (treatment 1/0), computed on Spark."""
    scan = scan_uplift(df, score_col, treatment_col, outcome_col, id_col,
                       ScanSettings(replicates=0, curve_points=2, n_deciles=n_deciles, n_segments=n_segments))
    return deciles_frame(scan.deciles)
