"""pyspark.ml-style uplift estimators (Params with getters/setters) and the fitted :class:`UpliftModel`.

A learner fits LightGBM boosters on Spark (SynapseML or the barrier trainer) and returns an
``UpliftModel`` whose ``transform`` adds one double column ``uplift_<slug(arm)>`` per treatment arm.
Boosters are kept as LightGBM model text, so a model saves as text + JSON and scores anywhere PyPI
``lightgbm`` runs.
"""

from __future__ import annotations

import json
import time
from typing import Dict, List, Mapping, Optional, Sequence

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters

from ..config import DataConfig, LightGBMConfig, ModelConfig, config_from_dict, to_dict
from ..errors import DataError, ModelError
from ..logs import get_logger
from ..schemas import slug, uplift_column
from .features import FeatureEncoding, fit_encoding
from .scoring import combine_uplift, score_boosters
from .frames import BINARY, REGRESSION
from .trainers import make_trainer

log = get_logger("learners")

_LABEL = "__uplift_label"
_ARM = "__uplift_arm"
_VALID = "__uplift_valid"
_TREATED = "__uplift_is_treated"


def _cap(name: str) -> str:
    return name[0].upper() + name[1:]


class _UpliftParams(Params):
    """Shared Params of the T- and X-learner (names follow pyspark.ml conventions)."""

    outcomeCol = Param(Params._dummy(), "outcomeCol", "outcome column (binary 0/1 or continuous)",
                       typeConverter=TypeConverters.toString)
    outcomeType = Param(Params._dummy(), "outcomeType", "binary (classifier) or continuous (regressor)",
                        typeConverter=TypeConverters.toString)
    armCol = Param(Params._dummy(), "armCol", "column holding the assigned arm", typeConverter=TypeConverters.toString)
    controlArm = Param(Params._dummy(), "controlArm", "the control arm", typeConverter=TypeConverters.toString)
    treatmentArms = Param(Params._dummy(), "treatmentArms", "treatment arms (one uplift column each)",
                          typeConverter=TypeConverters.toListString)
    featureCols = Param(Params._dummy(), "featureCols", "feature columns", typeConverter=TypeConverters.toListString)
    categoricalCols = Param(Params._dummy(), "categoricalCols", "categorical feature columns",
                            typeConverter=TypeConverters.toListString)
    validationCol = Param(Params._dummy(), "validationCol",
                          "boolean column: true rows are the early-stopping validation set ('' = none)",
                          typeConverter=TypeConverters.toString)
    backend = Param(Params._dummy(), "backend", "auto, synapseml or barrier", typeConverter=TypeConverters.toString)
    lightgbmParams = Param(Params._dummy(), "lightgbmParams", "LightGBMConfig as a JSON string",
                           typeConverter=TypeConverters.toString)
    propensity = Param(Params._dummy(), "propensity", "known or estimate", typeConverter=TypeConverters.toString)
    propensityClip = Param(Params._dummy(), "propensityClip", "clip propensities to [eps, 1-eps]",
                           typeConverter=TypeConverters.toFloat)
    propensityPrefix = Param(Params._dummy(), "propensityPrefix",
                             "known propensity columns are <prefix>_<slug(arm)> ('' = none)",
                             typeConverter=TypeConverters.toString)
    allocation = Param(Params._dummy(), "allocation", "design allocation per arm as a JSON object ('' = none)",
                       typeConverter=TypeConverters.toString)
    maxCategories = Param(Params._dummy(), "maxCategories", "codes kept per categorical feature",
                          typeConverter=TypeConverters.toInt)

    _PARAM_NAMES = ("outcomeCol", "outcomeType", "armCol", "controlArm", "treatmentArms", "featureCols",
                    "categoricalCols", "validationCol", "backend", "lightgbmParams", "propensity",
                    "propensityClip", "propensityPrefix", "allocation", "maxCategories")

    def __init__(self):
        super().__init__()
        self._setDefault(outcomeCol="conversion", outcomeType="binary", armCol="arm", controlArm="control",
                         treatmentArms=[], featureCols=[], categoricalCols=[], validationCol="", backend="auto",
                         lightgbmParams=json.dumps(to_dict(LightGBMConfig())), propensity="known",
                         propensityClip=0.01, propensityPrefix="", allocation="", maxCategories=200)

    def getLightGBMConfig(self) -> LightGBMConfig:
        raw = json.loads(self.getOrDefault(self.lightgbmParams))
        return config_from_dict({"model": {"lightgbm": raw}}).model.lightgbm

    def setLightGBMConfig(self, cfg: LightGBMConfig):
        return self._set(lightgbmParams=json.dumps(to_dict(cfg)))


