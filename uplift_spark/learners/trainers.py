"""Distributed LightGBM training behind one interface, returning the booster as LightGBM model text.

Two backends with the same parameters (from :class:`~uplift_spark.config.LightGBMConfig`):

* ``synapseml`` — SynapseML ``LightGBMClassifier``/``LightGBMRegressor`` on the executors (barrier
  execution mode, finite network timeout, early stopping on rows flagged by a validation column).
* ``barrier`` — PyPI ``lightgbm`` inside a Spark barrier stage (``mapInPandas(..., barrier=True)``):
  every task learns its peers' ``host:port`` through ``allGather`` and joins one data-parallel
  LightGBM network (the pattern of ``lightgbm.dask`` and ``xgboost.spark``). Used where the SynapseML
  JAR is absent. Early stopping stays consistent across machines because each iteration's validation
  loss is summed over all tasks with ``allGather`` before any task decides to stop.

Both return the model text, which PyPI ``lightgbm.Booster(model_str=...)`` loads for scoring.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..config import LightGBMConfig
from ..errors import ModelError
from ..logs import get_logger

log = get_logger("learners.trainers")

BINARY = "binary"
REGRESSION = "regression"
_METRIC = {BINARY: "binary_logloss", REGRESSION: "l2"}
# Minority-class rows each task should expect before we trust a random split to give it both classes.
_MIN_CLASS_ROWS_PER_TASK = 10


@dataclass(frozen=True)
class TrainedBooster:
    """One trained booster: LightGBM model text plus how it was obtained."""

    model_str: str
    backend: str
    num_tasks: int
    best_iteration: int = 0


def lightgbm_params(cfg: LightGBMConfig, objective: str) -> Dict[str, object]:
    """PyPI/native LightGBM parameter names for ``cfg`` (the barrier trainer and the references use it)."""
    if objective not in _METRIC:
        raise ModelError(f"unknown objective {objective!r} (expected {sorted(_METRIC)})")
    params: Dict[str, object] = {
        "objective": objective,
        "metric": _METRIC[objective],
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


def _task_count(spark, cfg: LightGBMConfig) -> int:
    """LightGBM tasks: ``num_tasks``, else the default parallelism capped by the task slots of a local
    master (a barrier stage with more tasks than slots waits, then fails: e.g. local[2] with
    spark.default.parallelism = 4)."""
    if cfg.num_tasks > 0:
        return cfg.num_tasks
    n = max(1, spark.sparkContext.defaultParallelism)
    slots = local_slots(spark.sparkContext.master)
    return min(n, slots) if slots else n


def local_slots(master: str) -> int:
    """Concurrent task slots of a local master URL (0 = not a local master)."""
    import re

    m = re.fullmatch(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,.*\]", master or "")
    if m:
        return int(m.group(1)) * int(m.group(2))
    return cores_of_master(master)


def cores_of_master(master: str) -> int:
    """Cores of one executor implied by a local master URL (0 = not a local master)."""
    import os
    import re

    m = re.fullmatch(r"local-cluster\[\s*\d+\s*,\s*(\d+)\s*,.*\]", master or "")
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master or "")
    if not m:
        return 0
    n = m.group(1)
    return 1 if n is None else (os.cpu_count() or 1) if n == "*" else int(n)


def executor_cores(spark) -> int:
    """Cores of one executor (0 = unknown): ``spark.executor.cores``, else what a local master gives."""
    sc = spark.sparkContext
    conf = sc.getConf().get("spark.executor.cores")
    return int(conf) if conf else cores_of_master(sc.master)


def lightgbm_threads(spark, cfg: LightGBMConfig) -> int:
    """LightGBM threads of the one training worker per executor (SynapseML single-dataset mode).

    0 (default) keeps SynapseML's choice, ``tasks per executor - 1`` (one thread on ``local[2]``).
    ``model.lightgbm.num_threads: N`` sets N; measured on the shared 2-core machine (load 7-9), all
    cores (2) was SLOWER than 1 — OpenMP threads spin on an oversubscribed machine — so more threads
    only pay on executors whose cores are otherwise idle during training.
    """
    return cfg.num_threads if cfg.num_threads > 0 else 0


def class_counts(df, label_col: str, classifier: bool, valid_col: Optional[str] = None) -> Dict[object, int]:
    """Training-row counts per class (classifier) or ``{"rows": n}``: one small aggregate."""
    from pyspark.sql import functions as F

    train_rows = df if valid_col is None else df.where(~F.col(valid_col))
    if classifier:  # two groups at most: a small aggregate
        return {r[0]: int(r[1]) for r in train_rows.groupBy(label_col).count().limit(3).collect()}
    return {"rows": int(train_rows.count())}


def plan_tasks(counts: Mapping[object, int], label_col: str, n_tasks: int, classifier: bool) -> int:
    """Check the class counts and lower ``n_tasks`` until every task can expect both classes.

    LightGBM fails or silently degrades on a task that holds a single class (or no rows).
    """
    if classifier and set(counts) - {0.0, 1.0}:
        raise ModelError(f"binary label {label_col!r} has values other than 0/1 "
                         f"(e.g. {sorted(counts, key=str)[:3]}): declare the outcome continuous")
    total = sum(counts.values())
    if total == 0:
        raise ModelError(f"no training rows for label {label_col!r}")
    if classifier:
        present = sorted(k for k, v in counts.items() if v > 0)
        if len(present) < 2:
            raise ModelError(
                f"label {label_col!r} has a single class {present} in the training rows: "
                "a classifier needs both 0 and 1"
            )
        minority = min(counts.values())
        n_tasks = max(1, min(n_tasks, minority // _MIN_CLASS_ROWS_PER_TASK))
    return max(1, min(n_tasks, total // 2))


@dataclass(frozen=True)
class TrainingFrame:
    """Training rows spread over the LightGBM tasks (one partition per task) and cached.

    Why cached: SynapseML reads its input three times per booster (validation rows collected to the
    driver, the first row for the column count, the barrier training job) and a learner trains
    several boosters on the same rows; an uncached repartitioned frame repeats the shuffle on every
    read. Build it once per arm with :func:`prepare_training_frame`, derive per-booster frames with
    narrow maps (:meth:`derive`), ``unpersist`` after the fit.
    """

    df: object
    n_tasks: int
    repartitioned: bool
    partition_rows: Tuple[int, ...] = ()
    valid_rows: int = 0
    owns_cache: bool = True  # False when the caller had cached ``df`` already: unpersist leaves it

    def derive(self, df) -> "TrainingFrame":
        """Same rows and partitioning, other columns (``df`` must be a narrow map of ``self.df``)."""
        parts = df.rdd.getNumPartitions()
        if parts != self.n_tasks:
            raise ModelError(f"derived training frame has {parts} partitions, expected {self.n_tasks}: "
                             "only narrow transformations keep the task layout")
        return TrainingFrame(df, self.n_tasks, self.repartitioned, self.partition_rows, self.valid_rows, True)

    def unpersist(self) -> None:
        if self.owns_cache:
            self.df.unpersist()


def _partition_stats(df, label_col: str, classifier: bool, valid_col: Optional[str]) -> Dict[int, tuple]:
    """Training rows, positives and validation rows per partition (one small aggregate; it also
    fills a cache)."""
    from pyspark.sql import functions as F

    is_train = ~F.col(valid_col) if valid_col else F.lit(True)
    rows = df.groupBy(F.spark_partition_id().alias("p")).agg(
        F.sum(is_train.cast("long")).alias("n"),
        (F.sum(F.when(is_train, F.col(label_col))) if classifier else F.lit(0.0)).alias("pos"),
        F.sum((~is_train).cast("long")).alias("v"),
    ).collect()
    return {int(r["p"]): (int(r["n"] or 0), float(r["pos"] or 0.0), int(r["v"] or 0)) for r in rows}


def prepare_training_frame(df, label_col: str, n_tasks: int, classifier: bool, seed: int,
                           valid_col: Optional[str] = None, counts: Optional[Mapping[object, int]] = None,
                           storage_level=None) -> TrainingFrame:
    """Cache ``df`` with one partition per LightGBM task, every task holding training rows (and, for a
    classifier, both classes).

    ``counts`` (training rows per class, e.g. from the learner's one fingerprint aggregate) saves the
    class-count job. The input is kept as is — no shuffle — when it already has exactly the planned
    number of partitions and each passes the check; else rows are hash-partitioned by their content
    (seeded: the same rows always land on the same task). Either way ONE job fills the cache and
    returns the per-partition counts that the check needs. ``n_tasks`` may be lowered when the
    minority class is too small to give every task a share.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if counts is None:
        counts = class_counts(df, label_col, classifier, valid_col)
    n_tasks = plan_tasks(counts, label_col, n_tasks, classifier)
    level = storage_level or StorageLevel.MEMORY_AND_DISK
    attempts = [False] if df.rdd.getNumPartitions() == n_tasks else []
    attempts.append(True)
    problem = ""
    for repartition in attempts:
        if repartition:
            key = F.xxhash64(F.lit(seed), *[F.col(c) for c in df.columns])
            cand = df.repartition(n_tasks, key)
        else:
            cand = df
        owns = cand.storageLevel == StorageLevel.NONE  # a caller's cache of the same plan stays theirs
        cand = cand.persist(level) if owns else cand
        stats = _partition_stats(cand, label_col, classifier, valid_col)
        problem = ""
        extra = sorted(p for p in stats if p >= n_tasks)
        if extra:
            # the plan's partition count at execution differs from getNumPartitions() (e.g. adaptive
            # execution re-planned an upstream shuffle): SynapseML would ask for more barrier slots
            problem = f"training input has {max(extra) + 1} partitions, not the planned {n_tasks}"
        for p in range(n_tasks if not problem else 0):
            n, pos, _ = stats.get(p, (0, 0.0, 0))
            if n == 0:
                problem = f"training partition {p} of {n_tasks} has no training rows"
            elif classifier and not 0 < pos < n:
                problem = f"training partition {p} of {n_tasks} lacks one class of {label_col!r}"
            if problem:
                break
        if not problem:
            log.debug("training frame for %r: %d tasks, repartitioned=%s", label_col, n_tasks, repartition)
            return TrainingFrame(cand, n_tasks, repartition, tuple(stats[p][0] for p in range(n_tasks)),
                                 sum(v for _, _, v in stats.values()), owns)
        if owns:
            cand.unpersist()
    raise ModelError(f"{problem}: lower model.lightgbm.num_tasks")


def partition_for_training(df, label_col: str, n_tasks: int, classifier: bool, seed: int,
                           valid_col: Optional[str] = None):
    """``(df, n_tasks)`` of :func:`prepare_training_frame` (kept for callers of the old API; cached)."""
    frame = prepare_training_frame(df, label_col, n_tasks, classifier, seed, valid_col)
    return frame.df, frame.n_tasks


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

    def prepare(self, df, label_col: str, objective: str, valid_col: Optional[str] = None,
                counts: Optional[Mapping[object, int]] = None) -> TrainingFrame:
        """``df`` cached with one partition per task (see :func:`prepare_training_frame`)."""
        return prepare_training_frame(df, label_col, _task_count(self.spark, self.cfg), objective == BINARY,
                                      self.cfg.seed, valid_col, counts)

    def _frame(self, df, label_col: str, feature_cols: Sequence[str], objective: str,
               valid_col: Optional[str]) -> Tuple[TrainingFrame, bool]:
        """``(frame, owned)``: a given TrainingFrame as is, else a new one this call must unpersist."""
        if isinstance(df, TrainingFrame):
            return df, False
        from pyspark.sql import functions as F

        data = df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
                         *([F.col(valid_col).cast("boolean").alias(valid_col)] if valid_col else []))
        return self.prepare(data, label_col, objective, valid_col), True

    def train(self, df, label_col: str, feature_cols: Sequence[str], feature_names: Sequence[str],
              objective: str, categorical_indexes: Sequence[int] = (),
              valid_col: Optional[str] = None) -> TrainedBooster:
        frame, owned = self._frame(df, label_col, feature_cols, objective, valid_col)
        try:
            return self._train(frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
                               valid_col)
        finally:
            if owned:
                frame.unpersist()

    def _train(self, frame: TrainingFrame, label_col: str, feature_cols: Sequence[str],
               feature_names: Sequence[str], objective: str, categorical_indexes: Sequence[int],
               valid_col: Optional[str]) -> TrainedBooster:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ SynapseML


