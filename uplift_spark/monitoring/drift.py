"""Feature drift of a batch against the reference profile: PSI, binned KS, null and unseen shares.

The batch is bucketed with the reference edges/categories in one pass on the executors; only the
per-bucket counts reach the driver. PSI is taken over the value buckets plus a null bucket (a feature
that starts arriving empty is drift too), with empty buckets smoothed at ``monitoring.psi_epsilon``;
KS is the binned KS on the reference quantile grid (see :mod:`.stats`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import pandas as pd

from ..config import MonitoringConfig
from ..errors import MonitoringError
from .profile import feature_counts
from .stats import binned_ks, level, psi, worst

FEATURE_DRIFT_COLUMNS = (
    "feature", "kind", "psi", "ks", "null_share_ref", "null_share", "unseen_share", "rows", "reference_rows",
    "status", "message",
)


def with_null_bucket(value_shares, null_share: float) -> List[float]:
    """Full distribution: value-bucket shares scaled by the non-null share, then the null share."""
    keep = 1.0 - float(null_share or 0.0)
    return [float(s) * keep for s in value_shares] + [float(null_share or 0.0)]


def compare_feature(name: str, spec: Mapping, counts: Mapping, cfg: MonitoringConfig) -> Dict[str, object]:
    """Drift metrics and status of one feature from reference ``spec`` and batch ``counts``."""
    rows = int(counts["rows"])
    values = counts["values"]
    non_null = float(sum(values))
    null_share = counts["null"] / rows if rows else float("nan")
    new_shares = [v / non_null for v in values] if non_null else [0.0] * len(values)
    ref = with_null_bucket(spec["shares"], spec.get("null_share", 0.0))
    cur = with_null_bucket(new_shares, null_share if rows else 0.0)
    value = psi(ref, cur, cfg.psi_epsilon) if rows else float("nan")
    ks = binned_ks(spec["shares"], new_shares) if spec["kind"] == "numeric" and non_null else float("nan")
    unseen = counts["unseen"] / rows if rows and spec["kind"] == "categorical" else (0.0 if rows else float("nan"))
    null_ref = float(spec.get("null_share") or 0.0)
    psi_status = level(value, cfg.psi_warn, cfg.psi_alert)
    null_status = level(null_share - null_ref if rows else None, cfg.null_share_warn)
    unseen_status = level(unseen, cfg.unseen_share_warn)
    notes = []
    if psi_status != "ok":
        notes.append(f"PSI {value:.3f} ≥ {cfg.psi_alert if psi_status == 'alert' else cfg.psi_warn}")
    if null_status != "ok":
        notes.append(f"null share {null_ref:.3f} → {null_share:.3f}")
    if unseen_status != "ok":
        notes.append(f"{unseen:.1%} unseen categories")
    if not rows:
        notes.append("no rows in the batch")
    return {
        "feature": name, "kind": spec["kind"], "psi": value, "ks": ks, "null_share_ref": null_ref,
        "null_share": null_share, "unseen_share": unseen, "rows": rows, "reference_rows": int(spec.get("rows") or 0),
        "status": worst(psi_status, null_status, unseen_status), "message": "; ".join(notes),
    }


def feature_drift(batch_df, feature_profile: Mapping[str, Mapping], cfg: MonitoringConfig,
                  features: Optional[List[str]] = None) -> pd.DataFrame:
    """One row per feature: PSI, binned KS (numeric), null and unseen shares, status ok/warn/alert."""
    if not feature_profile:
        raise MonitoringError("feature drift: the reference profile has no features")
    spec = {k: v for k, v in feature_profile.items() if features is None or k in features}
    counts = feature_counts(batch_df, spec)
    rows = [compare_feature(name, s, counts[name], cfg) for name, s in spec.items()]
    return pd.DataFrame(rows, columns=list(FEATURE_DRIFT_COLUMNS))
