"""The report's sentences: key findings and one-line readings of decisions, as escaped HTML text.

Sentences are what a marketer reads first, so they are built (and tested) apart from the layout:
each value goes through :func:`~.templating.esc`; only ``<b>`` emphasis is added here.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import pandas as pd

from ..config import ReportConfig
from .data import ReportData
from .selection import best_learner, rows_where, unique
from .templating import esc
from .text import fmt, fmt_ci, fmt_signed, is_missing, learner_name, top_k_of, z_value


def _per_1000(value) -> str:
    return fmt_signed(None if is_missing(value) else 1000.0 * float(value))


def _metric_value(metrics: pd.DataFrame, **eq) -> Optional[pd.Series]:
    sub = rows_where(metrics, **eq)
    if sub is None or sub.empty:
        return None
    return sub.iloc[0]


def _nearest_top_k(metrics: Optional[pd.DataFrame], target: float) -> Optional[str]:
    names = unique(metrics, "metric")
    ks = [(abs(top_k_of(m) - target), top_k_of(m), m) for m in names if top_k_of(m) is not None]
    return min(ks)[2] if ks else None


# --------------------------------------------------------------------------------------------- summary


def summary_lines(data: ReportData, cfg: ReportConfig, outcome, split, learners, arms) -> List[str]:
    """Key findings as HTML sentences (values escaped), most important first."""
    lines: List[str] = []
    metrics = data.frame("metrics")
    pct = fmt(100 * data.ci_level)
    out_name = esc(outcome or "outcome")
    if metrics is not None:
        k_metric = _nearest_top_k(metrics, cfg.summary_top_percent)
        for arm in arms:
            learner = best_learner(metrics, arm, outcome, split, learners)
            base = dict(learner=learner, arm=arm, outcome=outcome, split=split)
            top = _metric_value(metrics, metric=k_metric, **base) if k_metric else None
            ate = _metric_value(metrics, metric="ate", **base)
            if top is None or is_missing(top["value"]):
                continue
            k = fmt(top_k_of(k_metric))
            ci = fmt_ci(1000 * top["ci_low"] if not is_missing(top["ci_low"]) else None,
                        1000 * top["ci_high"] if not is_missing(top["ci_high"]) else None)
            text = (f"Targeting the top {esc(k)}% with <b>{esc(arm)}</b>, ranked by the "
                    f"<b>{esc(learner_name(learner))}</b>, yields <b>{esc(_per_1000(top['value']))} {out_name} "
                    f"per 1000 targeted customers</b> compared with not contacting them")
            if ci:
                text += f" ({pct}% CI {esc(ci)})"
            if ate is not None and not is_missing(ate["value"]):
                gain = float(top["value"]) - float(ate["value"])
                text += (f"; that is <b>{esc(_per_1000(gain))} per 1000</b> versus picking the same number of "
                         f"customers at random (average effect {esc(_per_1000(ate['value']))} per 1000)")
            text += "."
            if ci and float(top["ci_low"]) <= 0 <= float(top["ci_high"]):
                text += " The interval includes 0: this gain is not yet statistically certain."
            lines.append(text)
    deciles = data.frame("deciles")
    if deciles is not None:
        z = z_value(data.ci_level)
        for arm in arms:
            learner = best_learner(metrics, arm, outcome, split, learners)
            sub = rows_where(deciles, learner=learner, arm=arm, outcome=outcome, split=split)
            if sub is None or sub.empty:
                continue
            harmed = sub[(sub["observed"] + z * sub["se"].fillna(np.inf)) < 0]
            if not harmed.empty:
                ds = ", ".join(str(int(d)) for d in sorted(harmed["decile"]))
                worst = harmed.sort_values("observed").iloc[0]
                lines.append(
                    f"<b>Sleeping dogs for {esc(arm)}:</b> decile(s) {esc(ds)} of the "
                    f"{esc(learner_name(learner))} show a significantly negative effect (down to "
                    f"{esc(_per_1000(worst['observed']))} {out_name} per 1000 contacted). Do not send "
                    f"{esc(arm)} to these customers.")
    val = data.frame("validation")
    if val is not None and "status" in val:
        counts = val["status"].astype(str).str.lower().value_counts()
        bad = {s: int(n) for s, n in counts.items() if s not in ("ok", "pass", "passed")}
        if not bad:
            lines.append(f"Data checks: all {len(val)} checks passed.")
        else:
            parts = ", ".join(f"{n} {esc(s)}" for s, n in sorted(bad.items()))
            lines.append(f"Data checks: {parts} out of {len(val)} (see “Data quality”).")
    drift = data.frame("drift_features")
    if drift is not None and "psi" in drift:
        latest = latest_batch(drift)
        strong = latest[latest["psi"] >= data.psi_alert]["feature"].astype(str).tolist()
        if strong:
            lines.append(f"<b>Drift:</b> {len(strong)} feature(s) changed strongly since training "
                         f"(PSI ≥ {esc(fmt(data.psi_alert))}): {esc(', '.join(strong[:8]))}. Consider retraining.")
        else:
            lines.append(f"Drift: no feature above the alert level (PSI ≥ {esc(fmt(data.psi_alert))}).")
    line = decision_line(data.frame("decision_summary"))
    if line:
        lines.append(line)
    realized = realized_view(data.frame("realized_uplift"), outcome)
    if realized is not None and {"action", "realized"} <= set(realized.columns):
        latest = latest_batch(realized)
        for _, r in latest.iterrows():
            text = (f"Campaign result for <b>{esc(r['action'])}</b>: realized uplift "
                    f"{esc(fmt_signed(r['realized']))}")
            if {"ci_low", "ci_high"} <= set(r.index) and fmt_ci(r["ci_low"], r["ci_high"]):
                text += f" (CI {esc(fmt_ci(r['ci_low'], r['ci_high']))})"
            if "expected" in r.index and not is_missing(r["expected"]):
                text += f" vs expected {esc(fmt_signed(r['expected']))}"
            lines.append(text + ".")
    return lines


def realized_view(df: Optional[pd.DataFrame], outcome: Optional[str]) -> Optional[pd.DataFrame]:
    """Realized-uplift rows with ``realized``/``expected`` columns (the realized_uplift table names them
    ``realized_uplift``/``expected_uplift``), limited to the report's outcome when the table has several."""
    if df is None:
        return None
    out = df.copy()
    for short, long in (("realized", "realized_uplift"), ("expected", "expected_uplift"), ("n", "n_treated")):
        if short not in out and long in out:
            out[short] = out[long]
    if "outcome" in out and outcome is not None and (out["outcome"] == outcome).any():
        out = out[out["outcome"] == outcome]
    return out if "realized" in out else None


