"""One self-contained HTML report: sections built from small frames, laid out by a Jinja2 template.

A marketer opens it from a mail attachment or a shared drive, possibly offline, so nothing is loaded
from the network: CSS is inlined from ``templates/report.css`` and figures are embedded as base64 PNG.
Sections whose table is missing show a note saying which stage produces it. What is shown comes from
:mod:`.selection`, the sentences from :mod:`.narrative`, the markup from :mod:`.templating`.

A section is a dict ``{"anchor", "title", "body"}`` (body: trusted HTML); :func:`render_report` takes
``extra_sections`` (e.g. :func:`.policy_section.policy_report_section`) placed before the glossary, so
a new section needs no change here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup

from ..config import ReportConfig
from ..schemas import slug
from . import plots, templating
from .clusters import cluster_sentence
from .data import ReportData
from .narrative import latest_batch, realized_view, summary_lines
from .segments import top_segments
from .selection import (PRIMARY_METRICS, best_learner, choose_arms, choose_learners, choose_outcome, choose_split,
                        rows_where, unique)
from .templating import esc
from .text import (GLOSSARY, ci_help, fmt, fmt_ci, fmt_share, is_missing, learner_name, metric_help, metric_label,
                   top_k_of, z_value)

COUNT_METRICS = ("n", "n_t", "n_c", "n_treated", "n_control")


@dataclasses.dataclass
class RenderedReport:
    """The HTML text and the figures it embeds (file name → PNG bytes), for writing side by side."""

    html: str
    figures: Dict[str, bytes]
    summary: List[str]


# --------------------------------------------------------------------------------------------- pieces


def _cell(value, is_status: bool) -> dict:
    if is_status and isinstance(value, str):
        return {"kind": "status", "status": value.lower(), "text": value}
    if isinstance(value, (float, np.floating)) or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
        return {"kind": "num", "text": fmt(value)}
    return {"kind": "text", "text": "" if is_missing(value) else value}


def _table(df: pd.DataFrame, columns: Optional[Sequence[str]] = None, headers: Optional[Dict[str, str]] = None,
           max_rows: int = 200, status_col: Optional[str] = "status", css: str = "data") -> str:
    """An escaped HTML table; floats formatted, status cells colored, long tables cut with a note."""
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    headers = headers or {}
    rows = [{"cells": [_cell(row[c], c == status_col) for c in columns]} for _, row in df.head(max_rows).iterrows()]
    more = f"Showing the first {max_rows} of {len(df):,} rows." if len(df) > max_rows else None
    return templating.table([{"text": headers.get(c, c)} for c in columns], rows, css, more)


class _Figures:
    """Collects the PNGs and renders ``<figure>`` blocks with captions."""

    def __init__(self):
        self.files: Dict[str, bytes] = {}

    def block(self, name: str, png: bytes, caption: str, alt: str) -> str:
        self.files[f"{len(self.files) + 1:02d}_{name}.png"] = png
        return templating.figure(png, caption, alt)


def _note(text: str) -> str:
    return templating.note(text)


# --------------------------------------------------------------------------------------------- sections


def _curves_section(data, cfg, figs, outcome, split, learners, arms) -> str:
    curves = rows_where(data.frame("curves"), outcome=outcome, split=split)
    if curves is None or curves.empty:
        return _note(data.missing_note("curves") if data.frame("curves") is None else
                     f"No curves for outcome '{outcome}' on split '{split}'.")
    curves = curves[curves["learner"].isin(learners)] if learners else curves
    pct = fmt(100 * data.ci_level)
    body = (f"<p>Customers are sorted from the highest to the lowest predicted uplift (left to right). "
            f"A curve that rises steeply and stays above the dashed random-targeting line means the model "
            f"puts the customers who react first. Where the curve goes down, the customers added there "
            f"react negatively. Split: <b>{esc(split)}</b> (customers not used for training).</p>")
    body += figs.block("qini_curves", plots.plot_curves(curves, "qini", arms, outcome, learners),
                       f"Qini curves per treatment for <b>{esc(outcome)}</b>: extra {esc(outcome)} gained as more "
                       f"customers are contacted in model order; shaded band = {esc(pct)}% bootstrap interval; "
                       f"dashed = random targeting.", "Qini curves")
    body += figs.block("uplift_curves", plots.plot_curves(curves, "uplift", arms, outcome, learners),
                       f"Uplift curves: (treated rate − control rate among the targeted) × number targeted. "
                       f"Read the height at a campaign size to see the expected extra {esc(outcome)}.",
                       "Uplift curves")
    return body


def _deciles_section(data, cfg, figs, outcome, split, learners, arms) -> str:
    deciles = rows_where(data.frame("deciles"), outcome=outcome, split=split)
    if deciles is None or deciles.empty:
        return _note(data.missing_note("deciles") if data.frame("deciles") is None else
                     f"No decile table for outcome '{outcome}' on split '{split}'.")
    z = z_value(data.ci_level)
    body = ("<p>Each bar pair is one tenth of the customers. Blue: what the model predicted on average; "
            "green/red: what the experiment actually shows for those customers (treated minus control), with "
            "its uncertainty. Good models have observed bars that fall from left to right like the "
            "predictions; red bars are groups the treatment harms.</p>")
    for learner in (learners or unique(deciles, "learner")):
        sub = deciles[deciles["learner"] == learner]
        if sub.empty:
            continue
        order = sub.groupby("decile")["predicted"].mean().sort_index()
        direction = ("decile 1 holds the customers with the highest predicted uplift"
                     if len(order) > 1 and order.iloc[0] >= order.iloc[-1]
                     else "decile 1 holds the customers with the lowest predicted uplift")
        body += figs.block(f"deciles_{slug(learner)}", plots.plot_deciles(sub, arms, z=z, outcome=outcome),
                           f"{esc(learner_name(learner))}: predicted vs observed uplift of {esc(outcome)} per "
                           f"decile ({esc(direction)}); error bars = {esc(fmt(100 * data.ci_level))}% interval.",
                           f"Deciles {learner}")
    return body


def _order_metrics(names: Iterable[str]) -> List[str]:
    names = list(dict.fromkeys(names))
    first = [m for m in PRIMARY_METRICS if m in names]
    topk = sorted([m for m in names if top_k_of(m) is not None], key=top_k_of)
    last = [m for m in ("ate",) + COUNT_METRICS if m in names]
    other = sorted(m for m in names if m not in first + topk + last)
    return first + topk + other + last


def _metric_cell(row) -> dict:
    return {"kind": "metric", "text": fmt(row["value"], 4), "ci": fmt_ci(row.get("ci_low"), row.get("ci_high"), 3)}


def _metrics_section(data, cfg, outcome, split, learners, arms) -> str:
    metrics = data.frame("metrics")
    if metrics is None:
        return _note(data.missing_note("metrics"))
    main = rows_where(metrics, outcome=outcome, split=split)
    if learners:
        main = main[main["learner"].isin(learners)]
    names = _order_metrics(main["metric"])
    if "qini_auc" in names:  # raw areas only where the normalized AUCs are undefined (continuous outcomes)
        names = [m for m in names if m not in ("qini_area", "uplift_area")]
    if "n_treated" in names and "n_control" in names:
        names = [m for m in names if m != "n"]
    body = (f"<p>Outcome <b>{esc(outcome)}</b>, split <b>{esc(split)}</b>. One row per treatment and "
            f"learner; the best ranking metric per treatment is highlighted.</p>")
    head = [{"text": "treatment"}, {"text": "learner"}] + [{"text": metric_label(m), "title": metric_help(m)}
                                                           for m in names]
    rows = []
    for arm in arms + [a for a in unique(main, "arm") if a not in arms]:
        best = best_learner(metrics, arm, outcome, split, learners)
        for learner in sorted(unique(main[main["arm"] == arm], "learner")):
            sub = main[(main["arm"] == arm) & (main["learner"] == learner)].drop_duplicates("metric")
            by = {r["metric"]: r for _, r in sub.iterrows()}
            cells = [_metric_cell(by[m]) if m in by else {"kind": "text", "text": "–"} for m in names]
            several = len(unique(main[main["arm"] == arm], "learner")) > 1
            rows.append({"cls": "best" if learner == best and several else None,
                         "cells": [{"kind": "text", "text": arm}, {"kind": "text", "text": learner_name(learner)},
                                   *cells]})
    body += templating.table(head, rows, css="data metrics")
    body += f'<p class="explain">{esc(ci_help(data.ci_level))}</p>'
    body += "<h3>What the metrics mean</h3>"
    body += templating.glossary((Markup(f"{esc(metric_label(m))} <code>{esc(m)}</code>"), metric_help(m))
                                for m in names)
    rest = metrics
    if not rest.empty:
        body += templating.details(
            f"All metric values, every outcome and split ({len(rest):,} values)",
            _table(rest.sort_values(["outcome", "split", "arm", "learner", "metric"]),
                   ["outcome", "split", "arm", "learner", "metric", "value", "ci_low", "ci_high"],
                   max_rows=cfg.max_table_rows))
    return body


def _importance_frame(data, outcome, learner) -> Optional[pd.DataFrame]:
    imp = data.frame("feature_importance")
    if imp is None:
        return None
    sub = rows_where(imp, outcome=outcome, learner=learner)
    if sub is None or sub.empty:
        sub = rows_where(imp, outcome=outcome)
    if sub is None or sub.empty:
        return None
    col = "gain_share" if "gain_share" in sub else "gain"
    agg = sub.groupby(["arm", "feature"], as_index=False)[col].sum()
    agg["gain_share"] = agg[col] / agg.groupby("arm")[col].transform("sum").replace(0, np.nan)
    return agg[["arm", "feature", "gain_share"]]


def _segments_section(data, cfg, figs, outcome, split, learners, arms) -> str:
    metrics = data.frame("metrics")
    learner = data.segment_learner or best_learner(metrics, None, outcome, split, learners)
    body = ""
    imp = _importance_frame(data, outcome, learner)
    if imp is None:
        body += _note(data.missing_note("feature_importance"))
    else:
        body += figs.block("feature_importance", plots.plot_importance(imp, top=10),
                           f"Features the {esc(learner_name(learner))} relies on most for {esc(outcome)} "
                           f"(share of the models' split gain). Strong features are not necessarily causes.",
                           "Feature importance")
    seg = data.frame("segments")
    if seg is None:
        return body + _note(data.missing_note("segments"))
    z = z_value(data.ci_level)
    body += (f"<p>Customers are grouped by the values of the strongest features. For each group: the "
             f"average uplift the {esc(learner_name(learner))} predicts, and the uplift the experiment "
             f"actually shows in that group (treated minus control, with its "
             f"{esc(fmt(100 * data.ci_level))}% interval). Only groups with at least "
             f"{cfg.segment_min_rows} treated and {cfg.segment_min_rows} control customers are listed.</p>")
    headers = {"feature": "feature", "segment": "group", "n": "customers", "predicted": "predicted uplift",
               "observed": "observed uplift", "ci": "interval", "verdict": "verdict"}
    for arm in arms + [a for a in unique(seg, "arm") if a not in arms]:
        best, worst = top_segments(seg, arm, cfg.top_segments, cfg.segment_min_rows, z=z)
        if best.empty and worst.empty:
            body += f"<h3>{esc(arm)}</h3>" + _note(f"No segment of {arm} has enough customers on both sides.")
            continue
        both = pd.concat([best, worst.iloc[::-1]], ignore_index=True)  # top to bottom: best → worst
        body += f"<h3>{esc(arm)}</h3>"
        body += figs.block(f"segments_{slug(arm)}", plots.plot_segments(both, arm, z=z, outcome=outcome,
                                                                              split_at=len(best)),
                           f"Best (top) and worst (bottom) groups for <b>{esc(arm)}</b> by predicted uplift of "
                           f"{esc(outcome)} (above / below the dotted line). Bars: observed uplift with its interval; "
                           f"diamonds: the model's average prediction.",
                           f"Segments {arm}")
        for title, frame in (("Most responsive groups", best), ("Least responsive groups", worst)):
            if frame.empty:
                continue
            view = frame.copy()
            view["ci"] = [fmt_ci(o - z * s, o + z * s) for o, s in zip(view["observed"], view["se"])]
            view["verdict"] = [
                "harmed — avoid" if h else ("good target" if (o - z * s) > 0 else "uncertain")
                for h, o, s in zip(view["harmed"], view["observed"], view["se"])]
            body += f"<h4>{esc(title)}</h4>" + _table(view, list(headers), headers, status_col=None)
    return body


def _validation_section(data, cfg) -> str:
    body = "<h3>Data validation</h3>"
    val = data.frame("validation")
    if val is None:
        body += _note(data.missing_note("validation"))
    else:
        val = val.drop(columns=[c for c in ("run_id",) if c in val])
        status = val["status"].astype(str).str.lower() if "status" in val else pd.Series("", index=val.index)
        counts = status.value_counts()
        body += "<p>" + " ".join(f'<span class="status status-{esc(s)}">{esc(s)}: {int(n)}</span>'
                                 for s, n in counts.items()) + "</p>"
        clustered = cluster_sentence(val)
        body += f"<p>{esc(clustered)}</p>" if clustered else ""
        rank = status.map({"fail": 0, "failed": 0, "error": 0, "alert": 0, "warn": 1, "warning": 1}).fillna(2)
        ordered = val.assign(_r=rank.values).sort_values(["_r"], kind="stable").drop(columns="_r")
        problems = ordered[rank.sort_values(kind="stable").values < 2]
        if not problems.empty:
            body += "<p>Checks that need attention:</p>" + _table(problems, max_rows=cfg.max_table_rows)
        body += templating.details(f"All {len(val):,} checks", _table(ordered, max_rows=cfg.max_table_rows))
    body += "<h3>Train / test split</h3>"
    ss = data.frame("split_summary")
    if ss is None:
        body += _note(data.missing_note("split_summary"))
    else:
        order = {s: i for i, s in enumerate(("train", "valid", "test", "oot"))}
        view = ss.assign(_o=ss["split"].map(order).fillna(9) if "split" in ss else 0)
        view = view.sort_values([c for c in ("_o", "split", "arm", "outcome") if c in view]).drop(columns="_o")
        if "share" in view:
            view = view.assign(share=[fmt_share(v) for v in view["share"]])
        body += ("<p>How many customers of each treatment ended up in each split, and their average outcome. "
                 "Shares should be similar across splits; very different outcome averages hint at a time "
                 "effect.</p>")
        body += _table(view.drop(columns=[c for c in ("run_id",) if c in view]), max_rows=cfg.max_table_rows)
    return body


def _decision_section(data, cfg) -> str:
    dec = data.frame("decision_summary")
    if dec is None:
        return _note(data.missing_note("decision_summary"))
    view = dec.drop(columns=[c for c in ("run_id",) if c in dec])
    return ("<p>What the targeting policy decided: customers per action, their cost and the expected extra "
            "outcome and value; rows for constraints show how much of each limit is used.</p>"
            + _table(view, max_rows=cfg.max_table_rows) + _constraints_table(dec, cfg))


def _constraints_table(dec, cfg) -> str:
    """The business rules on their own: use against limit and the multiplier (its price: > 0 = binding).
    Guardrail floors and min shares are lower bounds; fairness rows give a group's treated share
    minus the overall share, ``fairness_gap`` the largest absolute one."""
    if "constraint" not in dec or not {"used", "limit", "multiplier"} <= set(dec.columns):
        return ""
    rows = dec[dec["constraint"].notna()][["constraint", "used", "limit", "multiplier"]]
    if rows.empty:
        return ""
    rows = rows.assign(binding=[("yes" if (m is not None and m == m and m > 0) else "") for m in rows["multiplier"]])
    return ("<h3>Constraints</h3><p>Each business rule the decision obeyed: what it used, its limit, and its "
            "multiplier (the value one more unit of the limit would add; above zero means the rule binds).</p>"
            + _table(rows, max_rows=cfg.max_table_rows))


def _monitoring_section(data, cfg, figs, outcome) -> str:
    body = "<h3>Feature drift</h3>"
    drift = data.frame("drift_features")
    if drift is None:
        body += _note(data.missing_note("drift_features"))
    elif not {"feature", "psi"} <= set(drift.columns):
        body += _note("The drift_features table has no 'feature'/'psi' columns to plot.")
    else:
        latest = latest_batch(drift)
        batch = latest["batch_id"].iloc[0] if "batch_id" in latest else None
        body += figs.block("psi", plots.plot_psi(latest, data.psi_warn, data.psi_alert),
                           "Population stability index per feature"
                           + (f" for batch <b>{esc(batch)}</b>" if batch is not None else "")
                           + f" versus the training data. Below {esc(fmt(data.psi_warn))}: stable; above "
                             f"{esc(fmt(data.psi_alert))}: the feature changed a lot and the model may be stale.",
                           "PSI per feature")
        view = latest.sort_values("psi", ascending=False).drop(columns=[c for c in ("run_id",) if c in latest])
        body += templating.details(f"Drift details ({len(view)} features)", _table(view, max_rows=cfg.max_table_rows))
    body += "<h3>Realized vs expected uplift</h3>"
    real = realized_view(data.frame("realized_uplift"), outcome)
    if data.frame("realized_uplift") is None:
        body += _note(data.missing_note("realized_uplift"))
    elif real is None:
        body += _note("The realized_uplift table has no 'realized_uplift' column to plot.")
    else:
        latest = latest_batch(real)
        body += figs.block("realized", plots.plot_realized(latest, outcome=outcome),
                           "After the campaign: the uplift actually measured (contacted customers vs the holdout "
                           "the policy would have contacted), with its interval, next to what the model expected. "
                           "An expected value far outside the interval means the model over- or under-promises.",
                           "Realized vs expected uplift")
        original = data.frame("realized_uplift").columns
        shown = [c for c in original if c in latest.columns and c != "run_id"]
        body += _table(latest, shown, max_rows=cfg.max_table_rows)
    return body


def _glossary() -> str:
    return templating.glossary(GLOSSARY)


SECTIONS = (
    ("curves", "1. Does the model find the right customers? (Qini and uplift curves)"),
    ("deciles", "2. Predicted vs observed uplift by decile"),
    ("metrics", "3. Model quality metrics"),
    ("segments", "4. Who responds, who is harmed (segments)"),
    ("data", "5. Data quality and split"),
    ("decisions", "6. Targeting decisions"),
    ("monitoring", "7. Monitoring"),
    ("glossary", "Glossary"),
)


def render_report(data: ReportData, cfg: ReportConfig = ReportConfig(),
                  extra_sections: Sequence[Mapping] = ()) -> RenderedReport:
    """Build the HTML and its figures from ``data``; never raises for a missing section.

    ``extra_sections``: ``{"anchor", "title", "body", "figures"?}`` dicts, shown before the glossary.
    """
    outcome = choose_outcome(data, cfg)
    split = choose_split(data, cfg)
    learners = choose_learners(data, cfg)
    arms = choose_arms(data)
    figs = _Figures()
    summary = summary_lines(data, cfg, outcome, split, learners, arms)
    bodies = {
        "curves": _curves_section(data, cfg, figs, outcome, split, learners, arms),
        "deciles": _deciles_section(data, cfg, figs, outcome, split, learners, arms),
        "metrics": _metrics_section(data, cfg, outcome, split, learners, arms),
        "segments": _segments_section(data, cfg, figs, outcome, split, learners, arms),
        "data": _validation_section(data, cfg),
        "decisions": _decision_section(data, cfg),
        "monitoring": _monitoring_section(data, cfg, figs, outcome),
        "glossary": _glossary(),
    }
    sections = [{"anchor": a, "title": t, "body": bodies[a]} for a, t in SECTIONS]
    for extra in extra_sections:
        sections.insert(len(sections) - 1, {k: extra[k] for k in ("anchor", "title", "body")})
        figs.files.update(extra.get("figures") or {})
    generated = data.generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"Run <b>{esc(data.run_id)}</b> · outcome <b>{esc(outcome)}</b> · split <b>{esc(split)}</b> · "
            f"treatments {esc(', '.join(arms) or '–')} vs control <b>{esc(data.control_arm or '–')}</b> · "
            f"learners {esc(', '.join(learner_name(x) for x in learners) or '–')} · generated {esc(generated)}")
    text = templating.page(cfg.title, data.run_id, meta, summary, sections)
    return RenderedReport(html=text, figures=figs.files, summary=summary)


def build_report(sections: ReportData, cfg: ReportConfig = ReportConfig()) -> str:
    """The report's HTML (a single self-contained document)."""
    return render_report(sections, cfg).html
