"""Barrier backend: PyPI ``lightgbm`` inside a Spark barrier stage (``mapInPandas(..., barrier=True)``).

Every task learns its peers' ``host:port`` through ``allGather`` and joins one data-parallel LightGBM
network (the pattern of ``lightgbm.dask`` and ``xgboost.spark``). Used where the SynapseML JAR is
absent. Early stopping stays consistent across machines because each iteration's validation loss is
summed over all tasks with ``allGather`` before any task decides to stop.

As in ``lightgbm/dask.py``, the network set-up, the datasets and the early-stopping callback are
helpers of their own; the per-task worker (:func:`_barrier_worker`) only wires them together.
Only public ``lightgbm`` API is used: the network is freed through the booster that owns it.
"""

from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ModelError
from .trainer_base import TrainedBooster, Trainer, lightgbm_params

# Iterations between two syncs of the validation loss (see _global_early_stopping).
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


# ------------------------------------------------------------------ network set-up (run inside a task)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s.getsockname()[1]


def _network_params(ctx, timeout_minutes: int) -> Tuple[Dict[str, object], int]:
    """``(LightGBM network params, number of machines)`` agreed by all tasks of the barrier stage.

    LightGBM finds its own rank by matching an interface IP: names such as "localhost" (Spark's address
    when SPARK_LOCAL_IP is 127.0.0.1) fail with "Machine list file doesn't contain the local machine",
    so every task sends its executor's resolved IP.
    """
    import socket

    rank = ctx.partitionId()
    host = socket.gethostbyname(ctx.getTaskInfos()[rank].address.rsplit(":", 1)[0])
    port = _free_port()
    peers = ctx.allGather(f"{host}:{port}")
    if len(peers) == 1:
        return {}, 1
    return {"machines": ",".join(peers), "local_listen_port": port, "num_machines": len(peers),
            "tree_learner": "data", "pre_partition": True, "time_out": timeout_minutes}, len(peers)


def _datasets(pdf, label_col: str, feature_cols: List[str], feature_names: List[str],
              categorical_indexes: List[int], valid_col: Optional[str], with_valid: bool,
              weight_col: Optional[str] = None):
    """``(train Dataset, [valid Dataset] or [], validation rows)`` of this task's rows; with
    ``weight_col`` the "rows" are the validation weights (LightGBM's metric is then weighted)."""
    import lightgbm as lgb
    import numpy as np

    is_valid = pdf[valid_col].astype(bool).to_numpy() if valid_col else np.zeros(len(pdf), dtype=bool)
    train_pdf, valid_pdf = pdf[~is_valid], pdf[is_valid]
    if len(train_pdf) == 0:
        raise RuntimeError("barrier task received no training rows")
    def weights(part):
        return part[weight_col].to_numpy(dtype=np.float64) if weight_col else None

    dtrain = lgb.Dataset(train_pdf[feature_cols].to_numpy(dtype=np.float64),
                         train_pdf[label_col].to_numpy(dtype=np.float64), feature_name=feature_names,
                         categorical_feature=categorical_indexes or "auto", free_raw_data=True,
                         weight=weights(train_pdf))
    valid_sets = []
    if with_valid and len(valid_pdf):
        valid_sets = [lgb.Dataset(valid_pdf[feature_cols].to_numpy(dtype=np.float64),
                                  valid_pdf[label_col].to_numpy(dtype=np.float64), reference=dtrain,
                                  weight=weights(valid_pdf))]
    n_valid = float(weights(valid_pdf).sum()) if weight_col else float(len(valid_pdf))
    return dtrain, valid_sets, n_valid


def _global_early_stopping(ctx, metric: str, n_valid: float, rounds: int):
    """Callback: every task keeps its local validation loss and all tasks sum them with one allGather
    every ``_SYNC_EVERY`` iterations (each barrier sync costs Spark ~1 s of polling); the stopping rule
    then replays those iterations in order, so the chosen iteration is the one a per-iteration check
    would pick, and the extra trees are dropped when the model text is written."""
    import lightgbm as lgb

    state = {"best": math.inf, "best_iter": 0, "pending": []}

    def callback(env):
        local_sum = float(env.evaluation_result_list[0][2]) * n_valid if env.evaluation_result_list else 0.0
        state["pending"].append(local_sum)
        last = env.iteration == env.end_iteration - 1
        if len(state["pending"]) < _SYNC_EVERY and not last:
            return
        first = env.iteration - len(state["pending"]) + 1
        parts = [json.loads(p) for p in ctx.allGather(json.dumps([state["pending"], n_valid]))]
        state["pending"] = []
        if replay_early_stopping(state, first, parts, rounds) or last:
            raise lgb.callback.EarlyStopException(state["best_iter"], [("valid", metric, state["best"], False)])

    return callback


