"""``model.distribution``: per booster, train in one Spark task (per_task) or data-parallel (distributed).

:class:`DistributionTrainer` is the trainer backend learners get from ``make_trainer`` when the
distribution is ``auto`` or ``per_task``: it decides when a booster's rows are laid out (``prepare``,
where the learner passes the training-row counts it already has, so no extra Spark job) and every
booster trained on that layout (including X-learner stage 2 and propensity boosters) follows it.
``auto`` picks ``per_task`` when training rows x features x 8 bytes < ``per_task_max_bytes``, else the
distributed backend (SynapseML, or barrier where SynapseML is absent).
"""

from __future__ import annotations

from typing import List, Sequence

from ..errors import ModelError
from ..logs import get_logger
from .frames import BINARY, TrainingFrame, class_counts
from .per_task_trainer import (DISTRIBUTED, PER_TASK, PerTaskTrainer, booster_bytes,
                               default_per_task_max_bytes)
from .trainer_base import BoosterSpec, TrainedBooster, Trainer

log = get_logger("learners.distribution")

DISTRIBUTIONS = ("auto", DISTRIBUTED, PER_TASK)


class DistributionTrainer(Trainer):
    """Routes each booster to :class:`PerTaskTrainer` or the distributed trainer it wraps."""

    def __init__(self, spark, cfg, distributed: Trainer, distribution: str = "auto", max_bytes: int = 0):
        super().__init__(spark, cfg)
        if distribution not in DISTRIBUTIONS:
            raise ModelError(f"model.distribution: unknown value {distribution!r} (expected {', '.join(DISTRIBUTIONS)})")
        self.distributed = distributed
        self.per_task = PerTaskTrainer(spark, cfg)
        self.distribution = distribution
        self.max_bytes = int(max_bytes) if max_bytes and max_bytes > 0 else default_per_task_max_bytes(spark)
        self.backend = f"{distribution}:{distributed.backend}"

    def choose(self, rows: int, n_features: int) -> str:
        """``per_task`` or ``distributed`` for a booster of ``rows`` training rows and ``n_features``."""
        if self.distribution != "auto":
            return self.distribution
        return PER_TASK if booster_bytes(rows, n_features) < self.max_bytes else DISTRIBUTED

    def prepare(self, df, label_col, objective, valid_col=None, counts=None) -> TrainingFrame:
        if self.distribution == DISTRIBUTED:
            return self.distributed.prepare(df, label_col, objective, valid_col, counts)
        if counts is None:
            counts = class_counts(df, label_col, objective == BINARY, valid_col)
        n_features = len([c for c in df.columns if c not in (label_col, valid_col)])
        rows = int(sum(counts.values()))
        strategy = self.choose(rows, n_features)
        log.debug("booster on %r: %d rows x %d features -> %s (limit %d bytes)", label_col, rows, n_features,
                  strategy, self.max_bytes)
        trainer = self.per_task if strategy == PER_TASK else self.distributed
        return trainer.prepare(df, label_col, objective, valid_col, counts)

    def _train(self, frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
               valid_col, weight_col=None) -> TrainedBooster:
        trainer = self.per_task if frame.strategy == PER_TASK else self.distributed
        extra = {"weight_col": weight_col} if weight_col else {}
        return trainer._train(frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
                              valid_col, **extra)

    def train_many(self, specs: Sequence[BoosterSpec]) -> List[TrainedBooster]:
        """Per-task boosters side by side in one Spark job; distributed ones one after the other."""
        results: List[TrainedBooster] = [None] * len(specs)  # type: ignore[list-item]
        ready, owned = self._lay_out(specs)
        try:
            per = [i for i, s in enumerate(ready) if s.frame.strategy == PER_TASK]
            if per:
                for i, res in zip(per, self.per_task.run([ready[i] for i in per])):
                    results[i] = res
            for i, s in enumerate(ready):
                if results[i] is None:
                    results[i] = self._train(s.frame, s.label_col, s.feature_cols, s.feature_names,
                                             s.objective, s.categorical_indexes, s.valid_col, s.weight_col)
        finally:
            for frame in owned:
                frame.unpersist()
        self.trained.extend(results)
        return results


__all__ = ["DistributionTrainer", "DISTRIBUTIONS", "PER_TASK", "DISTRIBUTED"]
