"""Choosing a LightGBM trainer backend: a small registry and the ``make_trainer`` factory.

Backends implement :class:`~uplift_spark.learners.trainer_base.Trainer` (``prepare`` lays rows out one
cached partition per task, ``train`` returns a :class:`TrainedBooster` holding LightGBM model text):

* ``synapseml`` — :mod:`uplift_spark.learners.synapseml_trainer` (SynapseML LightGBM on the executors);
* ``barrier`` — :mod:`uplift_spark.learners.barrier_trainer` (PyPI lightgbm in a Spark barrier stage).

A new backend registers itself with ``register_trainer("name", TrainerClass)``; ``model.backend: name``
then selects it (``auto`` keeps choosing between SynapseML and barrier).
"""

from __future__ import annotations

from typing import Dict, Type

from ..config import LightGBMConfig
from ..errors import ModelError
from .barrier_trainer import BarrierTrainer
from .frames import BINARY, REGRESSION, TrainingFrame
from .synapseml_trainer import SynapseMLTrainer
from .trainer_base import TrainedBooster, Trainer, lightgbm_params

TRAINERS: Dict[str, Type[Trainer]] = {"synapseml": SynapseMLTrainer, "barrier": BarrierTrainer}


def register_trainer(name: str, cls: Type[Trainer]) -> None:
    """Make ``model.backend: name`` build ``cls(spark, lightgbm_cfg)``."""
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise ModelError(f"trainer {name!r}: {cls!r} is not a Trainer subclass")
    TRAINERS[name] = cls


def resolve_backend(spark, backend: str) -> str:
    """``auto`` → SynapseML when its JAR and Python package load in this session, else barrier."""
    from ..session import synapseml_available

    if backend == "auto":
        return "synapseml" if synapseml_available(spark) else "barrier"
    if backend not in TRAINERS:
        raise ModelError(f"model.backend: unknown backend {backend!r} (expected auto, {', '.join(sorted(TRAINERS))})")
    if backend == "synapseml" and not synapseml_available(spark):
        raise ModelError("model.backend is 'synapseml' but SynapseML LightGBM is not on this session's "
                         "classpath: use backend 'barrier' or 'auto'")
    return backend


def make_trainer(spark, cfg: LightGBMConfig, backend: str = "auto") -> Trainer:
    return TRAINERS[resolve_backend(spark, backend)](spark, cfg)


__all__ = [
    "BINARY", "REGRESSION", "TRAINERS", "TrainedBooster", "Trainer", "TrainingFrame", "SynapseMLTrainer",
    "BarrierTrainer", "lightgbm_params", "make_trainer", "register_trainer", "resolve_backend",
]
