"""R-learner (Nie & Wager 2021) for several treatment arms sharing one control.

Per arm k, on the rows of arms k and 0 (W = 1{arm = k}): cross-fitted m(x) = E[Y | x] and the
propensity e_k(x) (known from the design, or cross-fitted LightGBM classifiers, :mod:`.crossfit`);
then τ_k minimises the R-loss Σ ((Y − m) − (W − e)·τ(x))², i.e. a LightGBM regression of
(Y − m)/(W − e) on x with weights (W − e)². Why: residualising both Y and W removes the baseline
(m) from the effect fit, so the effect model spends its trees on what changes with treatment.
"""

from __future__ import annotations

from typing import Dict

from ..schemas import slug
from .base import _LABEL, _TREATED
from .crossfit import FOLD, PSEUDO, WEIGHT, CrossFittedLearner, TauModel, out_of_fold, propensity_of
from .frames import BINARY
from .registry import register_learner
from .scoring import score_boosters


class RLearnerModel(TauModel):
    """Fitted R-learner: one effect regressor ``tau_<slug(arm)>`` per treatment arm."""


def r_pseudo_outcome(y, w, m, e):
    """``(pseudo-outcome (Y − m)/(W − e), weight (W − e)²)`` (pure NumPy)."""
    r = w - e
    return (y - m) / r, r * r


class RLearner(CrossFittedLearner):
    """``RLearner(outcomeCol=..., treatmentArms=[...], featureCols=[...], foldCol="fold").fit(df)``
    → :class:`RLearnerModel`."""

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        objective = self._outcome_objective()
        prop = self._fit_state["propensity"]
        folds = list(self._folds)
        boosters: Dict[str, str] = {}
        for arm in self.getTreatmentArms():
            key = slug(arm)
            pair = self._pair_frame(frames, arm, trainer, _LABEL, objective)
            try:
                nuisance = self._fold_boosters(trainer, pair, _LABEL, objective, enc, f"m_{key}")
                if prop["mode"] == "cross_fitted":
                    nuisance.update(self._fold_boosters(trainer, pair, _TREATED, BINARY, enc, f"e_{key}"))

                def parts(preds, extra, n, _arm=arm, _key=key):
                    m = out_of_fold(preds, extra[FOLD], f"m_{_key}", folds)
                    e = propensity_of(prop, _arm, _key, preds, extra, n, folds)
                    return r_pseudo_outcome(extra[_LABEL], extra[_TREATED], m, e)

                outputs = {PSEUDO: lambda preds, extra, n, _p=parts: _p(preds, extra, n)[0],
                           WEIGHT: lambda preds, extra, n, _p=parts: _p(preds, extra, n)[1]}
                scored, bc = score_boosters(pair.df, enc.encoded_columns, nuisance, outputs,
                                            self._extra_scoring_columns(prop))
                try:
                    boosters[f"tau_{key}"] = self._fit_effect(trainer, scored, enc, self._pair_rows(arm), True)
                finally:
                    bc.unpersist()
            finally:
                pair.unpersist()
        return boosters


register_learner("r", RLearner, RLearnerModel)

__all__ = ["RLearner", "RLearnerModel", "r_pseudo_outcome"]
