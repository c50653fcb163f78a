"""One self-contained HTML report: inline CSS, figures embedded as base64 PNG, every value escaped.

A marketer opens it from a mail attachment or a shared drive, possibly offline, so nothing is loaded
from the network. Sections whose table is missing show a note saying which stage produces it.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..config import ReportConfig
from ..schemas import slug
from . import plots
from .clusters import cluster_sentence
from .data import ReportData
from .segments import top_segments
from .text import (GLOSSARY, ci_help, fmt, fmt_ci, fmt_share, fmt_signed, is_missing, learner_name,
                   metric_help, metric_label, top_k_of)

PRIMARY_METRICS = ("qini_auc", "uplift_auc", "qini_coefficient", "auuc", "qini_area", "uplift_area")
COUNT_METRICS = ("n", "n_t", "n_c", "n_treated", "n_control")
SPLIT_PREFERENCE = ("test", "valid", "oot", "train")


@dataclasses.dataclass
class RenderedReport:
    """The HTML text and the figures it embeds (file name → PNG bytes), for writing side by side."""

    html: str
    figures: Dict[str, bytes]
    summary: List[str]


def esc(value) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2.0))


# --------------------------------------------------------------------------------------------- choices


def _unique(df: Optional[pd.DataFrame], col: str) -> List:
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
        found = _unique(data.frame(section), "outcome")
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
        found += _unique(data.frame(section), "split")
    for s in SPLIT_PREFERENCE:
        if s in found:
            return s
    return found[0] if found else None


def choose_arms(data: ReportData) -> List[str]:
    if data.treatment_arms:
        return list(data.treatment_arms)
    arms: List[str] = []
    for section in ("metrics", "curves", "deciles"):
        arms += [a for a in _unique(data.frame(section), "arm") if a not in arms and a != data.control_arm]
    return arms


def choose_learners(data: ReportData, cfg: ReportConfig) -> List[str]:
    if cfg.learners:
        return list(cfg.learners)
    if data.learners:
        return list(data.learners)
    found: List[str] = []
    for section in ("metrics", "curves", "deciles"):
        found += [x for x in _unique(data.frame(section), "learner") if x not in found]
    return sorted(found)


def _slice(df: Optional[pd.DataFrame], **eq) -> Optional[pd.DataFrame]:
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
    sub = _slice(metrics, outcome=outcome, split=split)
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


# --------------------------------------------------------------------------------------------- pieces


def _table(df: pd.DataFrame, columns: Optional[Sequence[str]] = None, headers: Optional[Dict[str, str]] = None,
           max_rows: int = 200, status_col: Optional[str] = "status", css: str = "data") -> str:
    """An escaped HTML table; floats formatted, status cells colored, long tables cut with a note."""
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    headers = headers or {}
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    rows = []
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for c in columns:
            v = row[c]
            if c == status_col and isinstance(v, str):
                cells.append(f'<td><span class="status status-{esc(v.lower())}">{esc(v)}</span></td>')
            elif isinstance(v, (float, np.floating)):
                cells.append(f'<td class="num">{esc(fmt(v))}</td>')
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc('' if is_missing(v) else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        more = f'<p class="note">Showing the first {max_rows} of {len(df):,} rows.</p>'
    return f'<div class="tablewrap"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>' \
           f'{"".join(rows)}</tbody></table></div>{more}'


class _Figures:
    """Collects the PNGs and renders ``<figure>`` blocks with captions."""

    def __init__(self):
        self.files: Dict[str, bytes] = {}

    def block(self, name: str, png: bytes, caption: str, alt: str) -> str:
        fname = f"{len(self.files) + 1:02d}_{name}.png"
        self.files[fname] = png
        b64 = base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{b64}" alt="{esc(alt)}">'
                f"<figcaption>{caption}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def _per_1000(value) -> str:
    return fmt_signed(None if is_missing(value) else 1000.0 * float(value))


def _metric_value(metrics: pd.DataFrame, **eq) -> Optional[pd.Series]:
    sub = _slice(metrics, **eq)
    if sub is None or sub.empty:
        return None
    return sub.iloc[0]


def _nearest_top_k(metrics: Optional[pd.DataFrame], target: float) -> Optional[str]:
    names = _unique(metrics, "metric")
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
        z = _z(data.ci_level)
        for arm in arms:
            learner = best_learner(metrics, arm, outcome, split, learners)
            sub = _slice(deciles, learner=learner, arm=arm, outcome=outcome, split=split)
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
    """Realized-uplift rows with ``realized``/``expected`` columns (engineer G names them
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


# --------------------------------------------------------------------------------------------- sections


def _curves_section(data, cfg, figs, outcome, split, learners, arms) -> str:
    curves = _slice(data.frame("curves"), outcome=outcome, split=split)
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
    deciles = _slice(data.frame("deciles"), outcome=outcome, split=split)
    if deciles is None or deciles.empty:
        return _note(data.missing_note("deciles") if data.frame("deciles") is None else
                     f"No decile table for outcome '{outcome}' on split '{split}'.")
    z = _z(data.ci_level)
    body = ("<p>Each bar pair is one tenth of the customers. Blue: what the model predicted on average; "
            "green/red: what the experiment actually shows for those customers (treated minus control), with "
            "its uncertainty. Good models have observed bars that fall from left to right like the "
            "predictions; red bars are groups the treatment harms.</p>")
    for learner in (learners or _unique(deciles, "learner")):
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


def _metric_cell(row) -> str:
    value = esc(fmt(row["value"], 4))
    ci = fmt_ci(row.get("ci_low"), row.get("ci_high"), 3)
    return f'<td class="num">{value}' + (f'<br><span class="ci">[{esc(ci)}]</span>' if ci else "") + "</td>"


def _metrics_section(data, cfg, outcome, split, learners, arms) -> str:
    metrics = data.frame("metrics")
    if metrics is None:
        return _note(data.missing_note("metrics"))
    main = _slice(metrics, outcome=outcome, split=split)
    if learners:
        main = main[main["learner"].isin(learners)]
    names = _order_metrics(main["metric"])
    if "qini_auc" in names:  # raw areas only where the normalized AUCs are undefined (continuous outcomes)
        names = [m for m in names if m not in ("qini_area", "uplift_area")]
    if "n_treated" in names and "n_control" in names:
        names = [m for m in names if m != "n"]
    body = (f"<p>Outcome <b>{esc(outcome)}</b>, split <b>{esc(split)}</b>. One row per treatment and "
            f"learner; the best ranking metric per treatment is highlighted.</p>")
    head = "<th>treatment</th><th>learner</th>" + "".join(f'<th title="{esc(metric_help(m))}">'
                                                          f"{esc(metric_label(m))}</th>" for m in names)
    rows = []
    for arm in arms + [a for a in _unique(main, "arm") if a not in arms]:
        best = best_learner(metrics, arm, outcome, split, learners)
        for learner in sorted(_unique(main[main["arm"] == arm], "learner")):
            sub = main[(main["arm"] == arm) & (main["learner"] == learner)].drop_duplicates("metric")
            by = {r["metric"]: r for _, r in sub.iterrows()}
            cells = "".join(_metric_cell(by[m]) if m in by else "<td>–</td>" for m in names)
            cls = ' class="best"' if learner == best and len(_unique(main[main["arm"] == arm], "learner")) > 1 else ""
            rows.append(f"<tr{cls}><td>{esc(arm)}</td><td>{esc(learner_name(learner))}</td>{cells}</tr>")
    body += (f'<div class="tablewrap"><table class="data metrics"><thead><tr>{head}</tr></thead><tbody>'
             f'{"".join(rows)}</tbody></table></div>')
    body += f'<p class="explain">{esc(ci_help(data.ci_level))}</p>'
    body += "<h3>What the metrics mean</h3><dl class=\"glossary\">"
    for m in names:
        body += f"<dt>{esc(metric_label(m))} <code>{esc(m)}</code></dt><dd>{esc(metric_help(m))}</dd>"
    body += "</dl>"
    rest = metrics
    if not rest.empty:
        body += ("<details><summary>All metric values, every outcome and split "
                 f"({len(rest):,} values)</summary>")
        body += _table(rest.sort_values(["outcome", "split", "arm", "learner", "metric"]),
                       ["outcome", "split", "arm", "learner", "metric", "value", "ci_low", "ci_high"],
                       max_rows=cfg.max_table_rows)
        body += "</details>"
    return body


def _importance_frame(data, outcome, learner) -> Optional[pd.DataFrame]:
    imp = data.frame("feature_importance")
    if imp is None:
        return None
    sub = _slice(imp, outcome=outcome, learner=learner)
    if sub is None or sub.empty:
        sub = _slice(imp, outcome=outcome)
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
    z = _z(data.ci_level)
    body += (f"<p>Customers are grouped by the values of the strongest features. For each group: the "
             f"average uplift the {esc(learner_name(learner))} predicts, and the uplift the experiment "
             f"actually shows in that group (treated minus control, with its "
             f"{esc(fmt(100 * data.ci_level))}% interval). Only groups with at least "
             f"{cfg.segment_min_rows} treated and {cfg.segment_min_rows} control customers are listed.</p>")
    headers = {"feature": "feature", "segment": "group", "n": "customers", "predicted": "predicted uplift",
               "observed": "observed uplift", "ci": "interval", "verdict": "verdict"}
    for arm in arms + [a for a in _unique(seg, "arm") if a not in arms]:
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
        body += (f"<details><summary>All {len(val):,} checks</summary>"
                 f"{_table(ordered, max_rows=cfg.max_table_rows)}</details>")
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
                           f"Population stability index per feature"
                           + (f" for batch <b>{esc(batch)}</b>" if batch is not None else "")
                           + f" versus the training data. Below {esc(fmt(data.psi_warn))}: stable; above "
                             f"{esc(fmt(data.psi_alert))}: the feature changed a lot and the model may be stale.",
                           "PSI per feature")
        view = latest.sort_values("psi", ascending=False).drop(columns=[c for c in ("run_id",) if c in latest])
        body += f"<details><summary>Drift details ({len(view)} features)</summary>" \
                f"{_table(view, max_rows=cfg.max_table_rows)}</details>"
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
    items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in GLOSSARY)
    return f'<dl class="glossary">{items}</dl>'


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2530;margin:0;
background:#f5f7f9;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:26px;margin:8px 0 4px} h2{font-size:20px;border-bottom:2px solid #e3e8ee;padding-bottom:4px;
margin-top:36px} h3{font-size:16px;margin-top:22px} h4{font-size:14px;margin:14px 0 6px;color:#3d4b5c}
.meta{color:#5b6b7c;font-size:13px} .summary{background:#eef6ff;border-left:4px solid #1f6fb2;padding:10px 18px;
margin:16px 0} .summary li{margin:6px 0}
nav ul{columns:2;font-size:14px;list-style:none;padding-left:0} nav a{color:#1f6fb2;text-decoration:none}
figure{margin:14px 0 22px} figure img{max-width:100%;border:1px solid #e3e8ee}
figcaption{font-size:13px;color:#4a5868;margin-top:4px}
.tablewrap{overflow-x:auto} table.data{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
table.data th{background:#f0f3f6;text-align:left;padding:5px 8px;border-bottom:1px solid #cfd8e1;
vertical-align:bottom} table.data td{padding:4px 8px;border-bottom:1px solid #edf0f3;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap} .ci{color:#6b7a8a;font-size:11px}
tr.best td{background:#f2fbf3} .note{color:#8a5a00;background:#fff8e6;border:1px solid #f3e2b3;padding:6px 10px;
border-radius:4px;font-size:13px} .explain{font-size:13px;color:#3d4b5c}
.status{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;background:#e9edf1;margin-right:4px}
.status-ok,.status-pass,.status-passed{background:#dff3e2;color:#1e6b2a}
.status-warn,.status-warning{background:#fff1cc;color:#7a5600}
.status-fail,.status-failed,.status-alert,.status-error{background:#fbe0dd;color:#8c1d12}
dl.glossary dt{font-weight:600;margin-top:8px} dl.glossary dd{margin:2px 0 0 18px;font-size:14px}
details{margin:8px 0} summary{cursor:pointer;color:#1f6fb2;font-size:14px}
code{font-size:12px;color:#5b6b7c}
"""


SECTIONS = (
    ("summary", "Key findings"),
    ("curves", "1. Does the model find the right customers? (Qini and uplift curves)"),
    ("deciles", "2. Predicted vs observed uplift by decile"),
    ("metrics", "3. Model quality metrics"),
    ("segments", "4. Who responds, who is harmed (segments)"),
    ("data", "5. Data quality and split"),
    ("decisions", "6. Targeting decisions"),
    ("monitoring", "7. Monitoring"),
    ("glossary", "Glossary"),
)


def render_report(data: ReportData, cfg: ReportConfig = ReportConfig()) -> RenderedReport:
    """Build the HTML and its figures from ``data``; never raises for a missing section."""
    outcome = choose_outcome(data, cfg)
    split = choose_split(data, cfg)
    learners = choose_learners(data, cfg)
    arms = choose_arms(data)
    figs = _Figures()
    summary = summary_lines(data, cfg, outcome, split, learners, arms)
    bodies = {
        "summary": ("<ul>" + "".join(f"<li>{s}</li>" for s in summary) + "</ul>") if summary else
        _note("No evaluation results yet, so there are no findings to summarize."),
        "curves": _curves_section(data, cfg, figs, outcome, split, learners, arms),
        "deciles": _deciles_section(data, cfg, figs, outcome, split, learners, arms),
        "metrics": _metrics_section(data, cfg, outcome, split, learners, arms),
        "segments": _segments_section(data, cfg, figs, outcome, split, learners, arms),
        "data": _validation_section(data, cfg),
        "decisions": _decision_section(data, cfg),
        "monitoring": _monitoring_section(data, cfg, figs, outcome),
        "glossary": _glossary(),
    }
    generated = data.generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"Run <b>{esc(data.run_id)}</b> · outcome <b>{esc(outcome)}</b> · split <b>{esc(split)}</b> · "
            f"treatments {esc(', '.join(arms) or '–')} vs control <b>{esc(data.control_arm or '–')}</b> · "
            f"learners {esc(', '.join(learner_name(x) for x in learners) or '–')} · generated {esc(generated)}")
    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in SECTIONS[1:])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(cfg.title)} — {esc(data.run_id)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(cfg.title)}</h1><p class=\"meta\">{meta}</p>",
        f'<section id="summary" class="summary"><h2 style="border:0;margin-top:4px">Key findings</h2>'
        f'{bodies["summary"]}</section>',
        f"<nav><ul>{toc}</ul></nav>",
    ]
    for anchor, title in SECTIONS[1:]:
        parts.append(_section(anchor, title, bodies[anchor]))
    parts.append("</main></body></html>")
    return RenderedReport(html="\n".join(parts), figures=figs.files, summary=summary)


def build_report(sections: ReportData, cfg: ReportConfig = ReportConfig()) -> str:
    """The report's HTML (a single self-contained document)."""
    return render_report(sections, cfg).html
