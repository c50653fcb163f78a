"""Report figures as PNG bytes (matplotlib's Agg canvas, no pyplot state).

Each ``plot_*`` takes a small pandas frame with the columns of its table contract and returns PNG bytes,
so the HTML can embed them and tests can check them without a display. We build ``Figure`` objects
directly instead of using ``pyplot``: no global figure registry, nothing leaks between reports, and no
GUI backend can ever be selected on a headless driver.
"""

from __future__ import annotations

import io
import math
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .text import fmt, learner_name

PALETTE = ("#1f6fb2", "#e07b00", "#2a9d3a", "#8e44ad", "#c0392b", "#7f8c8d")
HARM = "#c0392b"
GOOD = "#2a9d3a"
NEUTRAL = "#9aa5b1"
STATUS_COLORS = {"ok": GOOD, "pass": GOOD, "warn": "#e0a100", "warning": "#e0a100", "alert": HARM,
                 "fail": HARM, "error": HARM}
DPI = 100


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _grid(n: int, ncols_max: int = 3, width: float = 4.6, height: float = 3.4):
    ncols = max(1, min(ncols_max, n))
    nrows = int(math.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows + 0.4))
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _style(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, color="#e5e8eb", linewidth=0.7)
    ax.set_axisbelow(True)


def plot_curves(curves: pd.DataFrame, kind: str = "qini", arms: Optional[Sequence[str]] = None,
                outcome: str = "", learners: Optional[Sequence[str]] = None) -> bytes:
    """Qini or uplift curves, one panel per arm, learners overlaid, random line and bootstrap band.

    ``curves`` holds one outcome and split of ``uplift_curves``. The x axis is the share of customers
    targeted (``n`` over the last point's ``n``) so arms of different size read alike.
    """
    if kind not in ("qini", "uplift"):
        raise ValueError(f"plot_curves: kind must be 'qini' or 'uplift', got {kind!r}")
    arms = list(arms) if arms else sorted(curves["arm"].unique())
    learners = list(learners) if learners else sorted(curves["learner"].unique())
    fig, axes = _grid(len(arms))
    low, high = f"{kind}_low", f"{kind}_high"
    for ax, arm in zip(axes, arms):
        _style(ax)
        sub_arm = curves[curves["arm"] == arm]
        drew_random = False
        for i, learner in enumerate(learners):
            sub = sub_arm[sub_arm["learner"] == learner].sort_values("point")
            if sub.empty:
                continue
            color = PALETTE[i % len(PALETTE)]
            n_max = float(sub["n"].max()) or 1.0
            x = sub["n"].to_numpy(dtype=float) / n_max
            y = sub[kind].to_numpy(dtype=float)
            if low in sub and high in sub and sub[low].notna().any():
                ax.fill_between(x, sub[low].to_numpy(dtype=float), sub[high].to_numpy(dtype=float),
                                color=color, alpha=0.15, linewidth=0)
            ax.plot(x, y, color=color, linewidth=1.8, label=learner_name(learner))
            if not drew_random:
                end = y[np.argmax(x)] if len(y) else 0.0
                ax.plot([0, 1], [0, end], color="#555", linestyle="--", linewidth=1.2, label="random targeting")
                drew_random = True
        ax.axhline(0, color="#999", linewidth=0.8)
        ax.set_title(f"{arm}", fontsize=11)
        ax.set_xlabel("share of customers targeted (best first)")
        ax.set_ylabel(f"extra {outcome}" if outcome else "extra outcome")
        ax.xaxis.set_major_formatter(_percent_formatter())
        if sub_arm.empty:
            ax.text(0.5, 0.5, "no curve for this arm", transform=ax.transAxes, ha="center", color="#777")
    _figure_legend(fig, axes)
    fig.suptitle(f"{'Qini' if kind == 'qini' else 'Uplift'} curves" + (f" — {outcome}" if outcome else ""),
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return to_png(fig)


def _figure_legend(fig: Figure, axes, handles=None) -> None:
    """One legend under the title for all panels, so no legend hides a curve or a bar."""
    if handles is None:
        seen = {}
        for ax in axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, h)
        handles = list(seen.values())
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(handles),
                   fontsize=9, frameon=False)