def _booster_keeper(holder: dict):
    """Callback remembering the booster being trained, so a failed ``lgb.train`` can still free its
    network now (through the public ``Booster.free_network``) rather than in a much later ``__del__``
    of a reused Python worker, where it would tear down a later training's network."""
    def callback(env):
        holder["booster"] = env.model

    callback.order = 0
    return callback


def _free_network(booster) -> None:
    try:
        if booster is not None:
            booster.free_network()
    except Exception:  # noqa: BLE001 - freeing must never mask the real error
        pass


# ------------------------------------------------------------------ the per-task worker


def _barrier_worker(params: dict, num_rounds: int, label_col: str, feature_cols: List[str],
                    feature_names: List[str], categorical_indexes: List[int], valid_col: Optional[str],
                    early_stopping_rounds: int, timeout_minutes: int, weight_col: Optional[str] = None):
    """The function each barrier task runs (free of Spark objects so it serializes cleanly)."""

    def fn(batches):
        import lightgbm as lgb
        import pandas as pd
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        parts = list(batches)
        pdf = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=feature_cols + [label_col] + ([weight_col] if weight_col else []) + ([valid_col] if valid_col else []))
        network, n_machines = _network_params(ctx, timeout_minutes)
        use_valid = early_stopping_rounds > 0 and valid_col is not None
        dtrain, valid_sets, n_valid = _datasets(pdf, label_col, feature_cols, feature_names,
                                                categorical_indexes, valid_col, use_valid, weight_col)
        held: dict = {}
        callbacks = [_booster_keeper(held)]
        if use_valid:
            callbacks.append(_global_early_stopping(ctx, params["metric"], n_valid, early_stopping_rounds))
        booster = None
        try:
            booster = lgb.train(dict(params, **network), dtrain, num_boost_round=num_rounds,
                                valid_sets=valid_sets, valid_names=["valid"] * len(valid_sets), callbacks=callbacks)
            best = int(booster.best_iteration or 0)
            text = booster.model_to_string(num_iteration=best if best > 0 else -1)
        finally:
            if n_machines > 1:
                _free_network(booster if booster is not None else held.get("booster"))
        if ctx.partitionId() == 0:
            yield pd.DataFrame({"model": [text], "best_iteration": [best], "tasks": [n_machines]})

    return fn


class BarrierTrainer(Trainer):
    """PyPI ``lightgbm`` in a Spark barrier stage: one data-parallel LightGBM network over the tasks."""

    backend = "barrier"

    def _train(self, frame, label_col, feature_cols, feature_names, objective, categorical_indexes,
               valid_col, weight_col=None) -> TrainedBooster:
        from pyspark.sql import functions as F

        data = frame.df.select(*[F.col(c).cast("double").alias(c) for c in list(feature_cols) + [label_col]],
                               *([F.col(weight_col).cast("double").alias(weight_col)] if weight_col else []),
                               *([F.col(valid_col).cast("boolean").alias(valid_col)] if valid_col else []))
        n_tasks = frame.n_tasks
        params = lightgbm_params(self.cfg, objective)
        params["num_threads"] = int(self.spark.conf.get("spark.task.cpus", "1") or 1)
        if valid_col:
            params["first_metric_only"] = True
        fn = _barrier_worker(params, self.cfg.num_iterations, label_col, list(feature_cols),
                             list(feature_names), list(categorical_indexes), valid_col,
                             self.cfg.early_stopping_round if valid_col else 0,
                             max(1, int(math.ceil(self.cfg.timeout_seconds / 60.0))), weight_col)
        try:
            rows = data.mapInPandas(fn, "model string, best_iteration int, tasks int", barrier=True).collect()
        except Exception as exc:
            raise ModelError(f"barrier LightGBM training of {label_col!r} ({objective}) on {n_tasks} "
                             f"tasks failed: {exc}") from exc
        if len(rows) != 1:
            raise ModelError(f"barrier LightGBM training of {label_col!r} returned {len(rows)} models, expected 1")
        return TrainedBooster(model_str=rows[0]["model"], backend=self.backend, num_tasks=int(rows[0]["tasks"]),
                              best_iteration=int(rows[0]["best_iteration"]))


__all__ = ["BarrierTrainer", "replay_early_stopping"]
