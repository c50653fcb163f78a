"""S-learner: ONE outcome booster on the features plus the arm (a categorical feature),
τ_k(x) = f(x, k) − f(x, control), predicted by setting the arm feature to each arm in turn.

Why keep it: the simplest baseline, and every arm shares the trees fitted on all rows, so a small arm
borrows strength from the others; its known weakness is that the booster may ignore the arm when
effects are small next to the baseline (τ̂ shrinks towards 0).
"""

from __future__ import annotations

from functools import reduce
from typing import Dict, Mapping

import numpy as np

from .base import _LABEL, _VALID, UpliftLearner
from .models import UpliftModel
from .registry import register_learner

_ARM_CODE = "__uplift_arm_code"
ARM_FEATURE = "treatment_arm"
BOOSTER = "s_pooled"


class SLearnerModel(UpliftModel):
    """Fitted S-learner: booster ``s_pooled`` on the encoded features plus the arm code (control = 0,
    treatment arms 1..K in ``treatment_arms`` order) as its last, categorical, feature."""

    def spec(self) -> dict:
        spec = super().spec()
        spec["arm_codes"] = {arm: i + 1 for i, arm in enumerate(self.treatment_arms)}
        return spec

    @classmethod
    def combine(cls, spec: Mapping, preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        base = preds(f"{BOOSTER}@0")
        return {arm: preds(f"{BOOSTER}@{code}") - base for arm, code in spec["arm_codes"].items()}

    def outcome_mean_keys(self) -> Dict[str, str]:
        """f(x, k): the pooled booster with the arm feature set to each arm's code (control 0)."""
        codes = {self.control_arm: 0, **self.spec()["arm_codes"]}
        return {arm: f"{BOOSTER}@{code}" for arm, code in codes.items()}

    def feature_importance(self):
        """Gain per feature of the one pooled booster, repeated for every treatment arm (the report
        slices importance by arm); the arm feature's gain is listed as ``treatment_arm``."""
        from .scoring import booster

        rows = []
        for key, text in sorted(self.boosters.items()):
            gains = booster(text).feature_importance(importance_type="gain")
            total = float(sum(gains)) or 1.0
            for arm in self.treatment_arms:
                for feat, g in zip([*self.features, ARM_FEATURE], gains):
                    rows.append({"learner": self.learner, "outcome": self.outcome, "arm": arm, "model": key,
                                 "feature": feat, "gain": float(g), "gain_share": float(g) / total})
        return rows


class SLearner(UpliftLearner):
    """``SLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...]).fit(df)`` → :class:`SLearnerModel`."""

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        from pyspark.sql import functions as F

        arms = [self.getControlArm(), *self.getTreatmentArms()]
        fp = self._fit_state["fingerprint"]
        parts = [frames[arm].df.select(*enc.encoded_columns, _LABEL, _VALID).withColumn(_ARM_CODE, F.lit(float(i)))
                 for i, arm in enumerate(arms)]
        pooled = reduce(lambda a, b: a.unionByName(b), parts)
        counts: Dict[object, int] = {}
        for arm in arms:
            for k, v in self._class_counts(fp, arm).items():
                counts[k] = counts.get(k, 0) + v
        valid = _VALID if self.getValidationCol() else None
        frame = trainer.prepare(pooled, _LABEL, self._outcome_objective(), valid, counts)
        names = enc.booster_names
        arm_name = ARM_FEATURE if ARM_FEATURE not in names else f"{ARM_FEATURE}_{len(names)}"
        try:
            res = trainer.train(frame, _LABEL, [*enc.encoded_columns, _ARM_CODE], [*names, arm_name],
                                self._outcome_objective(), [*enc.categorical_indexes, len(names)], valid)
        finally:
            frame.unpersist()
        return {BOOSTER: res.model_str}

    def _propensity_spec(self, df, fingerprint, trainer, enc, frames):
        # The S-learner never weights by propensity: record the design only, never train a classifier.
        if self.getPropensity() == "estimate":
            spec = {"mode": "unused", "source": "not needed by the S-learner", "clip": float(self.getPropensityClip()),
                    "constant": {}, "columns": {}, "control_column": None}
            return spec, {}
        return super()._propensity_spec(df, fingerprint, trainer, enc, frames)


register_learner("s", SLearner, SLearnerModel)

__all__ = ["SLearner", "SLearnerModel"]
