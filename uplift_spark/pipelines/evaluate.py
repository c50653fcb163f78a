"""``uplift-spark evaluate``: exact Qini/uplift curves, metrics with bootstrap CIs and decile calibration.

Reads ``predictions`` (long: one row per customer x treatment arm per learner/outcome/split) and the
actual arm and outcomes from ``experiment_log``. For each learner, treatment arm k, outcome and
split listed in ``evaluation.splits`` that exists, rows whose actual arm is k are treated, control
rows are control and other arms' rows are left out. All of these slices go through one exact scan
(one shuffle), not one scan each. Writes ``uplift_curves``, ``uplift_metrics`` and
``uplift_by_decile`` (each replaced for this run in one Delta commit: reruns are idempotent).
With ``data.cluster`` the bootstrap resamples whole clusters (cluster-robust intervals).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

from ..datasets import resolve_data_config
from ..errors import DataError
from ..evaluation import evaluate_slices
from ..logs import get_logger
from ..schemas import TABLE_COLUMNS, conform, require_columns
from .context import RunContext, Stopwatch

log = get_logger("evaluate")

ID, ARM = "customer_id", "arm"
_ACTUAL, _T, _SCORE, _OUTCOME, _CLUSTER = "_actual_arm", "_treated", "_score", "_outcome", "_cluster"


def _clean(value):
    """NaN/inf → None, NumPy scalars → Python (Delta gets nulls for undefined metrics)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _frame(spark, rows: List[tuple], table: str):
    schema = ", ".join(f"`{c}` {t}" for c, t in TABLE_COLUMNS[table] if c != "*")
    return conform(spark.createDataFrame([tuple(_clean(v) for v in r) for r in rows], schema), table)


def _outcome_binary(cfg, outcome: str) -> Optional[bool]:
    if outcome in cfg.data.outcome_names:
        return cfg.data.outcome(outcome).type == "binary"
    return None  # not configured: detected from the data