class SynapseMLTrainer(Trainer):
    """SynapseML LightGBM on the executors (native LightGBM bundled in the JAR)."""

    backend = "synapseml"

    def estimator(self, objective: str, label_col: str, features_col: str, feature_names: Sequence[str],
                  categorical_indexes: Sequence[int], valid_col: Optional[str], n_tasks: int):
        from synapse.ml.lightgbm import LightGBMClassifier, LightGBMRegressor

        c = self.cfg
        cls = LightGBMClassifier if objective == BINARY else LightGBMRegressor
        est = cls(
            featuresCol=features_col, labelCol=label_col, objective=objective, metric=_METRIC[objective],
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
               valid_col) -> TrainedBooster:
        from pyspark.ml.feature import VectorAssembler
        from pyspark.sql import functions as F

        features_col = "__uplift_features"
        n_tasks = frame.n_tasks
        if valid_col and frame.valid_rows == 0:
            # SynapseML 1.1.3 fails on an empty validation set (None.get in PeekingIterator.peek)
            log.warning("no validation rows for %r: training without early stopping", label_col)
            valid_col = None
        data = frame.df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
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
        data = data.select(features_col, label_col, *([valid_col] if valid_col else []))
        est = self.estimator(objective, label_col, features_col, feature_names, categorical_indexes,
                             valid_col, n_tasks)
        try:
            fitted = est.fit(data)
            model_str = fitted.getNativeModel()
        except Exception as exc:  # py4j errors carry the JVM message: keep it
            raise ModelError(f"SynapseML LightGBM training of {label_col!r} ({objective}) failed: {exc}") from exc
        return TrainedBooster(model_str=model_str, backend=self.backend, num_tasks=n_tasks)


