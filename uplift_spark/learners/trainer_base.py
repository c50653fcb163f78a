"""The trainer interface every LightGBM backend implements, and the LightGBM parameters they share.

A backend is a :class:`Trainer` subclass with a ``backend`` name and one method, ``_train(frame, ...)``,
that trains ONE booster on a :class:`~uplift_spark.learners.frames.TrainingFrame` and returns a
:class:`TrainedBooster` holding LightGBM model text (what PyPI ``lightgbm.Booster(model_str=...)`` loads).
``prepare`` (shared, overridable) lays the rows out one cached partition per task; learners call
``prepare`` once per arm and ``train`` once per booster. Register a new backend in
:mod:`uplift_spark.learners.trainers` (``register_trainer``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..config import LightGBMConfig
from ..errors import ModelError
from .frames import BINARY, REGRESSION, TrainingFrame, prepare_training_frame, task_count

METRIC = {BINARY: "binary_logloss", REGRESSION: "l2"}


@dataclass(frozen=True)
class TrainedBooster:
    """One trained booster: LightGBM model text plus how it was obtained."""

    model_str: str
    backend: str
    num_tasks: int
    best_iteration: int = 0
    strategy: str = "distributed"  # or "per_task": all the booster's rows in one Spark task


@dataclass(frozen=True)
class BoosterSpec:
    """One booster to train (the arguments of :meth:`Trainer.train`), for :meth:`Trainer.train_many`."""

    frame: object  # a TrainingFrame from Trainer.prepare, or a DataFrame
    label_col: str
    feature_cols: Sequence[str]
    feature_names: Sequence[str]
    objective: str
    categorical_indexes: Sequence[int] = ()
    valid_col: Optional[str] = None
    weight_col: Optional[str] = None


def lightgbm_params(cfg: LightGBMConfig, objective: str) -> Dict[str, object]:
    """PyPI/native LightGBM parameter names for ``cfg`` (the barrier trainer and the references use it)."""
    if objective not in METRIC:
        raise ModelError(f"unknown objective {objective!r} (expected {sorted(METRIC)})")
    params: Dict[str, object] = {
        "objective": objective,
        "metric": METRIC[objective],
        "num_leaves": cfg.num_leaves,
        "learning_rate": cfg.learning_rate,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": cfg.bagging_freq,
        "lambda_l2": cfg.lambda_l2,
        "max_bin": cfg.max_bin,
        "seed": cfg.seed,
        "deterministic": True,
        "verbosity": -1,
    }
    params.update(dict(cfg.extra))
    return params


class Trainer:
    """Train one LightGBM booster on encoded double feature columns of a Spark DataFrame.

    ``train`` takes a DataFrame (partitioned and cached for that one booster, then released) or a
    :class:`TrainingFrame` from :meth:`prepare` (used as is: the caller shares it between boosters
    and unpersists it).
    """

    backend = "abstract"

    def __init__(self, spark, cfg: LightGBMConfig):
        self.spark = spark
        self.cfg = cfg
        # every booster this trainer returned, in order: learners map their booster keys to how each
        # was trained (strategy, backend) without changing the ``train`` signature
        self.trained: List[TrainedBooster] = []

    def prepare(self, df, label_col: str, objective: str, valid_col: Optional[str] = None,
                counts: Optional[Mapping[object, int]] = None) -> TrainingFrame:
        """``df`` cached with one partition per task (see :func:`prepare_training_frame`)."""
        return prepare_training_frame(df, label_col, task_count(self.spark, self.cfg), objective == BINARY,
                                      self.cfg.seed, valid_col, counts)

    def _frame(self, df, label_col: str, feature_cols: Sequence[str], objective: str,
               valid_col: Optional[str], weight_col: Optional[str] = None) -> Tuple[TrainingFrame, bool]:
        """``(frame, owned)``: a given TrainingFrame as is, else a new one this call must unpersist."""
        if isinstance(df, TrainingFrame):
            return df, False
        from pyspark.sql import functions as F

        data = df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
                         *([F.col(weight_col).cast("double").alias(weight_col)] if weight_col else []),
                         *([F.col(valid_col).cast("boolean").alias(valid_col)] if valid_col else []))
        return self.prepare(data, label_col, objective, valid_col), True

    def train(self, df, label_col: str, feature_cols: Sequence[str], feature_names: Sequence[str],
              objective: str, categorical_indexes: Sequence[int] = (),
              valid_col: Optional[str] = None, weight_col: Optional[str] = None) -> TrainedBooster:
        """``weight_col``: per-row sample weights (the R-learner's (W − e)²); only passed on to ``_train``
        when set, so a backend without weight support keeps its plain signature and fails clearly."""
        frame, owned = self._frame(df, label_col, feature_cols, objective, valid_col, weight_col)
        extra = {"weight_col": weight_col} if weight_col else {}
        try:
            try:
                res = self._train(frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
                                  valid_col, **extra)
            except TypeError as exc:
                if extra and "weight_col" in str(exc):
                    raise ModelError(f"trainer backend {self.backend!r} does not support sample weights "
                                     f"(needed to train {label_col!r})") from exc
                raise
        finally:
            if owned:
                frame.unpersist()
        self.trained.append(res)
        return res

    def train_many(self, specs: Sequence[BoosterSpec]) -> List[TrainedBooster]:
        """Train independent boosters; results in the order of ``specs``. This default trains them one
        after the other; a backend that can train them side by side (per_task) overrides it."""
        return [self.train(s.frame, s.label_col, s.feature_cols, s.feature_names, s.objective,
                           s.categorical_indexes, s.valid_col, s.weight_col) for s in specs]

    def _lay_out(self, specs: Sequence[BoosterSpec]) -> Tuple[List[BoosterSpec], List[TrainingFrame]]:
        """``(specs with their frames laid out, the frames this call created)``; the caller unpersists
        the second list (here too, if laying out one of them fails)."""
        owned: List[TrainingFrame] = []
        ready: List[BoosterSpec] = []
        try:
            for s in specs:
                frame, own = self._frame(s.frame, s.label_col, s.feature_cols, s.objective, s.valid_col,
                                         s.weight_col)
                if own:
                    owned.append(frame)
                ready.append(dataclasses.replace(s, frame=frame))
        except Exception:
            for frame in owned:
                frame.unpersist()
            raise
        return ready, owned

    def how_trained(self, model_str: str) -> Optional[TrainedBooster]:
        """The :class:`TrainedBooster` this trainer returned with ``model_str`` (None if none)."""
        for res in reversed(self.trained):
            if res.model_str == model_str:
                return res
        return None

    def _train(self, frame: TrainingFrame, label_col: str, feature_cols: Sequence[str],
               feature_names: Sequence[str], objective: str, categorical_indexes: Sequence[int],
               valid_col: Optional[str]) -> TrainedBooster:
        raise NotImplementedError


__all__ = ["Trainer", "TrainedBooster", "BoosterSpec", "lightgbm_params", "METRIC", "BINARY", "REGRESSION"]
