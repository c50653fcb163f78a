"""DR-learner (Kennedy 2023) for several treatment arms sharing one control.

Cross-fitted nuisances (:mod:`.crossfit`): outcome models μ_a(x) per arm (μ_0 shared by all arms) and
the propensity e_k(x) of arm k versus control (known from the design, or cross-fitted LightGBM
classifiers). On the rows of arms k and 0 the AIPW pseudo-outcome

    φ_k = μ_k − μ_0 + 1{W=k}(Y − μ_k)/e_k − 1{W=0}(Y − μ_0)/(1 − e_k)

is regressed on x with a LightGBM regressor τ_k. Why: φ_k is unbiased for τ_k(x) if either the
outcome models or the propensity are right, and its regression borrows strength from both arms —
the reason it does well when an arm is small.
"""

from __future__ import annotations

from typing import Dict

from ..schemas import slug
from .base import _LABEL, _TREATED
from .crossfit import FOLD, PSEUDO, CrossFittedLearner, TauModel, out_of_fold, propensity_of
from .frames import BINARY
from .registry import register_learner
from .scoring import score_boosters


class DRLearnerModel(TauModel):
    """Fitted DR-learner: one effect regressor ``tau_<slug(arm)>`` per treatment arm."""


def dr_pseudo_outcome(y, w, mu_k, mu_0, e):
    """φ = μ_k − μ_0 + W(Y − μ_k)/e − (1 − W)(Y − μ_0)/(1 − e) (pure NumPy, W ∈ {0, 1})."""
    return mu_k - mu_0 + w * (y - mu_k) / e - (1.0 - w) * (y - mu_0) / (1.0 - e)


class DRLearner(CrossFittedLearner):
    """``DRLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...], foldCol="fold").fit(df)``
    → :class:`DRLearnerModel`."""

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        control = self.getControlArm()
        ckey = slug(control)
        objective = self._outcome_objective()
        prop = self._fit_state["propensity"]
        folds = list(self._folds)
        nuisance: Dict[str, str] = {}
        for arm in [control, *self.getTreatmentArms()]:
            nuisance.update(self._fold_boosters(trainer, frames[arm], _LABEL, objective, enc, f"mu_{slug(arm)}"))
        boosters: Dict[str, str] = {}
        for arm in self.getTreatmentArms():
            key = slug(arm)
            pair = None
            if prop["mode"] == "cross_fitted":
                pair = self._pair_frame(frames, arm, trainer, _TREATED, BINARY)
                nuisance.update(self._fold_boosters(trainer, pair, _TREATED, BINARY, enc, f"e_{key}"))
            try:
                needed = {f"{p}_f{j}": nuisance[f"{p}_f{j}"] for j in folds
                          for p in (f"mu_{key}", f"mu_{ckey}", *([f"e_{key}"] if pair is not None else []))}

                def phi(preds, extra, n, _arm=arm, _key=key):
                    mu_k = out_of_fold(preds, extra[FOLD], f"mu_{_key}", folds)
                    mu_0 = out_of_fold(preds, extra[FOLD], f"mu_{ckey}", folds)
                    e = propensity_of(prop, _arm, _key, preds, extra, n, folds)
                    return dr_pseudo_outcome(extra[_LABEL], extra[_TREATED], mu_k, mu_0, e)

                source = pair.df if pair is not None else self._pair_df(frames, arm)
                scored, bc = score_boosters(source, enc.encoded_columns, needed, {PSEUDO: phi},
                                            self._extra_scoring_columns(prop))
                try:
                    boosters[f"tau_{key}"] = self._fit_effect(trainer, scored, enc, self._pair_rows(arm), False)
                finally:
                    bc.unpersist()
            finally:
                if pair is not None:
                    pair.unpersist()
        return boosters


register_learner("dr", DRLearner, DRLearnerModel)

__all__ = ["DRLearner", "DRLearnerModel", "dr_pseudo_outcome"]
