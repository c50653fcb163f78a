"""Choosing a LightGBM trainer backend: a small registry and the ``make_trainer`` factory.

Backends implement :class:`~uplift_spark.learners.trainer_base.Trainer` (``prepare`` lays rows out one
cached partition per task, ``train`` returns a :class:`TrainedBooster` holding LightGBM model text):

* ``synapseml`` — :mod:`uplift_spark.learners.synapseml_trainer` (SynapseML LightGBM on the executors);
* ``barrier`` — :mod:`uplift_spark.learners.barrier_trainer` (PyPI lightgbm in a Spark barrier stage).

``model.distribution`` (``auto``/``per_task``) wraps the chosen backend in
:class:`~uplift_spark.learners.distribution.DistributionTrainer`, which trains boosters that fit one
task with :class:`~uplift_spark.learners.per_task_trainer.PerTaskTrainer` instead.

A new backend registers itself with ``register_trainer("name", TrainerClass)``; ``model.backend: name``
then selects it (``auto`` keeps choosing between SynapseML and barrier).
"""

from __future__ import annotations

from typing import Dict, Type

from ..config import LightGBMConfig
from ..errors import ModelError
from .barrier_trainer import BarrierTrainer
from .distribution import DistributionTrainer
from .frames import BINARY, REGRESSION, TrainingFrame
from .synapseml_trainer import SynapseMLTrainer
from .per_task_trainer import PerTaskTrainer
from .trainer_base import BoosterSpec, TrainedBooster, Trainer, lightgbm_params

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


def make_trainer(spark, cfg: LightGBMConfig, backend: str = "auto", distribution: str = "distributed",
                 per_task_max_bytes: int = 0) -> Trainer:
    """The ``backend`` trainer, wrapped in a :class:`DistributionTrainer` unless ``distribution`` is
    ``distributed`` (then every booster trains data-parallel, as before ``model.distribution``)."""
    distributed = TRAINERS[resolve_backend(spark, backend)](spark, cfg)
    if distribution == "distributed":
        return distributed
    return DistributionTrainer(spark, cfg, distributed, distribution, per_task_max_bytes)


__all__ = [
    "BINARY", "REGRESSION", "TRAINERS", "TrainedBooster", "Trainer", "TrainingFrame", "SynapseMLTrainer",
    "BarrierTrainer", "BoosterSpec", "DistributionTrainer", "PerTaskTrainer", "lightgbm_params", "make_trainer", "register_trainer", "resolve_backend",
]
