"""Per-task backend: each booster trains with PyPI ``lightgbm`` inside ONE Spark task on all its rows.

Why: a data-parallel booster pays a LightGBM network set-up, a Spark-rows to LightGBM conversion and
(SynapseML) a driver collect of the validation rows, however small it is. A T-learner's boosters are
independent and, per arm, usually fit in one executor, so they train side by side, one per task, as
"many models" jobs do on Spark. Early stopping uses the ``valid`` rows of the same booster, in the same
task, with LightGBM's own callback; only the model text (small) comes back to the driver.

Layout: :meth:`PerTaskTrainer.prepare` caches the rows as they are (no repartition: one task reads all
of a booster's partitions through ``coalesce(1)``); :meth:`PerTaskTrainer.train_many` unions the
boosters' ``coalesce(1)`` inputs, so partition ``i`` of ONE ``mapInPandas`` job holds booster ``i``.
"""

from __future__ import annotations

import re
from functools import reduce
from typing import Dict, List, Sequence

from ..errors import ModelError
from ..logs import get_logger
from .frames import BINARY, TrainingFrame, class_counts, cores_of_master, plan_tasks
from .trainer_base import BoosterSpec, TrainedBooster, Trainer, lightgbm_params

log = get_logger("learners.per_task")

PER_TASK = "per_task"
DISTRIBUTED = "distributed"
# Share of one executor's memory a per-task booster's raw float64 rows may take: the task holds them
# about three times (Arrow batches, the pandas frame, the NumPy train/valid arrays) next to LightGBM's
# binned copy, and other tasks of the executor train at the same time.
MEMORY_SHARE = 0.25
_KEY = "__booster"
_Y = "__label"
_V = "__valid"
_W = "__weight"

