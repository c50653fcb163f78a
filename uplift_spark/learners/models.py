"""The fitted-model side of every learner: :class:`UpliftModel`, the common base of ``TLearnerModel``,
``XLearnerModel`` and any learner added later.

The base holds what all learners share — boosters as LightGBM text, the feature encoding, propensity
settings, training info — and does the Spark plumbing (vectorized scoring, persistence). A subclass
owns only its formula: :meth:`UpliftModel.combine` turns booster predictions into one uplift array
per treatment arm. ``transform`` adds one double column ``uplift_<slug(arm)>`` per treatment arm.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
from pyspark.ml import Model
from pyspark.ml.util import MLReadable, MLWritable

from ..errors import DataError, ModelError
from ..schemas import slug, uplift_column
from .features import FeatureEncoding
from .params import UpliftModelParams
from .persistence import FolderReader, FolderWriter, package_versions, write_folder
from .registry import model_class
from .scoring import score_boosters

Preds = Callable[[str], np.ndarray]


class UpliftModel(Model, UpliftModelParams, MLWritable, MLReadable):
    """A fitted uplift learner. Subclasses set ``learner`` and implement :meth:`combine`.

    ``UpliftModel.load(path)`` returns the subclass recorded in the folder; ``TLearnerModel.load(path)``
    also checks that the folder holds a T-learner.
    """

    learner = "abstract"

    def __init__(self, outcome: str = "", outcome_type: str = "binary", control_arm: str = "control",
                 treatment_arms: Optional[List[str]] = None, encoding: Optional[FeatureEncoding] = None,
                 boosters: Optional[Mapping[str, str]] = None, propensity: Optional[Mapping] = None,
                 training: Optional[Mapping] = None, params: Optional[Mapping] = None):
        super().__init__()
        self.outcome = outcome
        self.outcome_type = outcome_type
        self.control_arm = control_arm
        self.treatment_arms = list(treatment_arms or [])
        self.encoding = encoding
        self.boosters = dict(boosters or {})
        self.propensity = dict(propensity or {})
        self.training = dict(training or {})
        self.learner_params = dict(params or {})
        known = {k: v for k, v in self.learner_params.items() if k in self.PARAM_NAMES and v is not None}
        if known:
            self._set(**known)

    # ------------------------------------------------------------------ the learner's formula
    @classmethod
    def combine(cls, spec: Mapping, preds: Preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        """Uplift per treatment arm from booster outputs ``preds(key)`` (pure NumPy).

        ``spec`` is :meth:`spec` (JSON-able); ``extra`` holds the raw arrays of :meth:`_extra_columns`.
        """
        raise NotImplementedError

    def _combine(self, preds: Preds, extra: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
        return self.combine(self.spec(), preds, extra, n)

    def _extra_columns(self, df) -> List[str]:
        """Raw input columns the formula reads besides the boosters (none by default)."""
        return []

    # ------------------------------------------------------------------ description
    @property
    def features(self) -> List[str]:
        return list(self.encoding.features)

    @property
    def uplift_columns(self) -> Dict[str, str]:
        return {arm: uplift_column(arm) for arm in self.treatment_arms}

    def spec(self) -> dict:
        """What :meth:`combine` needs (JSON-able, picklable into the scoring UDF)."""
        return {
            "learner": self.learner, "control_key": slug(self.control_arm),
            "arm_keys": {arm: slug(arm) for arm in self.treatment_arms}, "propensity": self.propensity,
        }

    # ------------------------------------------------------------------ scoring
    def _transform(self, dataset):
        spec, combine = self.spec(), type(self).combine
        extra = self._extra_columns(dataset)
        enc_cols = self.encoding.encoded_columns
        outputs = {}
        for arm, col in self.uplift_columns.items():
            if col in dataset.columns:
                raise DataError(f"input already has a column {col!r}: drop it before scoring")

            def build(preds, extra_arrays, n, _arm=arm):
                return combine(spec, preds, extra_arrays, n)[_arm]
            outputs[col] = build
        with_enc = dataset.select("*", *self.encoding.encoded_exprs(dataset))
        scored, _ = score_boosters(with_enc, enc_cols, self.boosters, outputs, extra)
        return scored.drop(*enc_cols)

    def outcome_mean_keys(self) -> Dict[str, str]:
        """arm → booster key predicting the outcome under that arm (μ_k(x)); only learners with per-arm
        outcome models have them (T, X: ``mu_<arm>``; the S-learner overrides), R/DR keep none."""
        keys = {}
        for arm in [self.control_arm, *self.treatment_arms]:
            key = f"mu_{slug(arm)}"
            if key in self.boosters:
                keys[arm] = key
        return keys

    def transform_outcome_means(self, dataset, columns: Mapping[str, str]):
        """Add ``columns[arm]`` = the predicted outcome under ``arm`` (a probability for a binary outcome),
        e.g. the redemption probability an expected-cost model multiplies by a coupon's face value."""
        keys = self.outcome_mean_keys()
        missing = [arm for arm in columns if arm not in keys]
        if missing:
            raise ModelError(f"{self.learner}-learner model of {self.outcome!r} has no outcome model for arm "
                             f"{missing[0]!r} (learners t, x and s predict the outcome per arm)")
        outputs = {}
        for arm, col in columns.items():
            if col in dataset.columns:
                raise DataError(f"input already has a column {col!r}: drop it before scoring")
            outputs[col] = (lambda preds, extra_arrays, n, _key=keys[arm]: preds(_key))
        enc_cols = self.encoding.encoded_columns
        with_enc = dataset.select("*", *self.encoding.encoded_exprs(dataset))
        scored, _ = score_boosters(with_enc, enc_cols, self.boosters, outputs, [])
        return scored.drop(*enc_cols)

    def predict_arrays(self, x) -> Dict[str, np.ndarray]:
        """Uplift per arm for an already encoded numpy matrix (driver-side checks and small references)."""
        from .scoring import predict_key

        memo: Dict[str, np.ndarray] = {}

        def preds(key):
            if key not in memo:
                memo[key] = predict_key(self.boosters, key, np.asarray(x, dtype=np.float64))
            return memo[key]

        return self._combine(preds, {}, len(x))

    def feature_importance(self) -> List[dict]:
        """Gain per feature for every booster (small: boosters × features rows)."""
        from .scoring import booster

        rows = []
        for key, text in sorted(self.boosters.items()):
            _, arm_key = key.split("_", 1)
            arm = next((a for a in [self.control_arm, *self.treatment_arms] if slug(a) == arm_key), arm_key)
            gains = booster(text).feature_importance(importance_type="gain")
            total = float(sum(gains)) or 1.0
            for feat, g in zip(self.features, gains):
                rows.append({"learner": self.learner, "outcome": self.outcome, "arm": arm, "model": key,
                             "feature": feat, "gain": float(g), "gain_share": float(g) / total})
        return rows

    # ------------------------------------------------------------------ persistence
    def write(self) -> FolderWriter:
        return FolderWriter(self)

    def save(self, path: str, overwrite: bool = False) -> str:
        """``write().save(path)`` (``overwrite=True``: ``write().overwrite().save(path)``); returns the path."""
        writer = self.write()
        if overwrite:
            writer.overwrite()
        writer.save(path)
        from ..io.fs import normalize

        return normalize(path)

    @classmethod
    def read(cls) -> FolderReader:
        return FolderReader(cls)

    def _save_folder(self, path: str, overwrite: bool) -> str:
        meta = {
            "kind": "model", "class": type(self).__name__, "uid": self.uid,
            "learner": self.learner, "outcome": self.outcome, "outcome_type": self.outcome_type,
            "control_arm": self.control_arm, "treatment_arms": list(self.treatment_arms),
            "uplift_columns": self.uplift_columns, "features": list(self.features),
            "encoding": self.encoding.to_json(), "propensity": self.propensity,
            "boosters": {key: f"{key}.txt" for key in sorted(self.boosters)},
            "files": {},  # filled below: booster checksums, as format 1 had them
            "params": self.learner_params, "training": self.training, "versions": package_versions(),
        }
        from .persistence import sha256_bytes

        texts = {f"{key}.txt": text for key, text in self.boosters.items()}
        meta["files"] = {name: sha256_bytes(t.encode("utf-8")) for name, t in sorted(texts.items())}
        return write_folder(path, meta, texts, overwrite)

    @classmethod
    def _from_folder(cls, path: str, meta: dict, texts: Mapping[str, str]) -> "UpliftModel":
        if meta.get("kind", "model") != "model":
            raise ModelError(f"model folder {path} holds a {meta.get('kind')!r}, not a fitted model")
        learner = meta.get("learner")
        target = model_class(learner)
        if cls is not UpliftModel and not issubclass(target, cls):
            raise ModelError(f"model folder {path} holds a {learner!r}-learner model ({target.__name__}), "
                             f"not a {cls.__name__}")
        model = target(
            outcome=meta["outcome"], outcome_type=meta["outcome_type"], control_arm=meta["control_arm"],
            treatment_arms=meta["treatment_arms"], encoding=FeatureEncoding.from_json(meta["encoding"]),
            boosters={key: texts[name] for key, name in meta["boosters"].items()},
            propensity=meta["propensity"], training=meta.get("training"), params=meta.get("params"))
        if meta.get("uid"):
            model._resetUid(meta["uid"])
        return model

    def copy(self, extra=None) -> "UpliftModel":
        that = type(self)(self.outcome, self.outcome_type, self.control_arm, self.treatment_arms, self.encoding,
                          self.boosters, self.propensity, self.training, self.learner_params)
        that._resetUid(self.uid)
        return self._copyValues(that, extra)


def load_uplift_model(path: str, expected_digest: Optional[str] = None) -> UpliftModel:
    """Load and verify a saved model (any learner); ``expected_digest`` pins its ``_digest.json``."""
    from .persistence import read_folder
    from ..io.fs import normalize

    meta, texts = read_folder(path, expected_digest)
    return UpliftModel._from_folder(normalize(path), meta, texts)


def save_uplift_model(model: UpliftModel, path: str, overwrite: bool = True) -> str:
    """``model.write().overwrite().save(path)``; returns the normalized path."""
    return model.save(path, overwrite=overwrite)


_UpliftModelBase = UpliftModel

__all__ = ["UpliftModel", "load_uplift_model", "save_uplift_model"]
