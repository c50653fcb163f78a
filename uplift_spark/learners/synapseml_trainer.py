"""SynapseML LightGBM backend: ``LightGBMClassifier``/``LightGBMRegressor`` on the executors (native
LightGBM from the SynapseML JAR, barrier execution mode, finite network timeout, early stopping on rows
flagged by a validation column). Returns the booster as LightGBM model text (``getNativeModel``).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..config import LightGBMConfig
from ..errors import ModelError
from ..logs import get_logger
from .frames import BINARY
from .trainer_base import METRIC, TrainedBooster, Trainer

log = get_logger("learners.synapseml")


def lightgbm_threads(spark, cfg: LightGBMConfig) -> int:
    """LightGBM threads of the one training worker per executor (SynapseML single-dataset mode).

    0 (default) keeps SynapseML's choice, ``tasks per executor - 1`` (one thread on ``local[2]``).
    ``model.lightgbm.num_threads: N`` sets N; measured on the shared 2-core machine (load 7-9), all
    cores (2) was SLOWER than 1 — OpenMP threads spin on an oversubscribed machine — so more threads
    only pay on executors whose cores are otherwise idle during training.
    """
    return cfg.num_threads if cfg.num_threads > 0 else 0


class SynapseMLTrainer(Trainer):
    """SynapseML LightGBM on the executors (native LightGBM bundled in the JAR)."""

    backend = "synapseml"

    def estimator(self, objective: str, label_col: str, features_col: str, feature_names: Sequence[str],
                  categorical_indexes: Sequence[int], valid_col: Optional[str], n_tasks: int):
        from synapse.ml.lightgbm import LightGBMClassifier, LightGBMRegressor

        c = self.cfg
        cls = LightGBMClassifier if objective == BINARY else LightGBMRegressor
        est = cls(
            featuresCol=features_col, labelCol=label_col, objective=objective, metric=METRIC[objective],
            numLeaves=c.num_leaves, learningRate=c.learning_rate, numIterations=c.num_iterations,
            minDataInLeaf=c.min_data_in_leaf, featureFraction=c.feature_fraction,
            baggingFraction=c.bagging_fraction, baggingFreq=c.bagging_freq, lambdaL2=c.lambda_l2,
            maxBin=c.max_bin, seed=c.seed, deterministic=True, verbosity=-1,
            useBarrierExecutionMode=True, timeout=float(c.timeout_seconds),
            dataTransferMode=c.data_transfer_mode, slotNames=list(feature_names),
        )
        if categorical_indexes:
            est.setCategoricalSlotIndexes(list(categorical_indexes))
        # one task per cached partition: SynapseML then neither guesses nor repartitions again
        est.setNumTasks(n_tasks)
        threads = lightgbm_threads(self.spark, c)
        if threads > 0:
            est.setNumThreads(threads)
        if valid_col:
            est.setValidationIndicatorCol(valid_col)
            est.setEarlyStoppingRound(c.early_stopping_round)
        if c.extra:
            est.setPassThroughArgs(" ".join(f"{k}={v}" for k, v in c.extra.items()))
        return est

    def _train(self, frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
               valid_col, weight_col=None) -> TrainedBooster:
        from pyspark.ml.feature import VectorAssembler
        from pyspark.sql import functions as F

        features_col = "__uplift_features"
        n_tasks = frame.n_tasks
        if valid_col and frame.valid_rows == 0:
            # SynapseML 1.1.3 fails on an empty validation set (None.get in PeekingIterator.peek)
            log.warning("no validation rows for %r: training without early stopping", label_col)
            valid_col = None
        data = frame.df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
                               *([F.col(weight_col).cast("double").alias(weight_col)] if weight_col else []),
                               *([F.col(valid_col).cast("boolean").alias(valid_col)] if valid_col else []))
        cap = int(self.cfg.max_validation_rows)
        if valid_col and cap and frame.valid_rows > cap:
            # SynapseML collects the validation rows to the driver (and broadcasts them): keep a seeded
            # sample of at most ~cap rows so driver memory does not grow with the number of customers
            keep = cap / float(frame.valid_rows)
            data = data.where(~F.col(valid_col) | (F.rand(int(self.cfg.seed) + 17) < F.lit(keep)))
            log.info("early stopping on a %.3f sample of %d validation rows (model.lightgbm.max_validation_rows)",
                     keep, frame.valid_rows)
        # VectorAssembler is a narrow map: the cached partitions reach the LightGBM tasks unchanged
        data = VectorAssembler(inputCols=list(feature_cols), outputCol=features_col,
                               handleInvalid="keep").transform(data)
        data = data.select(features_col, label_col, *([weight_col] if weight_col else []),
                           *([valid_col] if valid_col else []))
        est = self.estimator(objective, label_col, features_col, feature_names, categorical_indexes,
                             valid_col, n_tasks)
        if weight_col:
            est.setWeightCol(weight_col)
        try:
            fitted = est.fit(data)
            model_str = fitted.getNativeModel()
        except Exception as exc:  # py4j errors carry the JVM message: keep it
            raise ModelError(f"SynapseML LightGBM training of {label_col!r} ({objective}) failed: {exc}") from exc
        return TrainedBooster(model_str=model_str, backend=self.backend, num_tasks=n_tasks)


__all__ = ["SynapseMLTrainer", "lightgbm_threads"]
