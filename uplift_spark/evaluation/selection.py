"""Validation scores that choose hyperparameters and the deployed learner (``model.tune``,
``policy.learner: auto``).

Every candidate (a learner × grid point, already applied to the ``valid`` rows) and every scored arm
is one slice of ONE exact scan (:func:`.scan.scan_slices`, no bootstrap), and each slice gets the
metric the evaluate stage writes for it: ``qini_auc`` (scikit-uplift's normalised Qini AUC) for a
binary outcome, ``qini_coefficient`` for a continuous one (the normalised AUC is defined for 0/1
outcomes only). Rows of other arms are left out of an arm's slice, as in :class:`.UpliftEvaluator`.
Only per-slice sums reach the driver.
"""

from __future__ import annotations

from typing import Dict, Hashable, Mapping, Optional, Sequence

import numpy as np

from ..errors import DataError
from ..schemas import uplift_column
from .metrics import metric_draws
from .scan import ScanSettings, scan_slices

_SL, _S, _T, _Y, _ID = "_vs_slice", "_vs_s", "_vs_t", "_vs_y", "_vs_id"


def selection_metric(binary: bool) -> str:
    return "qini_auc" if binary else "qini_coefficient"


def validation_scores(frames: Mapping[Hashable, object], arms: Sequence[str], control_arm: str, arm_col: str,
                      outcome_col: str, id_col: str, binary: Optional[bool] = None
                      ) -> Dict[Hashable, Dict[str, Optional[float]]]:
    """``{candidate: {arm: metric}}`` of each candidate's ``uplift_<arm>`` on its frame's rows.

    ``frames``: candidate key → DataFrame with ``arm_col``, ``outcome_col``, ``id_col`` and
    ``uplift_<slug(arm)>`` per arm. ``binary``: the outcome type (None: detected from the data).
    A slice without treated or control rows, or with an undefined metric, scores None.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    keys = list(frames)
    if not keys or not arms:
        return {k: {} for k in keys}
    parts, labels = [], {}
    for c, key in enumerate(keys):
        df = frames[key]
        for a, arm in enumerate(arms):
            needed = (uplift_column(arm), arm_col, outcome_col, id_col)
            missing = [col for col in needed if col not in df.columns]
            if missing:
                raise DataError(f"validation scores: column {missing[0]!r} not found for candidate {key!r}")
            sl = c * len(arms) + a
            labels[sl] = f"{key}/{arm}"
            parts.append(df.where(F.col(arm_col).cast("string").isin(arm, control_arm)).select(
                F.lit(sl).alias(_SL), F.col(uplift_column(arm)).cast("double").alias(_S),
                (F.col(arm_col).cast("string") == F.lit(arm)).cast("int").alias(_T),
                F.col(outcome_col).cast("double").alias(_Y), F.col(id_col).cast("string").alias(_ID)))
    stacked = reduce(lambda x, y: x.unionByName(y), parts)
    scans = scan_slices(stacked, _SL, _S, _T, _Y, _ID, ScanSettings(replicates=0, curve_points=2, n_deciles=2),
                        labels=labels)
    out: Dict[Hashable, Dict[str, Optional[float]]] = {}
    for c, key in enumerate(keys):
        out[key] = {}
        for a, arm in enumerate(arms):
            scan = scans.get(c * len(arms) + a)
            value = None
            if scan is not None:
                is_binary = scan.binary if binary is None else bool(binary) and scan.binary
                draws = metric_draws(scan, (), binary=is_binary)
                v = float(np.asarray(draws[selection_metric(is_binary)])[0])
                value = v if np.isfinite(v) else None
            out[key][arm] = value
    return out


__all__ = ["validation_scores", "selection_metric"]
