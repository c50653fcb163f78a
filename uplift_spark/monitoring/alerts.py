"""One alert row per metric that is not ok, with a readable message and whether to retrain.

Retraining is recommended for an ``alert`` on feature drift, score drift or realized uplift (the model
no longer describes the customers or its effects); policy-mix changes alone point at budgets and
economics rather than the model, so they alert without recommending a retrain.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import pandas as pd

from ..config import MonitoringConfig
from .stats import level

ALERT_COLUMNS = ("source", "subject", "metric", "value", "threshold", "severity", "message", "retrain_recommended")
_RETRAIN_SOURCES = ("features", "scores", "realized")


def _f(x) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _alert(source, subject, metric, value, threshold, severity, message) -> Dict[str, object]:
    return {"source": source, "subject": subject, "metric": metric, "value": _f(value), "threshold": _f(threshold),
            "severity": severity, "message": message,
            "retrain_recommended": bool(severity == "alert" and source in _RETRAIN_SOURCES)}


def collect_alerts(cfg: MonitoringConfig, features: Optional[pd.DataFrame] = None,
                   scores: Optional[pd.DataFrame] = None, policy: Optional[pd.DataFrame] = None,
                   realized: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Alert rows from the drift/realized frames of :mod:`.drift`, :mod:`.scores`, :mod:`.policy`, :mod:`.realized`."""
    out: List[Dict[str, object]] = []
    psi_threshold = {"warn": cfg.psi_warn, "alert": cfg.psi_alert}
    for r in ([] if features is None else features.to_dict("records")):
        if r["status"] == "ok":
            continue
        metric, value, threshold = "psi", r["psi"], psi_threshold.get(r["status"])
        if level(r["psi"], cfg.psi_warn, cfg.psi_alert) == "ok":  # triggered by nulls or unseen categories
            if level(r["null_share"] - r["null_share_ref"], cfg.null_share_warn) != "ok":
                metric, value, threshold = "null_share", r["null_share"], r["null_share_ref"] + cfg.null_share_warn
            else:
                metric, value, threshold = "unseen_share", r["unseen_share"], cfg.unseen_share_warn
        out.append(_alert("features", r["feature"], metric, value, threshold, r["status"],
                          f"feature {r['feature']!r} drifted: {r['message']}"))
    for r in ([] if scores is None else scores.to_dict("records")):
        if r["status"] == "ok":
            continue
        out.append(_alert("scores", r["arm"], f"{r['metric']}_psi", r["psi"], psi_threshold.get(r["status"]),
                          r["status"], f"predicted {r['metric']} of arm {r['arm']!r} drifted: {r['message']}"))
    for r in ([] if policy is None else policy.to_dict("records")):
        if r["status"] == "ok":
            continue
        subject = r["action"] if r["action"] is not None else "policy"
        threshold = {"mix_psi": psi_threshold.get(r["status"]), "action_share": cfg.action_share_warn,
                     "budget_use": 1.0}.get(r["metric"])
        out.append(_alert("policy", subject, r["metric"], r["current"], threshold, r["status"], r["message"]))
    for r in ([] if realized is None else realized.to_dict("records")):
        if r["status"] == "ok":
            continue
        threshold = 0.0 if r["status"] == "alert" else r["expected_uplift"]
        out.append(_alert("realized", r["action"], f"realized_uplift_{r['outcome']}", r["realized_uplift"], threshold,
                          r["status"], f"campaign {r['campaign_id']!r}: {r['message']}"))
    return pd.DataFrame(out, columns=list(ALERT_COLUMNS))


def retrain_recommended(alerts: pd.DataFrame) -> bool:
    return bool(len(alerts) and alerts["retrain_recommended"].any())
