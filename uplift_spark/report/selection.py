"""Which slice of the run the report shows: outcome, split, arms, learners, and the best learner.

Kept apart from the HTML so the pipeline (which tells the log what the report shows) and the
narrative use the same choices without importing the renderer.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import pandas as pd

from ..config import ReportConfig
from .data import ReportData

PRIMARY_METRICS = ("qini_auc", "uplift_auc", "qini_coefficient", "auuc", "qini_area", "uplift_area")
SPLIT_PREFERENCE = ("test", "valid", "oot", "train")


def unique(df: Optional[pd.DataFrame], col: str) -> List:
    if df is None or col not in df:
        return []
    return list(dict.fromkeys(df[col].dropna().tolist()))


def choose_outcome(data: ReportData, cfg: ReportConfig) -> Optional[str]:
    """The configured outcome, else the run's primary outcome, else the first one evaluated."""
    if cfg.outcome:
        return cfg.outcome
    if data.outcome:
        return data.outcome
    for section in ("metrics", "curves", "deciles"):
        found = unique(data.frame(section), "outcome")
        if found:
            return found[0]
    return None


def choose_split(data: ReportData, cfg: ReportConfig) -> Optional[str]:
    """The configured split, else ``test`` when evaluated (held out from training and tuning)."""
    if cfg.split:
        return cfg.split
    if data.split:
        return data.split
    found = []
    for section in ("metrics", "curves", "deciles"):
        found += unique(data.frame(section), "split")
    for s in SPLIT_PREFERENCE:
        if s in found:
            return s
    return found[0] if found else None


def choose_arms(data: ReportData) -> List[str]:
    if data.treatment_arms:
        return list(data.treatment_arms)
    arms: List[str] = []
    for section in ("metrics", "curves", "deciles"):
        arms += [a for a in unique(data.frame(section), "arm") if a not in arms and a != data.control_arm]
    return arms


def choose_learners(data: ReportData, cfg: ReportConfig) -> List[str]:
    if cfg.learners:
        return list(cfg.learners)
    if data.learners:
        return list(data.learners)
    found: List[str] = []
    for section in ("metrics", "curves", "deciles"):
        found += [x for x in unique(data.frame(section), "learner") if x not in found]
    return sorted(found)


def rows_where(df: Optional[pd.DataFrame], **eq) -> Optional[pd.DataFrame]:
    if df is None:
        return None
    mask = pd.Series(True, index=df.index)
    for col, value in eq.items():
        if value is not None and col in df:
            mask &= df[col] == value
    return df[mask]


def best_learner(metrics: Optional[pd.DataFrame], arm: Optional[str], outcome: Optional[str],
                 split: Optional[str], learners: Sequence[str]) -> Optional[str]:
    """The learner with the highest normalized Qini AUC (falling back to other ranking metrics)."""
    sub = rows_where(metrics, outcome=outcome, split=split)
    if sub is None or sub.empty:
        return learners[0] if learners else None
    if arm is not None:
        sub = sub[sub["arm"] == arm]
    sub = sub[sub["learner"].isin(learners)] if learners else sub
    for metric in PRIMARY_METRICS:
        m = sub[(sub["metric"] == metric) & sub["value"].notna()]
        if not m.empty:
            return str(m.groupby("learner")["value"].mean().sort_values(ascending=False).index[0])
    return learners[0] if learners else None



__all__ = ["PRIMARY_METRICS", "SPLIT_PREFERENCE", "best_learner", "choose_arms", "choose_learners", "choose_outcome",
           "choose_split", "rows_where", "unique"]
