"""X-learner (Künzel et al. 2019) for several treatment arms sharing one control.

Stage 1: outcome models μ_0 (shared) and μ_k. Stage 2: imputed effects D1 = Y − μ_0(x) on arm-k rows and
D0 = μ_k(x) − Y on control rows, each regressed on x (τ1_k, τ0_k). Final:
τ_k(x) = e_k(x)·τ0_k(x) + (1 − e_k(x))·τ1_k(x), e_k the propensity of arm k versus control. When arm k
is small, e_k is small and τ_k leans on τ1_k's complement τ0_k, fitted on the large control group —
the reason the X-learner beats the T-learner on unbalanced designs.
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import functions as F

from ..schemas import slug
from .base import _LABEL, _VALID, UpliftLearner
from .frames import REGRESSION
from .models import UpliftModel
from .registry import register_learner
from .scoring import score_boosters
from .trainer_base import BoosterSpec

_IMPUTED = "__uplift_imputed"


class XLearnerModel(UpliftModel):
    """Fitted X-learner: ``mu_*`` (stage 1), ``tau0_*``/``tau1_*`` (stage 2) and, with
    ``propensity: estimate``, ``prop_*`` boosters."""

    @classmethod
    def combine(cls, spec: Mapping, preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        """τ_k = e_k·τ0_k + (1 − e_k)·τ1_k with e_k the clipped propensity of arm k versus control
        (constant, from per-arm propensity columns, or from a propensity booster)."""
        out: Dict[str, np.ndarray] = {}
        prop = spec["propensity"]
        clip = float(prop.get("clip", 0.0))
        for arm, key in spec["arm_keys"].items():
            mode = prop["mode"]
            if mode == "estimate":
                e = preds(f"prop_{key}")
            elif mode == "columns" and prop["columns"][arm] in extra and prop["control_column"] in extra:
                p_k = extra[prop["columns"][arm]]
                p_0 = extra[prop["control_column"]]
                with np.errstate(invalid="ignore", divide="ignore"):
                    e = p_k / (p_k + p_0)
                e = np.where(np.isfinite(e), e, float(prop["constant"][arm]))
            else:
                e = np.full(n, float(prop["constant"][arm]))
            e = np.clip(e, clip, 1.0 - clip)
            out[arm] = e * preds(f"tau0_{key}") + (1.0 - e) * preds(f"tau1_{key}")
        return out

    def _extra_columns(self, df) -> List[str]:
        p = self.propensity
        if p.get("mode") == "columns":
            cols = list(p["columns"].values()) + [p["control_column"]]
            if all(c in df.columns for c in cols):
                return cols
        return []


class XLearner(UpliftLearner):
    """``XLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...]).fit(df)`` → :class:`XLearnerModel`."""

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        boosters = self._fit_outcome_models(frames, enc, trainer)
        control_arm = self.getControlArm()
        control = slug(control_arm)
        treatments = list(self.getTreatmentArms())
        valid = _VALID if self.getValidationCol() else None
        # Imputed effects are narrow maps of the cached arm frames (same rows, same task layout), each
        # cached once: SynapseML reads a booster's input three times, so scoring must not rerun per read.
        # Control rows: D0_k = μ_k(x) − Y for every k in ONE scoring pass.
        ctrl_out = {_imputed(slug(a)): (lambda preds, extra, n, _k=f"mu_{slug(a)}": preds(_k)) for a in treatments}
        ctrl_scored, ctrl_bc = score_boosters(frames[control_arm].df, enc.encoded_columns, boosters, ctrl_out)
        ctrl = frames[control_arm].derive(ctrl_scored.select(
            *enc.encoded_columns, _LABEL, _VALID,
            *[(F.col(_imputed(slug(a))) - F.col(_LABEL)).alias(_imputed(slug(a))) for a in treatments],
        ))
        ctrl.df.persist(StorageLevel.MEMORY_AND_DISK)  # filled by the first read of the first tau0 booster
        # per-task frames: every stage-2 booster of every arm trains side by side in one Spark job (each
        # imputed frame is read once, so it is not cached); distributed: arm by arm, as the caches cost memory
        per_task = all(frames[a].strategy == "per_task" for a in [control_arm, *treatments])
        try:
            for batch in ([treatments] if per_task else [[a] for a in treatments]):
                specs, keys, held = [], [], []
                try:
                    for arm in batch:
                        key = slug(arm)
                        # Treated rows: D1_k = Y − μ_0(x)
                        out = {_IMPUTED: (lambda preds, extra, n: preds(f"mu_{control}"))}
                        scored, bc = score_boosters(frames[arm].df, enc.encoded_columns, boosters, out)
                        treated = frames[arm].derive(scored.withColumn(_IMPUTED, F.col(_LABEL) - F.col(_IMPUTED)))
                        held.append((treated, bc))
                        if not per_task:
                            treated.df.persist(StorageLevel.MEMORY_AND_DISK)
                        specs += [BoosterSpec(treated, _IMPUTED, enc.encoded_columns, enc.booster_names, REGRESSION,
                                              enc.categorical_indexes, valid),
                                  BoosterSpec(ctrl, _imputed(key), enc.encoded_columns, enc.booster_names,
                                              REGRESSION, enc.categorical_indexes, valid)]
                        keys += [f"tau1_{key}", f"tau0_{key}"]
                    for name, res in zip(keys, trainer.train_many(specs)):
                        boosters[name] = res.model_str
                finally:
                    for treated, bc in held:
                        treated.unpersist()
                        bc.unpersist()
        finally:
            ctrl.unpersist()
            ctrl_bc.unpersist()
        return boosters


def _imputed(key: str) -> str:
    return f"{_IMPUTED}_{key}"


register_learner("x", XLearner, XLearnerModel)

__all__ = ["XLearner", "XLearnerModel"]
