"""Report section "Which model, and what drives the effect?": the learner and settings chosen on
``valid`` (the manifest's ``tuning``/``selection``) and the top features of ``uplift_importance``.

Kept apart from the main template (like :mod:`.policy_section`) so any layout can place it:
:func:`choice_data` returns plain data, :func:`choice_section` a small HTML fragment.
"""

from __future__ import annotations

import json
from typing import Mapping, Optional

import pandas as pd

from . import templating

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
        scores = ", ".join(f"{templating.esc(str(k))}: {_fmt(v)}" for k, v in (sel.get("scores") or {}).items())
        parts.append(f"<p>Deployed with <code>policy.learner: auto</code>: <b>{templating.esc(str(sel.get('learner')))}"
                     f"</b>, the best mean {templating.esc(str(sel.get('metric')))} of "
                     f"{templating.esc(str(sel.get('outcome')))} on the {templating.esc(str(sel.get('split')))} split "
                     f"over arms {templating.esc(', '.join(sel.get('arms') or []))} ({scores}).</p>")
    if not grid.empty:
        parts.append(templating.table(
            [{"text": h} for h in ("learner", "LightGBM settings (over the configured)", "validation score", "kept")],
            [{"cells": [{"kind": "text", "text": r.learner}, {"kind": "text", "text": r.params},
                        {"kind": "num", "text": _fmt(r.score)}, {"kind": "text", "text": "✔" if r.chosen else ""}]}
             for r in grid.itertuples()]))
    if not drivers.empty:
        parts.append("<p>What changes the predicted effect (gain share of a surrogate model of the predicted "
                     "uplift; the segments above slice these features):</p>")
        parts.append(templating.table(
            [{"text": h} for h in ("arm", "rank", "feature", "gain share", "surrogate R²")],
            [{"cells": [{"kind": "text", "text": r.arm}, {"kind": "num", "text": str(int(r.rank))},
                        {"kind": "text", "text": r.feature}, {"kind": "num", "text": _fmt(r.gain_share)},
                        {"kind": "num", "text": _fmt(r.surrogate_r2)}]} for r in drivers.itertuples()]))
    return "".join(parts)


__all__ = ["choice_data", "choice_section", "choice_report_section", "choice_body", "top_uplift_drivers", "TITLE"]
