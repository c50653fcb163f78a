"""T-learner: one outcome model per arm, τ_k(x) = μ_k(x) − μ_0(x).

The control model μ_0 is trained once and shared by every treatment arm (as in causalml), so K arms
cost K + 1 boosters and every arm's uplift uses the same baseline.
"""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np

from .base import UpliftLearner
from .models import UpliftModel
from .registry import register_learner


class TLearnerModel(UpliftModel):
    """Fitted T-learner: boosters ``mu_<slug(arm)>`` for control and every treatment arm."""

    @classmethod
    def combine(cls, spec: Mapping, preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        control = spec["control_key"]
        return {arm: preds(f"mu_{key}") - preds(f"mu_{control}") for arm, key in spec["arm_keys"].items()}


class TLearner(UpliftLearner):
    """``TLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...]).fit(df)`` → :class:`TLearnerModel`."""

    def _train_boosters(self, data, enc, trainer) -> Dict[str, str]:
        return self._fit_outcome_models(data, enc, trainer)

    def _propensity_spec(self, df, fingerprint, trainer, enc, data):
        # The T-learner never weights by propensity: record the design only, never train a classifier.
        if self.getPropensity() == "estimate":
            spec = {"mode": "unused", "source": "not needed by the T-learner", "clip": float(self.getPropensityClip()),
                    "constant": {}, "columns": {}, "control_column": None}
            return spec, {}
        return super()._propensity_spec(df, fingerprint, trainer, enc, data)


register_learner("t", TLearner, TLearnerModel)

__all__ = ["TLearner", "TLearnerModel"]
