"""Propensity e_k(x) = P(arm k | x, arm ∈ {k, control}) for the X-learner's weighting.

``known``: from the experiment design — per-arm assignment-probability columns
``<prefix>_<slug(arm)>`` (e_k = p_k / (p_k + p_0)), else the configured allocation (e_k = a_k / (a_k + a_0)),
else the observed arm shares of the training rows (an RCT's design, estimated). ``estimate``: a LightGBM
classifier of arm k versus control. Always clipped to [ε, 1 − ε] when used.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from ..errors import ModelError
from ..schemas import slug


def propensity_columns(prefix: Optional[str], arms: Sequence[str]) -> Dict[str, str]:
    return {arm: f"{prefix}_{slug(arm)}" for arm in arms} if prefix else {}


def known_propensity(df_columns: Sequence[str], control: str, treatments: Sequence[str],
                     rows_per_arm: Mapping[str, int], allocation: Mapping[str, float],
                     prefix: Optional[str], clip: float, column_means: Optional[Mapping[str, float]] = None) -> dict:
    """Describe the known propensities; ``constant`` is what scoring uses when columns are absent."""
    cols = propensity_columns(prefix, (control,) + tuple(treatments))
    have_cols = bool(cols) and all(c in df_columns for c in cols.values())
    constant: Dict[str, float] = {}
    source = "empirical"
    if allocation and control in allocation and all(a in allocation for a in treatments):
        a0 = float(allocation[control])
        for arm in treatments:
            ak = float(allocation[arm])
            if ak + a0 <= 0:
                raise ModelError(f"data.allocation: arms {arm!r} and {control!r} both have allocation 0")
            constant[arm] = ak / (ak + a0)
        source = "allocation"
    elif have_cols and column_means:
        constant = {arm: float(column_means[arm]) for arm in treatments}
        source = "columns"
    else:
        n0 = float(rows_per_arm.get(control, 0))
        for arm in treatments:
            nk = float(rows_per_arm.get(arm, 0))
            if nk + n0 <= 0:
                raise ModelError(f"no training rows for arm {arm!r} nor control {control!r}")
            constant[arm] = nk / (nk + n0)
    spec = {
        "mode": "columns" if have_cols else "constant",
        "source": "columns" if have_cols else source,
        "clip": float(clip),
        "constant": constant,
        "columns": {arm: cols[arm] for arm in treatments} if have_cols else {},
        "control_column": cols[control] if have_cols else None,
    }
    return spec


def column_propensity_means(df, control: str, treatments: Sequence[str], prefix: str) -> Dict[str, float]:
    """Mean of p_k / (p_k + p_0) over the rows (one small aggregate): the scoring fallback."""
    from pyspark.sql import functions as F

    cols = propensity_columns(prefix, (control,) + tuple(treatments))
    p0 = F.col(cols[control]).cast("double")
    aggs = [F.avg(F.col(cols[arm]).cast("double") / (F.col(cols[arm]).cast("double") + p0)).alias(slug(arm))
            for arm in treatments]
    row = df.agg(*aggs).first()
    return {arm: float(row[slug(arm)]) if row[slug(arm)] is not None else 0.5 for arm in treatments}


__all__ = ["known_propensity", "column_propensity_means", "propensity_columns"]
