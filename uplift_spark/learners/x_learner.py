"""X-learner (Künzel et al. 2019) for several treatment arms sharing one control.

Stage 1: outcome models μ_0 (shared) and μ_k. Stage 2: imputed effects D1 = Y − μ_0(x) on arm-k rows and
D0 = μ_k(x) − Y on control rows, each regressed on x (τ1_k, τ0_k). Final:
τ_k(x) = e_k(x)·τ0_k(x) + (1 − e_k(x))·τ1_k(x), e_k the propensity of arm k versus control. When arm k
is small, e_k is small and τ_k leans on τ1_k's complement τ0_k, fitted on the large control group —
the reason the X-learner beats the T-learner on unbalanced designs.
"""

from __future__ import annotations

from typing import Dict

from pyspark import StorageLevel
from pyspark.sql import functions as F

from ..schemas import slug
from .base import _ARM, _LABEL, _VALID, UpliftModel, _UpliftLearner
from .scoring import score_boosters
from .trainers import REGRESSION

_IMPUTED = "__uplift_imputed"


class XLearner(_UpliftLearner):
    """``XLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...]).fit(df)`` → :class:`UpliftModel`."""

    learner = "x"

    def _train_boosters(self, data, enc, trainer) -> Dict[str, str]:
        boosters = self._fit_outcome_models(data, enc, trainer)
        control = slug(self.getControlArm())
        outputs = {}
        for key in boosters:
            outputs[f"__uplift_{key}"] = (lambda preds, extra, n, _k=key: preds(_k))
        scored, bc = score_boosters(data, enc.encoded_columns, boosters, outputs)
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        valid = _VALID if self.getValidationCol() else None
        try:
            for arm in self.getTreatmentArms():
                key = slug(arm)
                treated = scored.where(F.col(_ARM) == arm).withColumn(
                    _IMPUTED, F.col(_LABEL) - F.col(f"__uplift_mu_{control}"))
                res1 = trainer.train(treated, _IMPUTED, enc.encoded_columns, enc.booster_names, REGRESSION,
                                     enc.categorical_indexes, valid)
                ctrl = scored.where(F.col(_ARM) == self.getControlArm()).withColumn(
                    _IMPUTED, F.col(f"__uplift_mu_{key}") - F.col(_LABEL))
                res0 = trainer.train(ctrl, _IMPUTED, enc.encoded_columns, enc.booster_names, REGRESSION,
                                     enc.categorical_indexes, valid)
                boosters[f"tau1_{key}"] = res1.model_str
                boosters[f"tau0_{key}"] = res0.model_str
        finally:
            scored.unpersist()
            bc.unpersist()
        return boosters


__all__ = ["XLearner", "UpliftModel"]
