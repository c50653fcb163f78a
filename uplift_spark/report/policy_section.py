"""Report section "Does the policy beat the alternatives?": cost curves and the plain sentence.

Kept apart from the main report: it takes the small ``policy_evaluation`` / ``policy_curves`` frames
(pandas) and returns a section dict that :func:`~.html.render_report` places with the others.
"""

from __future__ import annotations

from typing import Optional, Tuple

import pandas as pd

from ..evaluation.policy_value import p_text
from . import templating

TITLE = "Does the policy beat the alternatives?"


def plot_policy_curves(curves: pd.DataFrame, split: str) -> bytes:
    """Q(B) per curve with pointwise bands: AIPW gain over nobody per customer vs spend per customer."""
    from matplotlib.figure import Figure

    from .plots import _style, to_png

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for name, part in curves[curves["split"] == split].groupby("policy"):
        part = part.sort_values("spend")
        line, = ax.plot(part["spend"], part["value"], label=name, linewidth=1.6,
                        linestyle="--" if name == "random" else "-")
        ax.fill_between(part["spend"], part["ci_low"], part["ci_high"], color=line.get_color(), alpha=0.12)
    ax.plot([], [])
    ax.set_xlabel("spend per customer")
    ax.set_ylabel("gain over nobody per customer (AIPW)")
    ax.set_title(f"Multi-armed cost curves ({split})")
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return to_png(fig)


def _pick(ev: pd.DataFrame, **eq) -> Optional[pd.Series]:
    part = ev
    for k, v in eq.items():
        part = part[part[k].isna()] if v is None else part[part[k] == v]
    return None if part.empty else part.iloc[0]


def policy_sentence(ev: pd.DataFrame, split: str, ci_level: float = 0.95) -> Optional[str]:
    ev = ev[ev["split"] == split]
    gain = _pick(ev, policy="policy", baseline="nobody", estimator="aipw", metric="gain")
    rnd = _pick(ev, policy="random", baseline="nobody", estimator="aipw", metric="gain")
    dif = _pick(ev, policy="policy", baseline="random", estimator="aipw", metric="difference")
    if gain is None or rnd is None or dif is None:
        return None
    budget = gain["budget"]
    scale = gain["scale"] or 1.0
    at = "its constraints" if pd.isna(budget) else f"a budget of {budget / scale:,.0f}"
    pct = int(round(ci_level * 100))
    return (f"At {at} the policy earns {gain['estimate']:+.4f} per customer ({pct}% CI {gain['ci_low']:.4f} to "
            f"{gain['ci_high']:.4f}); mailing the same number of random customers earns {rnd['estimate']:+.4f}; "
            f"the difference is {dif['estimate']:+.4f} (CI {dif['ci_low']:.4f} to {dif['ci_high']:.4f}, "
            f"{p_text(dif['p_value'])}). Held-out split {split}, AIPW, budget scaled to the split's share.")


def value_sentence(summary: Optional[pd.DataFrame], ci_level: float = 0.95) -> Optional[str]:
    """Predicted, calibrated and held-out value of the decisions side by side (decision_summary's total row)."""
    if summary is None or "kind" not in summary or "held_out_value" not in summary:
        return None
    total = summary[summary["kind"] == "total"]
    if total.empty:
        return None
    t = total.iloc[0]
    text = f"The decisions' predicted value is {t['expected_value']:+,.2f} (the models' own prediction)"
    pct = int(round(ci_level * 100))
    if pd.notna(t.get("expected_value_calibrated")):
        text += f"; calibrated on held-out data it is {t['expected_value_calibrated']:+,.2f}"
        if pd.notna(t.get("calibrated_ci_low")):
            text += f" ({pct}% CI {t['calibrated_ci_low']:,.2f} to {t['calibrated_ci_high']:,.2f})"
    if pd.notna(t.get("held_out_value")):
        text += (f"; the held-out estimate of the policy's gain is {t['held_out_value']:+,.2f} ({pct}% CI "
                 f"{t['held_out_ci_low']:,.2f} to {t['held_out_ci_high']:,.2f}, split {t['held_out_split']})")
    return text + "."


def policy_section(ev: pd.DataFrame, curves: pd.DataFrame, ci_level: float = 0.95,
                   image: str = "policy_curves.png", summary: Optional[pd.DataFrame] = None) -> Tuple[str, dict]:
    """(HTML body, {png name: bytes}) for the first held-out split (``test`` when present)."""
    splits = list(ev["split"].dropna().unique())
    split = "test" if "test" in splits else (splits[0] if splits else None)
    if split is None:
        return "", {}
    sentence = policy_sentence(ev, split, ci_level) or "No policy-vs-random comparison was estimated."
    values = value_sentence(summary, ci_level)
    if values:
        sentence += " " + values
    rows = ev[(ev["split"] == split) & (ev["estimator"] == "aipw") & (ev["metric"].isin(["gain", "difference"]))]
    text = lambda v: {"kind": "text", "text": v}  # noqa: E731
    num = lambda v: {"kind": "num", "text": v}  # noqa: E731
    table = templating.table(
        [{"text": h} for h in ("policy", "vs", "difference per customer", "CI", "p")],
        [{"cells": [text(r.policy), text(r.baseline), num(f"{r.estimate:+.4f}"),
                    num(f"{r.ci_low:.4f} to {r.ci_high:.4f}"), num(f"{r.p_value:.3g}")]} for r in rows.itertuples()])
    png = plot_policy_curves(curves, split)
    body = f"<p>{templating.esc(sentence)}</p>" + templating.figure(
        png, f"Cost curves of the policy and its alternatives on the held-out split {templating.esc(split)}; "
             "bands are pointwise intervals.", "cost curves") + table
    return body, {image: png}


def policy_report_section(ev: pd.DataFrame, curves: pd.DataFrame, ci_level: float = 0.95,
                          summary: Optional[pd.DataFrame] = None) -> Optional[dict]:
    """The section dict :func:`~.html.render_report` takes in ``extra_sections`` (None: nothing to show)."""
    body, figures = policy_section(ev, curves, ci_level, summary=summary)
    if not body:
        return None
    return {"anchor": "policy-value", "title": TITLE, "body": body, "figures": figures}


__all__ = ["policy_report_section", "policy_section", "policy_sentence", "value_sentence", "plot_policy_curves",
           "TITLE"]