def _percent_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{100 * v:.0f}%")


def plot_deciles(deciles: pd.DataFrame, arms: Optional[Sequence[str]] = None, z: float = 1.96,
                 outcome: str = "") -> bytes:
    """Predicted vs observed uplift per decile, one panel per arm; negative observed bars in red.

    ``deciles`` holds one learner, outcome and split of ``uplift_by_decile``. Error bars are ±z·se.
    """
    arms = list(arms) if arms else sorted(deciles["arm"].unique())
    fig, axes = _grid(len(arms))
    width = 0.4
    for ax, arm in zip(axes, arms):
        _style(ax)
        sub = deciles[deciles["arm"] == arm].sort_values("decile")
        if sub.empty:
            ax.text(0.5, 0.5, "no deciles for this arm", transform=ax.transAxes, ha="center", color="#777")
            ax.set_title(arm, fontsize=11)
            continue
        x = sub["decile"].to_numpy(dtype=float)
        observed = sub["observed"].to_numpy(dtype=float)
        se = sub["se"].to_numpy(dtype=float) if "se" in sub else np.zeros_like(observed)
        err = np.where(np.isfinite(se), z * se, 0.0)
        colors = [HARM if (np.isfinite(v) and v < 0) else GOOD for v in observed]
        ax.bar(x - width / 2, sub["predicted"].to_numpy(dtype=float), width, color="#9fc5e8",
               edgecolor="#1f6fb2", label="predicted")
        ax.bar(x + width / 2, np.nan_to_num(observed), width, color=colors, alpha=0.85, label="observed",
               yerr=err, error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333"})
        ax.axhline(0, color="#555", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([str(int(d)) for d in x])
        ax.set_title(arm, fontsize=11)
        ax.set_xlabel("decile of predicted uplift")
        ax.set_ylabel(f"uplift ({outcome})" if outcome else "uplift")
    from matplotlib.patches import Patch

    _figure_legend(fig, axes, [Patch(facecolor="#9fc5e8", edgecolor="#1f6fb2", label="predicted"),
                               Patch(facecolor=GOOD, label="observed (≥ 0)"),
                               Patch(facecolor=HARM, label="observed (< 0: harmed)")])
    fig.suptitle("Predicted vs observed uplift by decile" + (f" — {outcome}" if outcome else ""), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return to_png(fig)


def plot_importance(importance: pd.DataFrame, top: int = 10) -> bytes:
    """Horizontal bars of the gain share per feature (one panel per arm), strongest on top.

    ``importance`` holds columns arm, feature, gain_share (already summed over the learner's models).
    """
    arms = list(dict.fromkeys(importance["arm"].tolist()))
    rows = min(top, int(importance.groupby("arm")["feature"].nunique().max()))
    fig, axes = _grid(len(arms), width=4.2, height=0.32 * rows + 1.3)
    for ax, arm in zip(axes, arms):
        _style(ax)
        sub = importance[importance["arm"] == arm].sort_values("gain_share", ascending=False).head(top)
        sub = sub.iloc[::-1]
        ax.barh(sub["feature"].astype(str), 100 * sub["gain_share"].to_numpy(dtype=float), color="#1f6fb2")
        ax.set_title(arm, fontsize=11)
        ax.set_xlabel("share of model gain (%)")
    fig.suptitle("Strongest features", fontsize=12)
    fig.tight_layout()
    return to_png(fig)


def plot_segments(segments: pd.DataFrame, arm: str, z: float = 1.96, outcome: str = "",
                  split_at: Optional[int] = None) -> bytes:
    """Observed uplift (±z·se) and mean predicted uplift of the segments chosen for one arm.

    Rows are drawn top to bottom in the given order; ``split_at`` draws a line after that many rows
    (between the best and the worst segments).
    """
    sub = segments.reset_index(drop=True)
    labels = [f"{f}: {s}" for f, s in zip(sub["feature"], sub["segment"])]
    fig = Figure(figsize=(7.5, 0.38 * len(sub) + 1.3))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    y = np.arange(len(sub))[::-1]
    observed = sub["observed"].to_numpy(dtype=float)
    err = z * np.nan_to_num(sub["se"].to_numpy(dtype=float))
    colors = [HARM if v < 0 else GOOD for v in np.nan_to_num(observed)]
    ax.barh(y, np.nan_to_num(observed), xerr=err, color=colors, alpha=0.8, height=0.6,
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333"}, label="observed")
    ax.scatter(sub["predicted"].to_numpy(dtype=float), y, marker="D", color="#1f1f1f", zorder=3, s=22,
               label="predicted (mean)")
    ax.axvline(0, color="#555", linewidth=0.8)
    if split_at is not None and 0 < split_at < len(sub):
        ax.axhline(len(sub) - split_at - 0.5, color="#777", linestyle=":", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel(f"uplift ({outcome})" if outcome else "uplift")
    ax.set_title(f"Segments for {arm}: best and worst", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 1.0 / (len(sub) + 3)),
              ncol=2)
    fig.tight_layout()
    return to_png(fig)


def _status_color(status, value, warn, alert) -> str:
    if isinstance(status, str) and status.lower() in STATUS_COLORS:
        return STATUS_COLORS[status.lower()]
    if value is None or not np.isfinite(value):
        return NEUTRAL
    if value >= alert:
        return HARM
    if value >= warn:
        return STATUS_COLORS["warn"]
    return GOOD


def plot_psi(drift: pd.DataFrame, warn: float = 0.1, alert: float = 0.25) -> bytes:
    """PSI per feature (one batch), colored by status, with the warn/alert thresholds as lines."""
    sub = drift.sort_values("psi", ascending=True)
    fig = Figure(figsize=(7.5, 0.32 * len(sub) + 1.4))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    psi = sub["psi"].to_numpy(dtype=float)
    status = sub["status"].tolist() if "status" in sub else [None] * len(sub)
    colors = [_status_color(s, v, warn, alert) for s, v in zip(status, psi)]
    ax.barh(sub["feature"].astype(str), np.nan_to_num(psi), color=colors)
    ax.axvline(warn, color=STATUS_COLORS["warn"], linestyle="--", linewidth=1, label=f"warn ({fmt(warn)})")
    ax.axvline(alert, color=HARM, linestyle="--", linewidth=1, label=f"alert ({fmt(alert)})")
    ax.set_xlabel("PSI (population stability index)")
    ax.set_title("Feature drift vs training data", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return to_png(fig)


def plot_realized(realized: pd.DataFrame, outcome: str = "") -> bytes:
    """Realized uplift per action with its interval, next to the uplift the policy expected."""
    sub = realized.reset_index(drop=True)
    labels = sub["action"].astype(str).tolist() if "action" in sub else [str(i) for i in range(len(sub))]
    if "batch_id" in sub and sub["batch_id"].nunique() > 1:
        labels = [f"{a} ({b})" for a, b in zip(labels, sub["batch_id"].astype(str))]
    fig = Figure(figsize=(7.5, 0.5 * len(sub) + 1.4))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    y = np.arange(len(sub))[::-1]
    realized_v = sub["realized"].to_numpy(dtype=float)
    if "ci_low" in sub and "ci_high" in sub:
        lo = realized_v - sub["ci_low"].to_numpy(dtype=float)
        hi = sub["ci_high"].to_numpy(dtype=float) - realized_v
        xerr = np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])
    else:
        xerr = None
    ax.errorbar(realized_v, y, xerr=xerr, fmt="o", color="#1f6fb2", capsize=3, label="realized (with interval)")
    if "expected" in sub:
        ax.scatter(sub["expected"].to_numpy(dtype=float), y, marker="D", color="#e07b00", zorder=3,
                   label="expected by the model")
    ax.axvline(0, color="#555", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel(f"uplift per customer ({outcome})" if outcome else "uplift per customer")
    ax.set_title("Realized vs expected uplift (targeted vs holdout)", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2 - 0.5 / (len(sub) + 1)),
              ncol=2)
    fig.tight_layout()
    return to_png(fig)


def png_size(data: bytes) -> Dict[str, int]:
    """Width and height from a PNG header (raises ValueError when ``data`` is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return {"width": int.from_bytes(data[16:20], "big"), "height": int.from_bytes(data[20:24], "big")}
