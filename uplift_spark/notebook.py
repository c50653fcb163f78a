"""Notebook entry point: the same run context the CLI builds, from widgets (Databricks) or env vars.

Notebooks import only this package: ``ctx = notebook_context(dbutils)`` then call pipeline stages and
read tables. Parameters: ``conf_file``, ``output``, ``run_id`` (widgets, or ``UPLIFT_CONF``,
``UPLIFT_OUTPUT``, ``UPLIFT_RUN_ID``).
"""

from __future__ import annotations

import os
from typing import Optional

from .config import load_config
from .pipelines.context import RunContext, resolve_run_id
from .session import get_spark

_PARAMS = {"conf_file": "UPLIFT_CONF", "output": "UPLIFT_OUTPUT", "run_id": "UPLIFT_RUN_ID"}


def _param(dbutils, name: str, default: Optional[str]) -> Optional[str]:
    if dbutils is not None:
        try:
            value = dbutils.widgets.get(name)
            if value:
                return value
        except Exception:  # widget not defined in this notebook
            pass
    return os.environ.get(_PARAMS[name]) or default


def notebook_context(dbutils=None, default_conf: str = "conf/synthetic.yaml", new_run: bool = False) -> RunContext:
    """Build (or reuse) the session and the run context; ``new_run`` starts a fresh run id."""
    conf_file = _param(dbutils, "conf_file", default_conf)
    cfg = load_config(conf_file, output_root=_param(dbutils, "output", None))
    run_id = resolve_run_id(cfg, _param(dbutils, "run_id", None), fresh=new_run)
    return RunContext(spark=get_spark(cfg.spark), cfg=cfg, run_id=run_id)


def show(df, n: int = 20) -> None:
    """``display`` on Databricks, a text table elsewhere (only call on small, aggregated frames)."""
    import __main__

    display = getattr(__main__, "display", None)  # Databricks puts display() in the notebook namespace
    if callable(display):
        display(df)
    else:
        df.show(n, truncate=False)


def show_png(png: bytes, path: Optional[str] = None) -> None:
    """An image inline on Databricks (``displayHTML``), else written to ``path`` (when given) and named."""
    import base64

    import __main__

    display_html = getattr(__main__, "displayHTML", None)
    if callable(display_html):
        display_html(f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
        return
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(png)
    print(f"figure: {len(png)} bytes" + (f" -> {path}" if path else ""))