def decision_line(dec: Optional[pd.DataFrame]) -> Optional[str]:
    """One sentence on what the policy decided (customers per action) and how much budget it uses."""
    if dec is None or not {"action", "customers"} <= set(dec.columns):
        return None
    rows = dec
    if "kind" in rows:
        rows = rows[rows["kind"].astype(str).isin(["allocation", "action"])]
    if "bucket" in rows and (rows["bucket"] == "policy").any():
        rows = rows[rows["bucket"] == "policy"]
    rows = rows[rows["customers"].notna() & (rows["action"].astype(str) != "none")]
    if rows.empty:
        return None
    per = rows.groupby(rows["action"].astype(str))["customers"].sum().sort_values(ascending=False)
    text = ("The targeting policy contacts " + ", ".join(f"{esc(fmt(n))} customers with {esc(a)}"
                                                         for a, n in per.items()))
    if "constraint" in dec and {"used", "limit"} <= set(dec.columns):
        budget = dec[dec["constraint"].astype(str) == "budget"]
        if not budget.empty and not is_missing(budget["limit"].iloc[0]):
            text += (f", using {esc(fmt(budget['used'].iloc[0]))} of a budget of "
                     f"{esc(fmt(budget['limit'].iloc[0]))}")
    return text + "."


def latest_batch(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the most recent monitoring batch (by a time column when present, else batch id)."""
    if "batch_id" not in df or df["batch_id"].nunique() <= 1:
        return df
    time_cols = [c for c in df.columns if c.endswith("_at") or c.endswith("_time") or c in ("batch_time",)]
    for c in time_cols:
        ts = pd.to_datetime(df[c], errors="coerce", utc=True)
        if ts.notna().any():
            last = df.loc[ts.idxmax(), "batch_id"]
            return df[df["batch_id"] == last]
    last = sorted(df["batch_id"].astype(str).unique())[-1]
    return df[df["batch_id"].astype(str) == last]



__all__ = ["decision_line", "latest_batch", "realized_view", "summary_lines"]