# ------------------------------------------------------------------------------------------ barrier


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s.getsockname()[1]


# Barrier trainer: iterations between two syncs of the validation loss (see global_early_stopping).
_SYNC_EVERY = 10


def replay_early_stopping(state: dict, first: int, parts: Sequence[Sequence], rounds: int) -> bool:
    """Replay the early-stopping rule over synced iterations ``first, first + 1, ...``.

    ``parts`` holds one ``[loss sums per iteration, validation rows]`` per task; the global loss of an
    iteration is the row-weighted mean. Updates ``state["best"]``/``state["best_iter"]`` and returns True
    at the first iteration that is ``rounds`` past the best (LightGBM's ``early_stopping`` rule).
    """
    total_n = sum(p[1] for p in parts)
    for i in range(len(parts[0][0])):
        score = sum(p[0][i] for p in parts) / total_n if total_n else math.inf
        if score < state["best"] - 1e-15:
            state["best"], state["best_iter"] = score, first + i
        if first + i - state["best_iter"] >= rounds:
            return True
    return False


def _barrier_train_fn(params: dict, num_rounds: int, label_col: str, feature_cols: List[str],
                      feature_names: List[str], categorical_indexes: List[int], valid_col: Optional[str],
                      early_stopping_rounds: int, timeout_minutes: int):
    """Build the per-task function (kept free of Spark objects so it serializes cleanly)."""

    def fn(batches):
        import numpy as np
        import pandas as pd
        import socket

        import lightgbm as lgb
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        frames = list(batches)
        pdf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=feature_cols + [label_col] + ([valid_col] if valid_col else []))
        rank = ctx.partitionId()
        # LightGBM finds its own rank by matching an interface IP: names such as "localhost" (Spark's
        # address when SPARK_LOCAL_IP is 127.0.0.1) fail with "Machine list file doesn't contain the
        # local machine", so every task sends its executor's resolved IP.
        host = socket.gethostbyname(ctx.getTaskInfos()[rank].address.rsplit(":", 1)[0])
        port = _free_port()
        peers = ctx.allGather(f"{host}:{port}")
        n_machines = len(peers)
        if valid_col:
            is_valid = pdf[valid_col].astype(bool).to_numpy()
        else:
            is_valid = np.zeros(len(pdf), dtype=bool)
        train_pdf, valid_pdf = pdf[~is_valid], pdf[is_valid]
        if len(train_pdf) == 0:
            raise RuntimeError(f"barrier task {rank} received no training rows")
        local = dict(params)
        if n_machines > 1:
            local.update({
                "machines": ",".join(peers), "local_listen_port": port, "num_machines": n_machines,
                "tree_learner": "data", "pre_partition": True, "time_out": timeout_minutes,
            })
        x = train_pdf[feature_cols].to_numpy(dtype=np.float64)
        y = train_pdf[label_col].to_numpy(dtype=np.float64)
        dtrain = lgb.Dataset(x, y, feature_name=feature_names, categorical_feature=categorical_indexes or "auto",
                             free_raw_data=True)
        valid_sets, callbacks = [], []
        use_valid = early_stopping_rounds > 0 and valid_col is not None
        if use_valid:
            if len(valid_pdf):
                xv = valid_pdf[feature_cols].to_numpy(dtype=np.float64)
                yv = valid_pdf[label_col].to_numpy(dtype=np.float64)
                valid_sets = [lgb.Dataset(xv, yv, reference=dtrain)]
            n_valid = float(len(valid_pdf))
            state = {"best": math.inf, "best_iter": 0, "pending": []}

            def global_early_stopping(env):
                # Every task keeps its local validation loss and all tasks sum them with one allGather
                # every _SYNC_EVERY iterations (each barrier sync costs Spark ~1 s of polling); the
                # stopping rule then replays those iterations in order, so the chosen iteration is
                # the one a per-iteration check would pick, and the extra trees are dropped below.
                local_sum = 0.0
                if env.evaluation_result_list:
                    local_sum = float(env.evaluation_result_list[0][2]) * n_valid
                state["pending"].append(local_sum)
                last = env.iteration == env.end_iteration - 1
                if len(state["pending"]) < _SYNC_EVERY and not last:
                    return
                first = env.iteration - len(state["pending"]) + 1
                parts = [json.loads(p) for p in ctx.allGather(json.dumps([state["pending"], n_valid]))]
                state["pending"] = []
                if replay_early_stopping(state, first, parts, early_stopping_rounds) or last:
                    raise lgb.callback.EarlyStopException(
                        state["best_iter"], [("valid", params["metric"], state["best"], False)])

            callbacks.append(global_early_stopping)
        booster = None
        try:
            booster = lgb.train(local, dtrain, num_boost_round=num_rounds, valid_sets=valid_sets,
                                valid_names=["valid"] * len(valid_sets), callbacks=callbacks)
            best = int(booster.best_iteration or 0)
            text = booster.model_to_string(num_iteration=best if best > 0 else -1)
        finally:
            if n_machines > 1:
                try:
                    # through the booster when there is one, so its __del__ (maybe much later, in
                    # a reused Python worker) does not free the network of a later training
                    if booster is not None:
                        booster.free_network()
                    else:
                        lgb.basic._LIB.LGBM_NetworkFree()
                except Exception:  # noqa: BLE001 - freeing must never mask the real error
                    pass
        if rank == 0:
            yield pd.DataFrame({"model": [text], "best_iteration": [best], "tasks": [n_machines]})

    return fn


