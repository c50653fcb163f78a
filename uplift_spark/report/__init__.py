"""Marketer-facing HTML report: pure functions from small pandas frames to PNG figures and one HTML file.

Only :func:`segment_uplift` touches Spark (it aggregates predictions joined with features into a small
frame); everything else is testable without a session. The pipeline ``pipelines/report.py`` reads the
run's tables and fills a :class:`ReportData`.
"""

from .data import ReportData, SECTION_TABLES
from .html import RenderedReport, build_report, render_report
from .plots import (plot_curves, plot_deciles, plot_importance, plot_psi, plot_realized, plot_segments,
                    png_size)
from .segments import SEGMENT_COLUMNS, segment_uplift, strongest_features, top_segments

__all__ = [
    "ReportData", "SECTION_TABLES", "RenderedReport", "build_report", "render_report",
    "plot_curves", "plot_deciles", "plot_importance", "plot_psi", "plot_realized", "plot_segments",
    "png_size", "SEGMENT_COLUMNS", "segment_uplift", "strongest_features", "top_segments",
]
