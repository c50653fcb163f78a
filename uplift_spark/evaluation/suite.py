"""One call that evaluates a score column completely: curves, metrics and deciles from one scan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..config import EvaluationConfig
from .calibration import deciles_frame
from .curves import curve_frame
from .metrics import MetricRow, cut_fractions, metrics_from_scan
from .scan import ScanSettings, scan_uplift


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


def evaluate_uplift(df, score_col: str, treatment_col: str, outcome_col: str, cfg: EvaluationConfig,
                    id_col: str = "customer_id", binary: Optional[bool] = None,
                    n_segments: Optional[int] = None) -> UpliftEvaluation:
    """Curves (sampled, with bootstrap bands), metrics (with CIs) and decile calibration in two passes.

    ``binary=None`` detects 0/1 outcomes from the data; pass the configured outcome type to be strict.
    """
    settings = ScanSettings(replicates=cfg.bootstrap_replicates, seed=cfg.bootstrap_seed,
                            curve_points=cfg.curve_points, cut_fractions=cut_fractions(cfg.top_k_percents),
                            n_deciles=cfg.n_deciles, n_segments=n_segments or cfg.n_segments)
    scan = scan_uplift(df, score_col, treatment_col, outcome_col, id_col, settings)
    is_binary = scan.binary if binary is None else bool(binary) and scan.binary
    return UpliftEvaluation(
        curve=curve_frame(scan.points, cfg.ci_level),
        metrics=metrics_from_scan(scan, cfg.top_k_percents, cfg.ci_level, is_binary),
        deciles=deciles_frame(scan.deciles),
        binary=is_binary,
    )
