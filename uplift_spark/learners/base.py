"""The estimator side shared by every learner: :class:`UpliftLearner` (a pyspark.ml ``Estimator``).

A learner fits LightGBM boosters on Spark (through a trainer backend, :mod:`.trainers`) and returns
its own Model class (a subclass of :class:`~uplift_spark.learners.models.UpliftModel`, looked up in
:mod:`.registry`). Estimators save their Params (``write().save(path)``, ``TLearner.load(path)``).
"""

from __future__ import annotations

import json
import time
from typing import Dict, Optional, Sequence

from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.util import MLReadable, MLWritable

from ..config import DataConfig, LightGBMConfig, ModelConfig
from ..errors import DataError, ModelError
from ..logs import get_logger
from ..schemas import require_columns, slug
from .features import FeatureEncoding, fit_encoding
from .params import UpliftParams
from .persistence import FolderReader, FolderWriter, write_folder
from .registry import model_class
from .frames import BINARY, REGRESSION
from .trainer_base import BoosterSpec
from .trainers import make_trainer

log = get_logger("learners")

_LABEL = "__uplift_label"
_ARM = "__uplift_arm"
_VALID = "__uplift_valid"
_TREATED = "__uplift_is_treated"


class UpliftLearner(Estimator, UpliftParams, MLWritable, MLReadable):
    """Common fit logic of every learner; a subclass decides which boosters to train
    (:meth:`_train_boosters`) and registers its Model class (``registry.register_learner``), which
    ``fit`` returns."""

    learner = "abstract"

    @keyword_only
    def __init__(self, *, outcomeCol=None, outcomeType=None, armCol=None, controlArm=None, treatmentArms=None,
                 featureCols=None, categoricalCols=None, validationCol=None, backend=None, lightgbmParams=None,
                 propensity=None, propensityClip=None, propensityPrefix=None, allocation=None,
                 maxCategories=None, distribution=None, perTaskMaxBytes=None, foldCol=None, numFolds=None,
                 minRowsPerArm=None,
                 lightgbm: Optional[LightGBMConfig] = None):
        super().__init__()
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None and k != "lightgbm"}
        self._set(**kwargs)
        if lightgbm is not None:
            self.setLightGBMConfig(lightgbm)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig, outcome: Optional[str] = None,
                    validation_col: str = "", treatment_arms: Sequence[str] = (), fold_col: str = "",
                    min_rows_per_arm: Optional[int] = None) -> "UpliftLearner":
        """A learner for one outcome from the typed ``data`` and ``model`` config sections
        (``fold_col``/``min_rows_per_arm``: the split's folds, read by cross-fitted learners only)."""
        name = outcome or data.main_outcome
        spec = data.outcome(name)
        return cls(
            outcomeCol=name, outcomeType=spec.type, armCol=data.arm, controlArm=data.control_arm,
            treatmentArms=list(treatment_arms or data.treatment_arms), featureCols=list(data.features),
            categoricalCols=list(data.categorical_features), validationCol=validation_col or "",
            backend=model.backend, propensity=model.propensity, propensityClip=model.propensity_clip,
            propensityPrefix=data.propensity or "", allocation=json.dumps(dict(data.allocation)) if data.allocation else "",
            lightgbm=model.lightgbm, distribution=model.distribution, perTaskMaxBytes=model.per_task_max_bytes,
            foldCol=fold_col or "",
            minRowsPerArm=int(min_rows_per_arm) if min_rows_per_arm is not None else None,
        )

    def preflight(self, df) -> None:
        """Input checks that need no training (cheap); the train stage runs it for every learner before
        fitting any, so a bad input fails before a model is written."""
        self._check_input(df)

    def _extra_training_exprs(self, df) -> list:
        """Extra columns carried in every arm's cached training frame (none by default; cross-fitted
        learners carry their fold and known propensity columns)."""
        return []

    # -------------------------------------------------------------------- helpers
    def _check_input(self, df) -> None:
        need = [self.getOutcomeCol(), self.getArmCol(), *self.getFeatureCols()]
        if self.getValidationCol():
            need.append(self.getValidationCol())
        require_columns(df, need, f"{self.learner}-learner")
        if not self.getTreatmentArms():
            raise ModelError(f"{self.learner}-learner: no treatment arms given")
        if self.getOutcomeType() not in ("binary", "continuous"):
            raise ModelError(f"outcomeType {self.getOutcomeType()!r} is not binary or continuous")
        if self.getPropensity() not in ("known", "estimate"):
            raise ModelError(f"propensity {self.getPropensity()!r} is not known or estimate")
        arms = [self.getControlArm(), *self.getTreatmentArms()]
        slugs = [slug(a) for a in arms]
        if len(set(slugs)) != len(slugs):
            raise ModelError(f"arms {arms} collide after slugging ({slugs}): uplift columns would clash")

    def _fingerprint(self, df) -> dict:
        """Rows, outcome sums and validation rows per arm (one small aggregate) plus the input schema."""
        from pyspark.sql import functions as F

        valid = self.getValidationCol()
        y = F.col(self.getOutcomeCol()).cast("double")
        is_train = ~F.coalesce(F.col(valid).cast("boolean"), F.lit(False)) if valid else F.lit(True)
        rows = (
            df.groupBy(F.col(self.getArmCol()).cast("string").alias("arm"))
            .agg(F.count(F.lit(1)).alias("rows"),
                 F.sum(y).alias("outcome_sum"),
                 F.sum(F.col(self.getOutcomeCol()).isNull().cast("long")).alias("outcome_nulls"),
                 (F.sum(F.col(valid).cast("long")) if valid else F.lit(0)).alias("valid_rows"),
                 # training-row class counts of every booster of the fit, so no booster counts again
                 F.sum(F.when(is_train, y)).alias("train_outcome_sum"),
                 F.sum((is_train & y.isNotNull() & ~y.isin(0.0, 1.0)).cast("long")).alias("train_non_binary"))
            .collect()
        )
        per_arm = {r["arm"]: {"rows": int(r["rows"]), "outcome_sum": float(r["outcome_sum"] or 0.0),
                              "outcome_nulls": int(r["outcome_nulls"]), "valid_rows": int(r["valid_rows"] or 0),
                              "train_outcome_sum": float(r["train_outcome_sum"] or 0.0),
                              "train_non_binary": int(r["train_non_binary"] or 0)}
                   for r in rows}
        for arm in [self.getControlArm(), *self.getTreatmentArms()]:
            stats = per_arm.get(arm)
            if not stats or stats["rows"] - stats["valid_rows"] <= 0:
                raise ModelError(f"{self.learner}-learner: arm {arm!r} has no training rows in "
                                 f"column {self.getArmCol()!r} (arms present: {sorted(per_arm)})")
            if stats["outcome_nulls"]:
                raise DataError(f"outcome {self.getOutcomeCol()!r} has {stats['outcome_nulls']} nulls in arm {arm!r}")
        return {"per_arm": per_arm, "schema": [[f.name, f.dataType.simpleString()] for f in df.schema.fields]}

    def _propensity_spec(self, df, fingerprint: dict, trainer, enc: FeatureEncoding, frames) -> tuple:
        from .propensity import column_propensity_means, known_propensity, propensity_columns

        control, treatments = self.getControlArm(), list(self.getTreatmentArms())
        clip = float(self.getPropensityClip())
        boosters: Dict[str, str] = {}
        if self.getPropensity() == "estimate":
            from pyspark.sql import functions as F

            valid = _VALID if self.getValidationCol() else None
            for arm in treatments:
                treated = frames[arm].df.withColumn(_TREATED, F.lit(1.0))
                sub = treated.unionByName(frames[control].df.withColumn(_TREATED, F.lit(0.0)))
                counts = {1.0: self._train_rows(fingerprint, arm), 0.0: self._train_rows(fingerprint, control)}
                frame = trainer.prepare(sub, _TREATED, BINARY, valid, counts)
                try:
                    res = trainer.train(frame, _TREATED, enc.encoded_columns, enc.booster_names, BINARY,
                                        enc.categorical_indexes, valid)
                finally:
                    frame.unpersist()
                boosters[f"prop_{slug(arm)}"] = res.model_str
            spec = {"mode": "estimate", "source": "lightgbm", "clip": clip, "constant": {}, "columns": {},
                    "control_column": None}
            return spec, boosters
        rows = {a: s["rows"] for a, s in fingerprint["per_arm"].items()}
        allocation = json.loads(self.getAllocation()) if self.getAllocation() else {}
        prefix = self.getPropensityPrefix() or None
        means = None
        cols = propensity_columns(prefix, [control, *treatments])
        if cols and all(c in df.columns for c in cols.values()):
            means = column_propensity_means(df, control, treatments, prefix)
        return known_propensity(df.columns, control, treatments, rows, allocation, prefix, clip, means), boosters

    def _fit(self, dataset):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        started = time.perf_counter()
        self.preflight(dataset)
        arms = [self.getControlArm(), *self.getTreatmentArms()]
        df = dataset.where(F.col(self.getArmCol()).cast("string").isin(arms))
        valid = self.getValidationCol()
        fingerprint = self._fingerprint(df)
        train_rows = df.where(~F.col(valid).cast("boolean")) if valid else df
        enc = fit_encoding(train_rows, self.getFeatureCols(), self.getCategoricalCols(), self.getMaxCategories())
        cfg = self.getLightGBMConfig()
        trainer = make_trainer(dataset.sparkSession, cfg, self.getBackend(), self.getDistribution(),
                               self.getPerTaskMaxBytes())
        # Encoded once here; each arm's rows are then partitioned for the tasks and cached ONCE, and every
        # booster of that arm (and SynapseML's own passes over its input) reads that cache.
        data = df.select(
            F.col(self.getArmCol()).cast("string").alias(_ARM),
            *enc.encoded_exprs(df),
            F.col(self.getOutcomeCol()).cast("double").alias(_LABEL),
            (F.coalesce(F.col(valid).cast("boolean"), F.lit(False)) if valid else F.lit(False)).alias(_VALID),
            *self._extra_training_exprs(df),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        frames: Dict[str, object] = {}
        try:
            try:
                for arm in arms:
                    frames[arm] = trainer.prepare(
                        data.where(F.col(_ARM) == arm).drop(_ARM), _LABEL, self._outcome_objective(),
                        _VALID if valid else None, self._class_counts(fingerprint, arm))
            finally:
                data.unpersist()
            # propensity first: cross-fitted learners read the known propensity while training
            propensity, prop_boosters = self._propensity_spec(df, fingerprint, trainer, enc, frames)
            self._fit_state = {"fingerprint": fingerprint, "propensity": propensity}
            try:
                boosters = self._train_boosters(frames, enc, trainer)
            finally:
                self._fit_state = {}
            boosters.update(prop_boosters)
        finally:
            for frame in frames.values():
                frame.unpersist()
        model = model_class(self.learner)(
            outcome=self.getOutcomeCol(), outcome_type=self.getOutcomeType(),
            control_arm=self.getControlArm(), treatment_arms=list(self.getTreatmentArms()), encoding=enc,
            boosters=boosters, propensity=propensity,
            training={"fingerprint": fingerprint, "backend": _backends(trainer, boosters),
                      "distribution": self.getDistribution(), "boosters": _how_trained(trainer, boosters),
                      "tasks": {arm: f.n_tasks for arm, f in frames.items()},
                      "repartitioned": {arm: f.repartitioned for arm, f in frames.items()},
                      "seconds": round(time.perf_counter() - started, 2), **self._training_extra()},
            params=self.paramValues(),
        )
        log.info("%s-learner on %r fitted: %d boosters with %s in %.1fs", self.learner, self.getOutcomeCol(),
                 len(boosters), model.training["backend"], time.perf_counter() - started)
        return model

    def _training_extra(self) -> dict:
        """Learner-specific training facts recorded with the model (e.g. cross-fitting folds)."""
        return {}

    def _train_rows(self, fingerprint: dict, arm: str) -> int:
        stats = fingerprint["per_arm"][arm]
        return stats["rows"] - stats["valid_rows"]

    def _class_counts(self, fingerprint: dict, arm: str) -> Dict[object, int]:
        """Training-row counts per class of ``arm`` from the fingerprint (no extra Spark job)."""
        stats = fingerprint["per_arm"][arm]
        n = self._train_rows(fingerprint, arm)
        if self._outcome_objective() != BINARY:
            return {"rows": n}
        if stats["train_non_binary"]:
            raise ModelError(f"binary outcome {self.getOutcomeCol()!r} has {stats['train_non_binary']} values "
                             f"other than 0/1 in arm {arm!r}: declare the outcome continuous")
        pos = int(round(stats["train_outcome_sum"]))
        return {k: v for k, v in ((1.0, pos), (0.0, n - pos)) if v > 0}

    def _outcome_objective(self) -> str:
        return BINARY if self.getOutcomeType() == "binary" else REGRESSION

    def _fit_outcome_models(self, frames, enc, trainer) -> Dict[str, str]:
        """μ_a for every arm; the control model is trained once and shared by all treatment arms."""
        valid = _VALID if self.getValidationCol() else None
        arms = [self.getControlArm(), *self.getTreatmentArms()]
        # independent boosters: a per-task trainer trains them side by side in one Spark job
        results = trainer.train_many([
            BoosterSpec(frames[arm], _LABEL, enc.encoded_columns, enc.booster_names, self._outcome_objective(),
                        enc.categorical_indexes, valid) for arm in arms])
        return {f"mu_{slug(arm)}": res.model_str for arm, res in zip(arms, results)}

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        """Boosters ``{key: LightGBM text}`` from per-arm :class:`~uplift_spark.learners.frames.TrainingFrame` s
        (cached); keys are what the Model's ``combine`` reads (``mu_<slug(arm)>``, ...)."""
        raise NotImplementedError

    # -------------------------------------------------------------------- persistence (params only)
    def write(self) -> FolderWriter:
        return FolderWriter(self)

    @classmethod
    def read(cls) -> FolderReader:
        return FolderReader(cls)

    def _save_folder(self, path: str, overwrite: bool) -> str:
        meta = {"kind": "estimator", "class": type(self).__name__, "learner": self.learner, "uid": self.uid,
                "params": {p.name: v for p, v in self._paramMap.items()}}
        return write_folder(path, meta, {}, overwrite)

    @classmethod
    def _from_folder(cls, path: str, meta: dict, texts) -> "UpliftLearner":
        from .registry import learner_class

        if meta.get("kind") != "estimator":
            raise ModelError(f"folder {path} holds a {meta.get('kind', 'model')!r}, not a saved learner")
        target = learner_class(meta.get("learner"))
        if cls is not UpliftLearner and not issubclass(target, cls):
            raise ModelError(f"folder {path} holds a {target.__name__}, not a {cls.__name__}")
        est = target()
        unknown = sorted(set(meta.get("params") or {}) - set(cls.PARAM_NAMES))
        if unknown:
            raise ModelError(f"folder {path}: unknown learner param {unknown[0]!r}")
        est._set(**(meta.get("params") or {}))
        if meta.get("uid"):
            est._resetUid(meta["uid"])
        return est


def _how_trained(trainer, boosters: Dict[str, str]) -> Dict[str, dict]:
    """Per booster key: strategy (per_task/distributed), backend, tasks, best iteration."""
    out = {}
    for key, text in boosters.items():
        res = trainer.how_trained(text)
        if res is not None:
            out[key] = {"strategy": res.strategy, "backend": res.backend, "tasks": res.num_tasks,
                        "best_iteration": res.best_iteration}
    return out


def _backends(trainer, boosters: Dict[str, str]) -> str:
    """The backend(s) that trained ``boosters`` ("per_task", "synapseml", "barrier", or "a+b")."""
    used = sorted({b["backend"] for b in _how_trained(trainer, boosters).values()})
    return "+".join(used) if used else trainer.backend


_UpliftLearner = UpliftLearner

__all__ = ["UpliftLearner"]
