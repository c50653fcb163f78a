"""Training rows laid out for distributed LightGBM: task counts from the master URL, class checks,
and :class:`TrainingFrame` (one cached partition per LightGBM task), shared by every trainer backend.

Why a module of its own: every backend needs the same answer to "how many tasks, and does every task
hold training rows of both classes?" before a booster can be trained.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from ..config import LightGBMConfig
from ..errors import ModelError
from ..logs import get_logger

log = get_logger("learners.frames")

BINARY = "binary"
REGRESSION = "regression"
# Minority-class rows each task should expect before we trust a random split to give it both classes.
_MIN_CLASS_ROWS_PER_TASK = 10


def task_count(spark, cfg: LightGBMConfig) -> int:
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
    m = re.fullmatch(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,.*\]", master or "")
    if m:
        return int(m.group(1)) * int(m.group(2))
    return cores_of_master(master)


def cores_of_master(master: str) -> int:
    """Cores of one executor implied by a local master URL (0 = not a local master)."""
    m = re.fullmatch(r"local-cluster\[\s*\d+\s*,\s*(\d+)\s*,.*\]", master or "")
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master or "")
    if not m:
        return 0
    n = m.group(1)
    return 1 if n is None else (os.cpu_count() or 1) if n == "*" else int(n)


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
    # "distributed" (one partition per LightGBM task) or "per_task" (rows as they are: ONE task reads them all)
    strategy: str = "distributed"

    def derive(self, df) -> "TrainingFrame":
        """Same rows and partitioning, other columns (``df`` must be a narrow map of ``self.df``)."""
        parts = df.rdd.getNumPartitions()
        if parts != self.n_tasks:
            raise ModelError(f"derived training frame has {parts} partitions, expected {self.n_tasks}: "
                             "only narrow transformations keep the task layout")
        return TrainingFrame(df, self.n_tasks, self.repartitioned, self.partition_rows, self.valid_rows, True,
                             self.strategy)

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


__all__ = ["BINARY", "REGRESSION", "TrainingFrame", "prepare_training_frame", "class_counts", "plan_tasks",
           "task_count", "local_slots", "cores_of_master"]
