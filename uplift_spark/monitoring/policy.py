"""Policy drift: the decision mix of the current campaign against the reference campaign's.

We compare recorded decisions (the ``decisions`` table) rather than re-deciding the batch: what was
actually sent is what the business sees, and re-running the optimiser here would duplicate
``uplift_spark.policy`` and its constraints. The reference mix is the profile's ``policy`` section
(see :func:`.profile.build_policy_profile`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import pandas as pd

from ..config import MonitoringConfig
from .stats import level, psi

POLICY_DRIFT_COLUMNS = (
    "metric", "action", "bucket", "reference", "current", "difference", "status", "message",
)


def _row(metric, action, bucket, ref, cur, status, message="") -> Dict[str, object]:
    diff = None if ref is None or cur is None else cur - ref
    return {"metric": metric, "action": action, "bucket": bucket, "reference": ref, "current": cur,
            "difference": diff, "status": status, "message": message}


def policy_drift(current: Mapping, reference: Mapping, cfg: MonitoringConfig) -> pd.DataFrame:
    """Rows: ``mix_psi`` over action × bucket cells, ``action_share`` per action, ``cell_share`` per
    cell, and ``budget_use``. Both arguments are :func:`build_policy_profile` results."""
    out: List[Dict[str, object]] = []
    cells = sorted(set(reference.get("cells", {})) | set(current.get("cells", {})))
    ref_cells = [float(reference["cells"].get(c, 0.0)) for c in cells]
    cur_cells = [float(current["cells"].get(c, 0.0)) for c in cells]
    mix = psi(ref_cells, cur_cells, cfg.psi_epsilon)
    status = level(mix, cfg.psi_warn, cfg.psi_alert)
    out.append(_row("mix_psi", None, None, 0.0, mix, status, f"decision mix PSI {mix:.3f}" if status != "ok" else ""))
    actions = sorted(set(reference.get("actions", {})) | set(current.get("actions", {})))
    for action in actions:
        ref = float(reference["actions"].get(action, 0.0))
        cur = float(current["actions"].get(action, 0.0))
        st = level(abs(cur - ref), cfg.action_share_warn)
        out.append(_row("action_share", action, None, ref, cur, st,
                        f"share of {action!r} {ref:.1%} → {cur:.1%}" if st != "ok" else ""))
    for cell, ref, cur in zip(cells, ref_cells, cur_cells):
        action, bucket = cell.split("|", 1)
        out.append(_row("cell_share", action, bucket, ref, cur, "ok"))
    ref_b, cur_b = reference.get("budget_use"), current.get("budget_use")
    over = cur_b is not None and cur_b > 1.0 + 1e-9
    out.append(_row("budget_use", None, None, ref_b, cur_b, "warn" if over else "ok",
                    f"budget use {cur_b:.1%} exceeds the budget" if over else ""))
    return pd.DataFrame(out, columns=list(POLICY_DRIFT_COLUMNS))
