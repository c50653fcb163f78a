"""Score drift: the batch's predicted uplift (and value) per arm against the reference distribution.

PSI on the reference score bins, the mean shift in reference standard deviations and the change in
the share of customers with negative predicted uplift (the "sleeping dogs" a campaign should avoid).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

import pandas as pd

from ..config import MonitoringConfig
from ..errors import MonitoringError
from ..schemas import require_columns, uplift_column
from .profile import score_counts
from .stats import level, psi, worst

SCORE_DRIFT_COLUMNS = (
    "arm", "metric", "psi", "mean_ref", "mean", "std_ref", "std", "mean_shift", "negative_share_ref",
    "negative_share", "rows", "status", "message",
)


def wide_to_long(scored_df, arms: Sequence[str], values: Mapping[str, object] = None):
    """(arm, uplift, value) rows from a frame with ``uplift_<slug(arm)>`` columns.

    ``values`` maps an arm to a Column expression of its value (benefit × uplift − cost); arms without
    one get no value.
    """
    from pyspark.sql import functions as F

    values = dict(values or {})
    require_columns(scored_df, [uplift_column(a) for a in arms], "scored batch")
    pairs = []
    for arm in arms:
        up = F.col(uplift_column(arm)).cast("double")
        val = values.get(arm)
        pairs.append(F.struct(F.lit(arm).alias("arm"), up.alias("uplift"),
                              (val if val is not None else F.lit(None)).cast("double").alias("value")))
    return scored_df.select(F.explode(F.array(*pairs)).alias("p")).select("p.arm", "p.uplift", "p.value")


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def score_drift(scores_long_df, score_profile: Mapping, cfg: MonitoringConfig) -> pd.DataFrame:
    """One row per (arm, metric) present in the reference profile."""
    arms = score_profile.get("arms") or {}
    if not arms:
        raise MonitoringError("score drift: the reference profile has no score section")
    edges = {arm: {m: spec["edges"] for m, spec in per.items()} for arm, per in arms.items()}
    counts = score_counts(scores_long_df, edges)
    out: List[Dict[str, object]] = []
    for arm, per in sorted(arms.items()):
        for metric, ref in sorted(per.items()):
            cur = counts.get(arm, {}).get(metric)
            if cur is None or not cur["rows"]:
                out.append({"arm": arm, "metric": metric, "psi": float("nan"), "mean_ref": _num(ref.get("mean")),
                            "mean": float("nan"), "std_ref": _num(ref.get("std")), "std": float("nan"),
                            "mean_shift": float("nan"), "negative_share_ref": _num(ref.get("negative_share")),
                            "negative_share": float("nan"), "rows": 0, "status": "ok",
                            "message": "no predictions in the batch"})
                continue
            value = psi(ref["shares"], cur["counts"], cfg.psi_epsilon)
            std_ref = _num(ref.get("std"))
            shift = (cur["mean"] - _num(ref.get("mean"))) / std_ref if std_ref and std_ref > 0 else float("nan")
            neg_change = cur["negative_share"] - _num(ref.get("negative_share"))
            psi_status = level(value, cfg.psi_warn, cfg.psi_alert)
            shift_status = level(abs(shift) if not math.isnan(shift) else None, cfg.mean_shift_warn, cfg.mean_shift_alert)
            neg_status = level(abs(neg_change) if metric == "uplift" and not math.isnan(neg_change) else None,
                               cfg.negative_share_warn)
            notes = []
            if psi_status != "ok":
                notes.append(f"PSI {value:.3f}")
            if shift_status != "ok":
                notes.append(f"mean shift {shift:+.2f} std")
            if neg_status != "ok":
                notes.append(f"negative share {_num(ref.get('negative_share')):.1%} → {cur['negative_share']:.1%}")
            out.append({
                "arm": arm, "metric": metric, "psi": value, "mean_ref": _num(ref.get("mean")), "mean": cur["mean"],
                "std_ref": std_ref, "std": cur["std"], "mean_shift": shift,
                "negative_share_ref": _num(ref.get("negative_share")), "negative_share": cur["negative_share"],
                "rows": cur["rows"], "status": worst(psi_status, shift_status, neg_status), "message": "; ".join(notes),
            })
    return pd.DataFrame(out, columns=list(SCORE_DRIFT_COLUMNS))
