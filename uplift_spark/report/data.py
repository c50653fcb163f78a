"""What the report renders: small pandas frames (already aggregated) plus the run's vocabulary.

The report layer never touches Spark or tables; the pipeline fills a :class:`ReportData` from the run's
Delta tables and the module turns it into HTML. Any frame may be ``None`` (the table is missing); the
section then shows ``notes[section]`` instead of crashing, so a partial run still gets a report.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Tuple

import pandas as pd

# section key -> the table it comes from (used for "missing" notes and by the pipeline)
SECTION_TABLES: Dict[str, str] = {
    "curves": "uplift_curves",
    "deciles": "uplift_by_decile",
    "metrics": "uplift_metrics",
    "feature_importance": "feature_importance",
    "segments": "predictions",
    "validation": "validation_report",
    "split_summary": "split_summary",
    "decision_summary": "decision_summary",
    "drift_features": "drift_features",
    "realized_uplift": "realized_uplift",
}

# which stage writes each table, so a missing-table note can say what to run
TABLE_STAGES: Dict[str, str] = {
    "uplift_curves": "evaluate",
    "uplift_by_decile": "evaluate",
    "uplift_metrics": "evaluate",
    "feature_importance": "train",
    "predictions": "predict",
    "experiment_log": "ingest",
    "validation_report": "validate",
    "split_summary": "split",
    "decision_summary": "decide",
    "drift_features": "monitor",
    "realized_uplift": "monitor",
}


@dataclasses.dataclass
class ReportData:
    """Everything one report shows. Frames follow the table contracts in ``uplift_spark.schemas``;
    ``segments`` follows :data:`uplift_spark.report.segments.SEGMENT_COLUMNS`."""

    run_id: str = ""
    control_arm: Optional[str] = None
    treatment_arms: Tuple[str, ...] = ()
    outcome: Optional[str] = None
    outcome_types: Mapping[str, str] = dataclasses.field(default_factory=dict)
    split: Optional[str] = None
    learners: Tuple[str, ...] = ()
    segment_learner: Optional[str] = None
    ci_level: float = 0.95
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    generated_at: Optional[str] = None
    curves: Optional[pd.DataFrame] = None
    deciles: Optional[pd.DataFrame] = None
    metrics: Optional[pd.DataFrame] = None
    feature_importance: Optional[pd.DataFrame] = None
    segments: Optional[pd.DataFrame] = None
    validation: Optional[pd.DataFrame] = None
    split_summary: Optional[pd.DataFrame] = None
    decision_summary: Optional[pd.DataFrame] = None
    drift_features: Optional[pd.DataFrame] = None
    realized_uplift: Optional[pd.DataFrame] = None
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)

    def frame(self, section: str) -> Optional[pd.DataFrame]:
        """The section's frame, or ``None`` when it is missing or empty."""
        df = getattr(self, section)
        if df is None or len(df) == 0:
            return None
        return df

    def missing_note(self, section: str) -> str:
        if section in self.notes:
            return self.notes[section]
        table = SECTION_TABLES.get(section, section)
        stage = TABLE_STAGES.get(table)
        hint = f" (run 'uplift-spark {stage}' to produce it)" if stage else ""
        return f"Not available for this run: table '{table}' has no rows{hint}."