def _add_accessors(cls):
    for name in _UpliftParams._PARAM_NAMES:
        def getter(self, _n=name):
            return self.getOrDefault(getattr(self, _n))

        def setter(self, value, _n=name):
            return self._set(**{_n: value})

        getter.__doc__ = f"Gets the value of {name} or its default value."
        setter.__doc__ = f"Sets the value of :py:attr:`{name}`."
        setattr(cls, "get" + _cap(name), getter)
        setattr(cls, "set" + _cap(name), setter)
    return cls


_add_accessors(_UpliftParams)


class _UpliftLearner(Estimator, _UpliftParams):
    """Common fit logic; subclasses decide which boosters to train."""

    learner = "abstract"

    @keyword_only
    def __init__(self, *, outcomeCol=None, outcomeType=None, armCol=None, controlArm=None, treatmentArms=None,
                 featureCols=None, categoricalCols=None, validationCol=None, backend=None, lightgbmParams=None,
                 propensity=None, propensityClip=None, propensityPrefix=None, allocation=None,
                 maxCategories=None, lightgbm: Optional[LightGBMConfig] = None):
        super().__init__()
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None and k != "lightgbm"}
        self._set(**kwargs)
        if lightgbm is not None:
            self.setLightGBMConfig(lightgbm)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig, outcome: Optional[str] = None,
                    validation_col: str = "", treatment_arms: Sequence[str] = ()) -> "_UpliftLearner":
        """A learner for one outcome from the typed ``data`` and ``model`` config sections."""
        name = outcome or data.main_outcome
        spec = data.outcome(name)
        return cls(
            outcomeCol=name, outcomeType=spec.type, armCol=data.arm, controlArm=data.control_arm,
            treatmentArms=list(treatment_arms or data.treatment_arms), featureCols=list(data.features),
            categoricalCols=list(data.categorical_features), validationCol=validation_col or "",
            backend=model.backend, propensity=model.propensity, propensityClip=model.propensity_clip,
            propensityPrefix=data.propensity or "", allocation=json.dumps(dict(data.allocation)) if data.allocation else "",
            lightgbm=model.lightgbm,
        )

    # -------------------------------------------------------------------- helpers
    def _check_input(self, df) -> None:
        need = [self.getOutcomeCol(), self.getArmCol(), *self.getFeatureCols()]
        if self.getValidationCol():
            need.append(self.getValidationCol())
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"{self.learner}-learner: column {missing[0]!r} is missing (have {sorted(df.columns)})")
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
        self._check_input(dataset)
        arms = [self.getControlArm(), *self.getTreatmentArms()]
        df = dataset.where(F.col(self.getArmCol()).cast("string").isin(arms))
        valid = self.getValidationCol()
        fingerprint = self._fingerprint(df)
        train_rows = df.where(~F.col(valid).cast("boolean")) if valid else df
        enc = fit_encoding(train_rows, self.getFeatureCols(), self.getCategoricalCols(), self.getMaxCategories())
        cfg = self.getLightGBMConfig()
        trainer = make_trainer(dataset.sparkSession, cfg, self.getBackend())
        # Encoded once here; each arm's rows are then partitioned for the tasks and cached ONCE, and every
        # booster of that arm (and SynapseML's own passes over its input) reads that cache.
        data = df.select(
            F.col(self.getArmCol()).cast("string").alias(_ARM),
            *enc.encoded_exprs(df),
            F.col(self.getOutcomeCol()).cast("double").alias(_LABEL),
            (F.coalesce(F.col(valid).cast("boolean"), F.lit(False)) if valid else F.lit(False)).alias(_VALID),
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
            boosters = self._train_boosters(frames, enc, trainer)
            propensity, prop_boosters = self._propensity_spec(df, fingerprint, trainer, enc, frames)
            boosters.update(prop_boosters)
        finally:
            for frame in frames.values():
                frame.unpersist()
        model = UpliftModel(
            learner=self.learner, outcome=self.getOutcomeCol(), outcome_type=self.getOutcomeType(),
            control_arm=self.getControlArm(), treatment_arms=list(self.getTreatmentArms()), encoding=enc,
            boosters=boosters, propensity=propensity,
            training={"fingerprint": fingerprint, "backend": trainer.backend,
                      "tasks": {arm: f.n_tasks for arm, f in frames.items()},
                      "repartitioned": {arm: f.repartitioned for arm, f in frames.items()},
                      "seconds": round(time.perf_counter() - started, 2)},
            params={n: self.getOrDefault(getattr(self, n)) for n in self._PARAM_NAMES},
        )
        log.info("%s-learner on %r fitted: %d boosters with %s in %.1fs", self.learner, self.getOutcomeCol(),
                 len(boosters), trainer.backend, time.perf_counter() - started)
        return model

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
        boosters = {}
        valid = _VALID if self.getValidationCol() else None
        for arm in [self.getControlArm(), *self.getTreatmentArms()]:
            res = trainer.train(frames[arm], _LABEL, enc.encoded_columns, enc.booster_names,
                                self._outcome_objective(), enc.categorical_indexes, valid)
            boosters[f"mu_{slug(arm)}"] = res.model_str
        return boosters

    def _train_boosters(self, frames, enc, trainer) -> Dict[str, str]:
        """Boosters from per-arm :class:`~uplift_spark.learners.trainers.TrainingFrame` s (cached)."""
        raise NotImplementedError


class UpliftModel(Model):
    """A fitted T- or X-learner: boosters as LightGBM text, feature encoding, propensity settings."""

    def __init__(self, learner: str, outcome: str, outcome_type: str, control_arm: str,
                 treatment_arms: List[str], encoding: FeatureEncoding, boosters: Mapping[str, str],
                 propensity: Mapping, training: Optional[Mapping] = None, params: Optional[Mapping] = None):
        super().__init__()
        self.learner = learner
        self.outcome = outcome
        self.outcome_type = outcome_type
        self.control_arm = control_arm
        self.treatment_arms = list(treatment_arms)
        self.encoding = encoding
        self.boosters = dict(boosters)
        self.propensity = dict(propensity)
        self.training = dict(training or {})
        self.learner_params = dict(params or {})

    @property
    def features(self) -> List[str]:
        return list(self.encoding.features)

    @property
    def uplift_columns(self) -> Dict[str, str]:
        return {arm: uplift_column(arm) for arm in self.treatment_arms}

    def spec(self) -> dict:
        """What the scoring function needs (JSON-able; also written into metadata.json)."""
        return {
            "learner": self.learner, "control_key": slug(self.control_arm),
            "arm_keys": {arm: slug(arm) for arm in self.treatment_arms}, "propensity": self.propensity,
        }

    def _extra_columns(self, df) -> List[str]:
        p = self.propensity
        if self.learner == "x" and p.get("mode") == "columns":
            cols = list(p["columns"].values()) + [p["control_column"]]
            if all(c in df.columns for c in cols):
                return cols
        return []

    def _transform(self, dataset):
        spec = self.spec()
        extra = self._extra_columns(dataset)
        enc_cols = self.encoding.encoded_columns
        with_enc = dataset.select("*", *self.encoding.encoded_exprs(dataset))
        outputs = {}
        for arm, col in self.uplift_columns.items():
            def build(preds, extra_arrays, n, _arm=arm):
                return combine_uplift(spec, preds, extra_arrays, n)[_arm]
            outputs[col] = build
        for col in outputs:
            if col in dataset.columns:
                raise DataError(f"input already has a column {col!r}: drop it before scoring")
        scored, _ = score_boosters(with_enc, enc_cols, self.boosters, outputs, extra)
        return scored.drop(*enc_cols)

    def predict_arrays(self, x) -> Dict[str, "object"]:
        """Uplift per arm for an already encoded numpy matrix (driver-side checks and small references)."""
        import numpy as np

        from .scoring import predict_matrix

        memo = {}

        def preds(key):
            if key not in memo:
                memo[key] = predict_matrix(self.boosters[key], np.asarray(x, dtype=np.float64))
            return memo[key]

        return combine_uplift(self.spec(), preds, {}, len(x))

    def feature_importance(self) -> List[dict]:
        """Gain per feature for every booster (small: boosters × features rows)."""
        from .scoring import booster

        rows = []
        for key, text in sorted(self.boosters.items()):
            kind, arm_key = key.split("_", 1)
            arm = next((a for a in [self.control_arm, *self.treatment_arms] if slug(a) == arm_key), arm_key)
            gains = booster(text).feature_importance(importance_type="gain")
            total = float(sum(gains)) or 1.0
            for feat, g in zip(self.features, gains):
                rows.append({"learner": self.learner, "outcome": self.outcome, "arm": arm, "model": key,
                             "feature": feat, "gain": float(g), "gain_share": float(g) / total})
        return rows

    def save(self, path: str, overwrite: bool = True) -> str:
        from .persistence import save_uplift_model

        return save_uplift_model(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str) -> "UpliftModel":
        from .persistence import load_uplift_model

        return load_uplift_model(path)

    def copy(self, extra=None):
        that = UpliftModel(self.learner, self.outcome, self.outcome_type, self.control_arm, self.treatment_arms,
                           self.encoding, self.boosters, self.propensity, self.training, self.learner_params)
        return that


__all__ = ["UpliftModel"]
