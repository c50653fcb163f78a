"""Report section "Which model, and what drives the effect?": the learner and settings chosen on
``valid`` (the manifest's ``tuning``/``selection``) and the top features of ``uplift_importance``.

Kept apart from the main template (like :mod:`.policy_section`) so any layout can place it:
:func:`choice_data` returns plain data, :func:`choice_section` a small HTML fragment.
"""

from __future__ import annotations

import html
import json
from typing import Mapping, Optional

import pandas as pd

TITLE = "Which model, and what drives the effect?"


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and value != value) else f"{value:.4f}"


def top_uplift_drivers(importance: Optional[pd.DataFrame], learner: Optional[str], outcome: Optional[str],
                       top: int = 5) -> pd.DataFrame:
    """The ``top`` features by surrogate gain share per arm for one learner/outcome (empty if none)."""
    cols = ["arm", "rank", "feature", "gain_share", "surrogate_r2"]
    if importance is None or importance.empty:
        return pd.DataFrame(columns=cols)
    part = importance
    if learner is not None:
        part = part[part["learner"] == learner]
    if outcome is not None:
        part = part[part["outcome"] == outcome]
    part = part.sort_values(["arm", "rank", "feature"])
    return part[part["rank"] <= top][cols].reset_index(drop=True)


def choice_data(manifest: Mapping, importance: Optional[pd.DataFrame], top: int = 5) -> dict:
    """``{selection, grid (DataFrame: learner, point, params, score, chosen), drivers (DataFrame)}``."""
    selection = dict(manifest.get("selection") or {})
    rows = []
    for learner, rec in (manifest.get("tuning") or {}).items():
        for i, point in enumerate(rec.get("grid", [])):
            rows.append({"learner": learner, "point": i, "params": json.dumps(point.get("params") or {}) or "{}",
                         "score": point.get("score"), "chosen": i == rec.get("best")})
    grid = pd.DataFrame(rows, columns=["learner", "point", "params", "score", "chosen"])
    drivers = top_uplift_drivers(importance, selection.get("learner"), selection.get("outcome"), top)
    return {"selection": selection, "grid": grid, "drivers": drivers}


def choice_section(data: Mapping) -> str:
    """A minimal HTML fragment of :func:`choice_data` ("" when there is nothing to show)."""
    body = choice_body(data)
    return f'<section id="model-choice"><h2>{TITLE}</h2>{body}</section>' if body else ""


def choice_report_section(data: Mapping) -> Optional[dict]:
    """The section dict :func:`~.html.render_report` takes in ``extra_sections`` (None: nothing to show)."""
    body = choice_body(data)
    return {"anchor": "model-choice", "title": TITLE, "body": body} if body else None


def choice_body(data: Mapping) -> str:
    """The section's content without its heading ("" when there is nothing to show)."""
    sel, grid, drivers = data.get("selection") or {}, data["grid"], data["drivers"]
    if not sel and grid.empty and drivers.empty:
        return ""
    parts = []
    if sel:
        scores = ", ".join(f"{html.escape(str(k))}: {_fmt(v)}" for k, v in (sel.get("scores") or {}).items())
        parts.append(f"<p>Deployed with <code>policy.learner: auto</code>: <b>{html.escape(str(sel.get('learner')))}"
                     f"</b>, the best mean {html.escape(str(sel.get('metric')))} of "
                     f"{html.escape(str(sel.get('outcome')))} on the {html.escape(str(sel.get('split')))} split "
                     f"over arms {html.escape(', '.join(sel.get('arms') or []))} ({scores}).</p>")
    if not grid.empty:
        body = "".join(
            f"<tr><td>{html.escape(str(r.learner))}</td><td>{html.escape(r.params)}</td><td>{_fmt(r.score)}</td>"
            f"<td>{'✔' if r.chosen else ''}</td></tr>" for r in grid.itertuples())
        parts.append("<table><tr><th>learner</th><th>LightGBM settings (over the configured)</th>"
                     f"<th>validation score</th><th>kept</th></tr>{body}</table>")
    if not drivers.empty:
        body = "".join(
            f"<tr><td>{html.escape(str(r.arm))}</td><td>{int(r.rank)}</td><td>{html.escape(str(r.feature))}</td>"
            f"<td>{_fmt(r.gain_share)}</td><td>{_fmt(r.surrogate_r2)}</td></tr>" for r in drivers.itertuples())
        parts.append("<p>What changes the predicted effect (gain share of a surrogate model of the predicted "
                     "uplift; the segments above slice these features):</p><table><tr><th>arm</th><th>rank</th>"
                     f"<th>feature</th><th>gain share</th><th>surrogate R²</th></tr>{body}</table>")
    return "".join(parts)


__all__ = ["choice_data", "choice_section", "choice_report_section", "choice_body", "top_uplift_drivers", "TITLE"]
