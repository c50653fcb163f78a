"""Cross-fitting for the R- and DR-learners: nuisance models per fold, out-of-fold predictions on the
executors.

Why: the R- and DR-learners regress pseudo-outcomes built from nuisance predictions (μ, m, e). A
nuisance model scored on its own training rows overfits them and biases the pseudo-outcomes, so each
training row gets its nuisances from the models trained WITHOUT its fold (Chernozhukov et al. 2018).

* Folds are the split's ``fold`` column (customer-level, hash-based, stratified: ``split.n_folds``);
  without a fold column, a seeded hash of the row picks one of ``numFolds`` folds.
* For fold j, a nuisance booster is trained on the training rows of the other folds, with the
  ``valid`` rows for early stopping (``fold = -1``), through the ordinary trainer interface.
* Out-of-fold predictions come from the distributed pandas-UDF scorer: every batch scores the K
  boosters and keeps, per row, the one that excluded its fold. Validation rows (no fold) get the mean
  of the K boosters; they only steer the final model's early stopping, never its training rows.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence

import numpy as np

from ..errors import DataError, ModelError
from .base import _LABEL, _TREATED, _VALID, UpliftLearner
from .frames import BINARY
from .models import UpliftModel

FOLD = "__uplift_fold"
PSEUDO = "__uplift_pseudo"
WEIGHT = "__uplift_weight"
NO_FOLD = -1


def out_of_fold(preds, fold: np.ndarray, prefix: str, folds: Sequence[int]) -> np.ndarray:
    """Per row, booster ``<prefix>_f<j>`` for its fold j; rows outside the folds get the mean over folds
    (pure NumPy; ``preds(key)`` returns the batch prediction of booster ``key``)."""
    fold = np.asarray(fold)
    out = np.empty(len(fold), dtype=np.float64)
    inside = np.isin(fold, list(folds))
    for j in folds:
        rows = fold == j
        if rows.any():
            out[rows] = preds(f"{prefix}_f{j}")[rows]
    if (~inside).any():
        out[~inside] = np.mean([preds(f"{prefix}_f{j}")[~inside] for j in folds], axis=0)
    return out


def propensity_of(prop: Mapping, arm: str, key: str, preds, extra: Mapping[str, np.ndarray], n: int,
                  folds: Sequence[int]) -> np.ndarray:
    """e_k = P(arm k | x, arm ∈ {k, control}), clipped to [ε, 1 − ε]: cross-fitted boosters ``e_<key>_f<j>``,
    known per-arm columns (p_k / (p_k + p_0)) or the design constant."""
    mode = prop["mode"]
    if mode == "cross_fitted":
        e = out_of_fold(preds, extra[FOLD], f"e_{key}", folds)
    elif mode == "columns" and prop["columns"].get(arm) in extra and prop["control_column"] in extra:
        p_k, p_0 = extra[prop["columns"][arm]], extra[prop["control_column"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            e = p_k / (p_k + p_0)
        e = np.where(np.isfinite(e), e, float(prop["constant"][arm]))
    else:
        e = np.full(n, float(prop["constant"][arm]))
    clip = float(prop.get("clip", 0.0))
    return np.clip(e, clip, 1.0 - clip)


class TauModel(UpliftModel):
    """A fitted learner whose final stage is one effect regressor ``tau_<slug(arm)>`` per treatment arm
    (R, DR): nuisance models are training-time only and are not saved."""

    @classmethod
    def combine(cls, spec: Mapping, preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        return {arm: preds(f"tau_{key}") for arm, key in spec["arm_keys"].items()}


class CrossFittedLearner(UpliftLearner):
    """Fold checks, fold column and the nuisance plumbing shared by the R- and DR-learners."""

    # ---------------------------------------------------------------- checks and fold column
    def _fold_expr(self, df):
        from pyspark.sql import functions as F

        valid = self.getValidationCol()
        is_valid = F.coalesce(F.col(valid).cast("boolean"), F.lit(False)) if valid else F.lit(False)
        if self.getFoldCol():
            fold = F.coalesce(F.col(self.getFoldCol()).cast("int"), F.lit(NO_FOLD))
        else:
            cols = [self.getArmCol(), self.getOutcomeCol(), *self.getFeatureCols()]
            seed = int(self.getLightGBMConfig().seed)
            fold = F.pmod(F.xxhash64(F.lit(seed), *[F.col(c) for c in cols]), F.lit(int(self.getNumFolds()))).cast("int")
        return F.when(is_valid, F.lit(NO_FOLD)).otherwise(fold)

    def preflight(self, df) -> None:
        """Every fold × arm has at least ``minRowsPerArm`` training rows (one small aggregate)."""
        from pyspark.sql import functions as F

        super().preflight(df)
        fold_col = self.getFoldCol()
        if fold_col and fold_col not in df.columns:
            raise DataError(f"{self.learner}-learner: fold column {fold_col!r} is missing (have {sorted(df.columns)})")
        if not fold_col and self.getNumFolds() < 2:
            raise ModelError(f"{self.learner}-learner: numFolds={self.getNumFolds()}: cross-fitting needs at least 2")
        arms = [self.getControlArm(), *self.getTreatmentArms()]
        valid = self.getValidationCol()
        is_valid = F.coalesce(F.col(valid).cast("boolean"), F.lit(False)) if valid else F.lit(False)
        rows = (df.where(F.col(self.getArmCol()).cast("string").isin(arms))
                .select(F.col(self.getArmCol()).cast("string").alias("arm"), self._fold_expr(df).alias("fold"),
                        is_valid.alias("valid"))
                .groupBy("arm", "fold", "valid").count().collect())
        counts: Dict[tuple, int] = {}
        no_fold = 0
        for r in rows:
            if r["valid"]:
                continue
            if int(r["fold"]) < 0:
                no_fold += int(r["count"])
            counts[(r["arm"], int(r["fold"]))] = int(r["count"])
        folds = sorted({f for _, f in counts if f >= 0})
        source = f"column {fold_col!r}" if fold_col else "the hash folds"
        if no_fold:
            raise ModelError(f"{self.learner}-learner: {no_fold} training rows have no fold (< 0) in {source}: "
                             "set split.n_folds >= 2")
        if len(folds) < 2:
            raise ModelError(f"{self.learner}-learner: {source} holds {len(folds)} fold(s) of training rows; "
                             "cross-fitting needs at least 2 (split.n_folds)")
        minimum = int(self.getMinRowsPerArm())
        for j in folds:
            for arm in arms:
                n = counts.get((arm, j), 0)
                if n < minimum:
                    raise ModelError(f"{self.learner}-learner: fold {j}, arm {arm!r}: {n} training rows, "
                                     f"below split.min_rows_per_arm={minimum}")
        self._folds = folds

    def _extra_training_exprs(self, df) -> list:
        from pyspark.sql import functions as F

        from .propensity import propensity_columns

        exprs = [self._fold_expr(df).alias(FOLD)]
        if self.getPropensity() == "known":
            cols = propensity_columns(self.getPropensityPrefix() or None,
                                      [self.getControlArm(), *self.getTreatmentArms()])
            if cols and all(c in df.columns for c in cols.values()):
                exprs += [F.col(c).cast("double").alias(c) for c in cols.values()]
        return exprs

    def _propensity_spec(self, df, fingerprint, trainer, enc, frames):
        if self.getPropensity() == "estimate":  # cross-fitted inside _train_boosters, not saved
            spec = {"mode": "cross_fitted", "source": f"lightgbm, {len(self._folds)} folds",
                    "clip": float(self.getPropensityClip()), "constant": {}, "columns": {},
                    "control_column": None}
            return spec, {}
        return super()._propensity_spec(df, fingerprint, trainer, enc, frames)

    def _training_extra(self) -> dict:
        return {"cross_fitting": {"folds": list(self._folds), "fold_col": self.getFoldCol() or None}}

    # ---------------------------------------------------------------- nuisance plumbing
    def _extra_scoring_columns(self, prop: Mapping) -> list:
        cols = [FOLD, _TREATED, _LABEL]
        if prop.get("mode") == "columns":
            cols += list(prop["columns"].values()) + [prop["control_column"]]
        return cols

    def _fold_boosters(self, trainer, frame, label: str, objective: str, enc, prefix: str,
                       where=None) -> Dict[str, str]:
        """``{<prefix>_f<j>: LightGBM text}``: one booster per fold j on the training rows outside fold j
        (plus the validation rows for early stopping) of ``frame``, optionally restricted by ``where``."""
        from pyspark.sql import functions as F

        valid = _VALID if self.getValidationCol() else None
        out = {}
        for j in self._folds:
            cond = F.col(FOLD) != F.lit(j)
            if where is not None:
                cond = cond & where
            res = trainer.train(frame.derive(frame.df.where(cond)), label, enc.encoded_columns, enc.booster_names,
                                objective, enc.categorical_indexes, valid)
            out[f"{prefix}_f{j}"] = res.model_str
        return out

    def _pair_df(self, frames, arm: str):
        """Rows of ``arm`` (W = 1) and control (W = 0): a union of the two cached arm frames."""
        from pyspark.sql import functions as F

        return frames[arm].df.withColumn(_TREATED, F.lit(1.0)).unionByName(
            frames[self.getControlArm()].df.withColumn(_TREATED, F.lit(0.0)))

    def _pair_rows(self, arm: str) -> int:
        fp = self._fit_state["fingerprint"]
        return self._train_rows(fp, arm) + self._train_rows(fp, self.getControlArm())

    def _pair_frame(self, frames, arm: str, trainer, label: str, objective: str):
        """:meth:`_pair_df` as one TrainingFrame (one shuffle, cached) for nuisance boosters on both arms."""
        control = self.getControlArm()
        fp = self._fit_state["fingerprint"]
        pair = self._pair_df(frames, arm)
        if label == _TREATED:
            counts = {1.0: self._train_rows(fp, arm), 0.0: self._train_rows(fp, control)}
        elif objective == BINARY:
            a, c = self._class_counts(fp, arm), self._class_counts(fp, control)
            counts = {k: a.get(k, 0) + c.get(k, 0) for k in (0.0, 1.0)}
        else:
            counts = {"rows": self._train_rows(fp, arm) + self._train_rows(fp, control)}
        valid = _VALID if self.getValidationCol() else None
        return trainer.prepare(pair, label, objective, valid, counts)

    def _fit_effect(self, trainer, scored_df, enc, n_rows: int, weighted: bool) -> str:
        """The final regressor of the pseudo-outcome on x (weights for the R-learner)."""
        from .frames import REGRESSION

        valid = _VALID if self.getValidationCol() else None
        cols = [*enc.encoded_columns, PSEUDO, *([WEIGHT] if weighted else []), _VALID]
        frame = trainer.prepare(scored_df.select(*cols), PSEUDO, REGRESSION, valid, {"rows": n_rows})
        try:
            res = trainer.train(frame, PSEUDO, enc.encoded_columns, enc.booster_names, REGRESSION,
                                enc.categorical_indexes, valid, weight_col=WEIGHT if weighted else None)
        finally:
            frame.unpersist()
        return res.model_str


__all__ = ["CrossFittedLearner", "TauModel", "out_of_fold", "propensity_of", "FOLD", "PSEUDO", "WEIGHT",
           "NO_FOLD"]
