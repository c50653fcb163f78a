"""HTML through Jinja2 templates shipped in ``report/templates`` (package data), autoescaped.

The page layout and CSS live in ``report.html.j2`` / ``report.css``; small pieces (tables, figures,
notes) are macros in ``parts.html.j2`` that section builders call. They return plain ``str`` (already
escaped HTML) so section builders can concatenate them with their own escaped sentences. Every value is escaped on output
unless it is :class:`~markupsafe.Markup` (HTML this package built from escaped parts), so a customer
value or config string cannot inject markup. Escaping uses :func:`html.escape` everywhere (the same
entities in sentences built in Python and in template output).
"""

from __future__ import annotations

import base64
import html
from typing import Iterable, List, Mapping, Optional, Sequence

import jinja2
from markupsafe import Markup

_ENV: Optional[jinja2.Environment] = None


def esc(value) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def _finalize(value):
    return value if isinstance(value, Markup) else Markup(esc(value))


def environment() -> jinja2.Environment:
    """The package's template environment (loaded once)."""
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(loader=jinja2.PackageLoader("uplift_spark.report", "templates"),
                                  autoescape=True, finalize=_finalize, keep_trailing_newline=False)
    return _ENV


def _parts():
    return environment().get_template("parts.html.j2").module


def note(text) -> str:
    return str(_parts().note(text))


def figure(png: bytes, caption: str, alt: str) -> str:
    """An embedded PNG (base64, so the report stays one offline file); ``caption`` is trusted HTML."""
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return str(_parts().figure(src, Markup(caption), alt))


def glossary(items: Iterable[Sequence]) -> str:
    return str(_parts().glossary(list(items)))


def details(summary, body) -> str:
    return str(_parts().details(summary, Markup(body)))


def table(headers: Sequence[Mapping], rows: Sequence[Mapping], css: str = "data", note_text=None) -> str:
    """``headers``: {text, title?}; ``rows``: {cls?, cells: [{kind: text|num|status|metric, text, …}]}."""
    return str(_parts().table(list(headers), list(rows), css, note_text))


def page(title: str, run_id, meta: str, summary: List[str], sections: Sequence[Mapping]) -> str:
    """The whole document; ``meta``, summary lines and section bodies are trusted HTML."""
    return environment().get_template("report.html.j2").render(
        title=title, run_id=run_id, meta=Markup(meta), summary=[Markup(s) for s in summary],
        sections=[{**s, "body": Markup(s["body"])} for s in sections])



__all__ = ["esc", "environment", "note", "figure", "glossary", "details", "table", "page"]