def run(ctx: RunContext, **_ignored) -> Dict[str, object]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    cfg, ev, spark = ctx.cfg, ctx.cfg.evaluation, ctx.spark
    watch = Stopwatch()
    preds = ctx.store.read_run("predictions", ctx.run_id)
    experiment = ctx.store.read_run("experiment_log", ctx.run_id)
    control = cfg.data.control_arm

    combos = [r.asDict() for r in preds.groupBy("learner", "outcome", "split", "arm").count().collect()]
    wanted = [s for s in ev.splits if any(c["split"] == s for c in combos)]
    if not wanted:
        have = sorted({c["split"] for c in combos})
        raise DataError(f"predictions: none of evaluation.splits {list(ev.splits)} present for run "
                        f"{ctx.run_id!r} (have {have})")
    outcomes = sorted({c["outcome"] for c in combos})
    require_columns(experiment, outcomes, "experiment_log (outcome named in predictions)")
    cluster = resolve_data_config(cfg).cluster
    require_columns(experiment, [cluster], "data.cluster (experiment_log)")
    cluster_cols = [F.col(cluster).alias(_CLUSTER)] if cluster else []
    if any(c["arm"] == control for c in combos):
        raise DataError(f"predictions: rows for the control arm {control!r}; expected treatment arms only")

    joined = (
        preds.where(F.col("split").isin(wanted))
        .select("learner", "outcome", "split", "arm", ID, F.col("uplift").alias(_SCORE))
        .join(experiment.select(ID, F.col(ARM).alias(_ACTUAL), *outcomes, *cluster_cols), ID)
        .where((F.col(_ACTUAL) == F.col("arm")) | (F.col(_ACTUAL) == F.lit(control)))
        .withColumn(_T, (F.col(_ACTUAL) == F.col("arm")).cast("int"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        counts = {}
        for r in joined.groupBy("learner", "outcome", "split", "arm", _T).count().collect():
            counts[(r["learner"], r["outcome"], r["split"], r["arm"], r[_T])] = r["count"]
        curves, metrics, deciles = [], [], []
        skipped = []
        keys = sorted({(c["learner"], c["outcome"], c["split"], c["arm"]) for c in combos if c["split"] in wanted},
                      key=lambda k: (k[0], k[1], wanted.index(k[2]), k[3]))
        slices = []
        for learner, outcome, split, arm in keys:
            n_t = counts.get((learner, outcome, split, arm, 1), 0)
            n_c = counts.get((learner, outcome, split, arm, 0), 0)
            if n_t == 0 or n_c == 0:
                skipped.append(f"{learner}/{arm}/{outcome}/{split}")
                log.warning("skipping %s/%s/%s/%s: %d treated, %d control rows", learner, arm, outcome, split,
                            n_t, n_c)
                continue
            slices.append((learner, outcome, split, arm))
        if not slices:
            raise DataError(f"evaluate: no (learner, arm, outcome, split) with both treated and control rows "
                            f"(skipped {skipped})")
        # every (learner, outcome, split, arm) is one slice of ONE exact scan (one shuffle for all)
        slice_ids = spark.createDataFrame(
            [(i,) + key for i, key in enumerate(slices)],
            "_slice int, learner string, outcome string, split string, arm string")
        outcome_value = F.lit(None).cast("double")
        for o in outcomes:
            outcome_value = F.when(F.col("outcome") == F.lit(o), F.col(o).cast("double")).otherwise(outcome_value)
        stacked = (joined.join(F.broadcast(slice_ids), ["learner", "outcome", "split", "arm"])
                   .select("_slice", ID, _SCORE, _T, outcome_value.alias(_OUTCOME),
                           *([_CLUSTER] if cluster else [])))
        labels = {i: "/".join((learner, arm, outcome, split)) for i, (learner, outcome, split, arm) in enumerate(slices)}
        results = evaluate_slices(stacked, "_slice", _SCORE, _T, _OUTCOME, ev, id_col=ID, labels=labels,
                                  binary={i: _outcome_binary(cfg, key[1]) for i, key in enumerate(slices)},
                                  cluster_col=_CLUSTER if cluster else None)
        for i, (learner, outcome, split, arm) in enumerate(slices):
            result = results[i]
            key = (ctx.run_id, learner, arm, outcome, split)
            for p in result.curve.itertuples(index=False):
                curves.append(key + (p.point, p.n, p.n_t, p.n_c, p.y_t, p.y_c, p.qini, p.uplift,
                                     p.qini_low, p.qini_high, p.uplift_low, p.uplift_high))
            for m in result.metrics:
                metrics.append(key + (m.metric, m.value, m.ci_low, m.ci_high))
            for d in result.deciles.itertuples(index=False):
                deciles.append(key + (d.decile, d.n_t, d.n_c, d.predicted, d.observed, d.se,
                                      d.treated_mean, d.control_mean))
            log.info("evaluated %s: %d treated, %d control rows", labels[i],
                     counts[(learner, outcome, split, arm, 1)], counts[(learner, outcome, split, arm, 0)])
        evaluated = len(slices)
    finally:
        joined.unpersist()
    locations = {
        "uplift_curves": ctx.store.write(_frame(spark, curves, "uplift_curves"), "uplift_curves", ctx.run_id),
        "uplift_metrics": ctx.store.write(_frame(spark, metrics, "uplift_metrics"), "uplift_metrics", ctx.run_id),
        "uplift_by_decile": ctx.store.write(_frame(spark, deciles, "uplift_by_decile"), "uplift_by_decile",
                                            ctx.run_id),
    }
    headline = {}
    for row in metrics:
        _, learner, arm, outcome, split, name, value, low, high = row
        if name in ("qini_auc", "qini_coefficient") and (name == "qini_auc" or f"{learner}/{arm}/{outcome}/{split}"
                                                         not in headline):
            headline[f"{learner}/{arm}/{outcome}/{split}"] = {"metric": name, "value": _clean(value)}
    return {
        "run_id": ctx.run_id, "evaluated": evaluated, "skipped": skipped, "splits": wanted,
        "rows": {"uplift_curves": len(curves), "uplift_metrics": len(metrics), "uplift_by_decile": len(deciles)},
        "tables": locations, "headline": headline, "seconds": round(watch(), 1),
    }