class BarrierTrainer(Trainer):
    """PyPI ``lightgbm`` in a Spark barrier stage: one data-parallel LightGBM network over the tasks."""

    backend = "barrier"

    def _train(self, frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
               valid_col) -> TrainedBooster:
        from pyspark.sql import functions as F

        cols = list(feature_cols) + [label_col] + ([valid_col] if valid_col else [])
        data = frame.df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
                               *([F.col(valid_col).cast("boolean").alias(valid_col)] if valid_col else []))
        n_tasks = frame.n_tasks
        params = lightgbm_params(self.cfg, objective)
        params["num_threads"] = int(self.spark.conf.get("spark.task.cpus", "1") or 1)
        if valid_col:
            params["first_metric_only"] = True
        fn = _barrier_train_fn(params, self.cfg.num_iterations, label_col, list(feature_cols),
                               list(feature_names), list(categorical_indexes), valid_col,
                               self.cfg.early_stopping_round if valid_col else 0,
                               max(1, int(math.ceil(self.cfg.timeout_seconds / 60.0))))
        try:
            rows = data.select(*cols).mapInPandas(
                fn, "model string, best_iteration int, tasks int", barrier=True).collect()
        except Exception as exc:
            raise ModelError(f"barrier LightGBM training of {label_col!r} ({objective}) on {n_tasks} "
                             f"tasks failed: {exc}") from exc
        if len(rows) != 1:
            raise ModelError(f"barrier LightGBM training of {label_col!r} returned {len(rows)} models, expected 1")
        return TrainedBooster(model_str=rows[0]["model"], backend=self.backend, num_tasks=int(rows[0]["tasks"]),
                              best_iteration=int(rows[0]["best_iteration"]))