_UNITS = {"k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40, "p": 2 ** 50}


def memory_bytes(text: str) -> int:
    """Bytes of a JVM/Spark memory setting ("1g", "512m", "4096k"; a bare number is MiB, as Spark reads
    ``spark.executor.memory``)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgtp]?)b?\s*", str(text or "").lower())
    if not m:
        raise ModelError(f"cannot read the memory setting {text!r} (expected e.g. 4g or 512m)")
    return int(m.group(1)) * _UNITS.get(m.group(2) or "m")


def default_per_task_max_bytes(spark) -> int:
    """``model.per_task_max_bytes: 0``: a quarter of one executor's memory per concurrent task.

    Executor memory is ``spark.executor.memory`` (``spark.driver.memory`` on a ``local[...]`` master,
    where the driver JVM runs the tasks); concurrent tasks are the executor's cores (``local[n]``/
    ``local-cluster`` from the master URL, else ``spark.executor.cores``, else default parallelism per
    executor) divided by ``spark.task.cpus``.
    """
    sc = spark.sparkContext
    conf = sc.getConf()
    master = sc.master or ""
    local = re.fullmatch(r"local(\[.*\])?", master) is not None
    mem = memory_bytes(conf.get("spark.driver.memory" if local else "spark.executor.memory", "1g"))
    cores = cores_of_master(master) or int(conf.get("spark.executor.cores", "0") or 0)
    if cores <= 0:
        try:  # e.g. Databricks/standalone: every core of the worker; executors = memory status minus driver
            executors = max(1, sc._jsc.sc().getExecutorMemoryStatus().size() - 1)
        except Exception:  # noqa: BLE001 - an estimate only
            executors = 1
        cores = max(1, sc.defaultParallelism // executors)
    slots = max(1, cores // max(1, int(conf.get("spark.task.cpus", "1") or 1)))
    return int(mem * MEMORY_SHARE / slots)


def booster_bytes(rows: int, n_features: int) -> int:
    """The size ``auto`` compares with ``per_task_max_bytes``: training rows x features x 8 bytes."""
    return int(rows) * int(n_features) * 8


def _per_task_worker(boosters: Dict[int, dict], n_features: int, with_valid: bool, weighted: bool = False):
    """The function every task runs: train the booster(s) whose rows it holds (Spark objects free)."""
    feature_cols = [f"__f{j}" for j in range(n_features)]

    def fn(batches):
        import time

        import lightgbm as lgb
        import pandas as pd

        from .barrier_trainer import _datasets

        parts = list(batches)
        if not parts:
            return
        pdf = pd.concat(parts, ignore_index=True)
        del parts
        for key, rows in pdf.groupby(_KEY, sort=True):
            spec = boosters[int(key)]
            started = time.perf_counter()
            use_valid = with_valid and spec["early_stopping_round"] > 0
            dtrain, valid_sets, _ = _datasets(rows, _Y, feature_cols, spec["feature_names"],
                                              spec["categorical_indexes"], _V if with_valid else None, use_valid,
                                              _W if weighted else None)
            callbacks = []
            if valid_sets:
                callbacks.append(lgb.early_stopping(spec["early_stopping_round"], first_metric_only=True,
                                                    verbose=False))
            booster = lgb.train(spec["params"], dtrain, num_boost_round=spec["num_iterations"],
                                valid_sets=valid_sets, valid_names=["valid"] * len(valid_sets), callbacks=callbacks)
            best = int(booster.best_iteration or 0) if valid_sets else 0
            text = booster.model_to_string(num_iteration=best if best > 0 else -1)
            yield pd.DataFrame({"booster": [int(key)], "model": [text], "best_iteration": [best],
                                "seconds": [time.perf_counter() - started]})

    return fn


class PerTaskTrainer(Trainer):
    """PyPI ``lightgbm`` on all of a booster's rows in one Spark task; independent boosters in parallel."""

    backend = PER_TASK

    def prepare(self, df, label_col, objective, valid_col=None, counts=None) -> TrainingFrame:
        """``df`` cached as it is (no shuffle) after the class checks; one job fills the cache so the
        caller may drop the cache ``df`` was derived from."""
        from pyspark import StorageLevel

        if counts is None:
            counts = class_counts(df, label_col, objective == BINARY, valid_col)
        plan_tasks(counts, label_col, 1, objective == BINARY)  # raises on no rows / one class / non-0/1
        owns = df.storageLevel == StorageLevel.NONE
        cached = df.persist(StorageLevel.MEMORY_AND_DISK) if owns else df
        cached.count()
        return TrainingFrame(cached, cached.rdd.getNumPartitions(), False, (), 0, owns, PER_TASK)

    def _train(self, frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
               valid_col, weight_col=None) -> TrainedBooster:
        return self.run([BoosterSpec(frame, label_col, feature_cols, feature_names, objective,
                                     categorical_indexes, valid_col, weight_col)])[0]

    def train_many(self, specs: Sequence[BoosterSpec]) -> List[TrainedBooster]:
        ready, owned = self._lay_out(specs)
        try:
            results = self.run(ready)
        finally:
            for frame in owned:
                frame.unpersist()
        self.trained.extend(results)
        return results

    def run(self, specs: Sequence[BoosterSpec]) -> List[TrainedBooster]:
        """Train prepared boosters: one Spark job per group of equal layout (feature count, validation)."""
        results: List[TrainedBooster] = [None] * len(specs)  # type: ignore[list-item]
        groups: Dict[tuple, List[int]] = {}
        for i, s in enumerate(specs):
            groups.setdefault((len(s.feature_cols), bool(s.valid_col), bool(s.weight_col)), []).append(i)
        for (n_features, with_valid, weighted), idx in groups.items():
            for i, res in zip(idx, self._run_group([specs[i] for i in idx], n_features, with_valid, weighted)):
                results[i] = res
        return results

    def _run_group(self, specs: Sequence[BoosterSpec], n_features: int, with_valid: bool,
                   weighted: bool = False) -> List[TrainedBooster]:
        from pyspark.sql import functions as F

        threads = int(self.spark.conf.get("spark.task.cpus", "1") or 1)
        inputs, boosters = [], {}
        for i, s in enumerate(specs):
            params = lightgbm_params(self.cfg, s.objective)
            params["num_threads"] = threads
            if with_valid:
                params["first_metric_only"] = True
            boosters[i] = {"params": params, "num_iterations": self.cfg.num_iterations,
                           "early_stopping_round": self.cfg.early_stopping_round if with_valid else 0,
                           "feature_names": list(s.feature_names),
                           "categorical_indexes": list(s.categorical_indexes)}
            frame = s.frame if isinstance(s.frame, TrainingFrame) else None
            df = frame.df if frame is not None else s.frame
            inputs.append(df.select(
                F.lit(i).cast("int").alias(_KEY),
                *[F.col(c).cast("double").alias(f"__f{j}") for j, c in enumerate(s.feature_cols)],
                F.col(s.label_col).cast("double").alias(_Y),
                *([F.col(s.weight_col).cast("double").alias(_W)] if weighted else []),
                *([F.coalesce(F.col(s.valid_col).cast("boolean"), F.lit(False)).alias(_V)] if with_valid else []),
            ).coalesce(1))  # no shuffle: one task reads all of this booster's partitions
        data = reduce(lambda a, b: a.unionByName(b), inputs)
        fn = _per_task_worker(boosters, n_features, with_valid, weighted)
        labels = sorted({s.label_col for s in specs})
        try:
            rows = data.mapInPandas(fn, "booster int, model string, best_iteration int, seconds double").collect()
        except Exception as exc:
            raise ModelError(f"per-task LightGBM training of {len(specs)} booster(s) on {labels} failed: "
                             f"{_last_line(exc)}") from exc
        by_key = {int(r["booster"]): r for r in rows}
        missing = sorted(set(range(len(specs))) - set(by_key))
        if missing:
            raise ModelError(f"per-task LightGBM training of {labels} returned no model for booster(s) {missing}")
        log.debug("per-task training of %d booster(s): %s", len(specs),
                  ", ".join(f"{by_key[i]['seconds']:.1f}s" for i in range(len(specs))))
        return [TrainedBooster(model_str=by_key[i]["model"], backend=PER_TASK, num_tasks=1,
                               best_iteration=int(by_key[i]["best_iteration"]), strategy=PER_TASK)
                for i in range(len(specs))]


def _last_line(exc: Exception) -> str:
    """The cause of a Python worker failure (its last non-empty line), not the whole JVM stack."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    cause = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (cause[-1] if cause else (lines[-1] if lines else type(exc).__name__))[:500]


__all__ = ["PerTaskTrainer", "PER_TASK", "DISTRIBUTED", "default_per_task_max_bytes", "memory_bytes",
           "booster_bytes", "MEMORY_SHARE"]