def resolve_backend(spark, backend: str) -> str:
    """``auto`` → SynapseML when its JAR and Python package load in this session, else barrier."""
    if backend == "auto":
        from ..session import synapseml_available

        return "synapseml" if synapseml_available(spark) else "barrier"
    if backend not in ("synapseml", "barrier"):
        raise ModelError(f"model.backend: unknown backend {backend!r} (expected auto, synapseml, barrier)")
    if backend == "synapseml":
        from ..session import synapseml_available

        if not synapseml_available(spark):
            raise ModelError("model.backend is 'synapseml' but SynapseML LightGBM is not on this session's "
                             "classpath: use backend 'barrier' or 'auto'")
    return backend


def make_trainer(spark, cfg: LightGBMConfig, backend: str = "auto") -> Trainer:
    name = resolve_backend(spark, backend)
    return SynapseMLTrainer(spark, cfg) if name == "synapseml" else BarrierTrainer(spark, cfg)


__all__ = [
    "BINARY", "REGRESSION", "TrainedBooster", "Trainer", "SynapseMLTrainer", "BarrierTrainer",
    "lightgbm_params", "make_trainer", "resolve_backend", "partition_for_training", "prepare_training_frame",
    "TrainingFrame", "class_counts", "plan_tasks", "lightgbm_threads", "executor_cores", "cores_of_master",
]
