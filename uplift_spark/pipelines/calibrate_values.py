"""Calibrated expected values for ``decide`` and the held-out value beside them in ``decision_summary``.

Why here: the maths lives in :mod:`uplift_spark.policy.calibration`; this module only reads the run's
tables (predictions on the calibration split, the experiment log's arms and outcomes) and adds columns,
so ``decide``'s allocation is untouched.

* ``decisions.expected_uplift_calibrated`` = the chosen arm's predicted uplift mapped through that arm's
  held-out calibration; ``expected_value_calibrated`` = ``expected_value`` + benefit × (calibrated −
  predicted uplift) (costs and the risk penalty as predicted); both 0 for ``none``.
* ``decision_summary`` gains the same sums per bucket × action and one ``kind = "total"`` row (all
  contacts) with the interval of its calibrated value (``calibrated_ci_*``: the calibration is itself an
  estimate from a few thousand held-out customers, and isotonic fits lean upward at the top); ``evaluate-policy`` fills that row's ``held_out_*`` columns with its AIPW estimate of the
  policy's gain on a held-out split, scaled to the decided population (it runs after ``decide``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError, PolicyError
from ..logs import get_logger
from ..policy.calibration import ArmCalibration, bin_sums, fit
from ..policy.value import economics
from ..schemas import slug, uplift_column
from .context import RunContext

log = get_logger("calibrate_values")

CALIBRATED_COLUMNS = ("expected_uplift_calibrated", "expected_value_calibrated")
HELD_OUT_COLUMNS = ("held_out_value", "held_out_ci_low", "held_out_ci_high", "held_out_split")
CALIBRATED_CI_COLUMNS = ("calibrated_ci_low", "calibrated_ci_high")


def calibration_maps(ctx: RunContext, treatment_arms: Sequence[str]) -> Tuple[Optional[Dict[str, ArmCalibration]], str]:
    """Each treatment arm's map fitted on ``policy.calibration_split``, or (None, why not).

    The learner and outcome are those ``score`` used (``policy.learner`` / ``policy.outcome``). A split
    evaluate-policy judges the policy on is refused: calibrating on it would make the two numbers agree
    by construction.
    """
    from pyspark.sql import functions as F

    from ..learners import load_manifest
    from .evaluate_policy import design_propensities
    from .score import _policy_outcome, choose_models
    from .train import data_config

    cfg, store = ctx.cfg, ctx.store
    p = cfg.policy
    split = p.calibration_split
    if split in cfg.policy_evaluation.splits:
        raise PolicyError(f"policy.calibration_split: {split!r} is a split evaluate-policy judges the policy on "
                          f"(policy_evaluation.splits {list(cfg.policy_evaluation.splits)}); use 'valid'")
    if not store.exists("predictions"):
        return None, "the run has no predictions table"
    try:
        manifest = load_manifest(ctx.model_dir)
    except Exception as exc:  # noqa: BLE001 - decide works from scores alone; calibration needs the manifest
        return None, f"no model manifest ({type(exc).__name__})"
    outcome = _policy_outcome(ctx, manifest)
    learner = choose_models(manifest, p.learner, [outcome], tuple(cfg.model.learners) or ("t", "x"))[outcome]["learner"]
    preds = store.read("predictions", run_id=ctx.run_id).where(
        (F.col("learner") == learner) & (F.col("outcome") == outcome) & (F.col("split") == split))
    if preds.limit(1).count() == 0:
        return None, (f"no {learner}-learner predictions for {outcome!r} on split {split!r} "
                      "(add it to predict.splits)")
    log_df = store.read_run("experiment_log", ctx.run_id)
    data = data_config(ctx, log_df)
    if outcome not in log_df.columns:
        raise DataError(f"experiment_log: policy outcome column {outcome!r} is missing")
    control = manifest.get("control_arm", data.control_arm)
    all_arms = [control] + list(treatment_arms)
    w_expr = F.lit(-1)
    for i, a in reversed(list(enumerate(all_arms))):
        w_expr = F.when(F.col(data.arm).cast("string") == a, F.lit(i)).otherwise(w_expr)
    try:
        e_cols, _ = design_propensities(cfg, log_df.columns, all_arms, split)
        weight = F.lit(1.0)
        for i in reversed(range(len(all_arms))):
            weight = F.when(w_expr == i, F.lit(1.0) / e_cols[i]).otherwise(weight)
    except DataError:
        weight = F.lit(1.0)  # randomized with unknown but arm-constant propensities: plain means per bin
    log_rows = log_df.select(F.col(data.customer_id).cast("string").alias("customer_id"), w_expr.alias("w"),
                             F.col(outcome).cast("double").alias("y"), weight.alias("wt"))
    wide = preds.groupBy("customer_id").agg(
        *[F.max(F.when(F.col("arm") == a, F.col("uplift"))).alias(f"pred_{k}")
          for k, a in enumerate(treatment_arms, start=1)])
    from pyspark import StorageLevel

    frame = wide.join(log_rows, "customer_id").where((F.col("w") >= 0) & F.col("y").isNotNull())
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)  # read twice per arm (quantiles, then sums)
    try:
        maps = fit(bin_sums(frame, list(treatment_arms), p.calibration_bins, "wt"))
    finally:
        frame.unpersist()
    for arm, cal in maps.items():
        log.info("calibration %s on %s (%d customers): predicted %s -> held-out %s", arm, split, cal.customers,
                 [round(v, 4) for v in cal.predicted], [round(v, 4) for v in cal.calibrated])
    return maps, ""


def calibrated_uplift_frame(wide, maps: Dict[str, ArmCalibration], arms: Sequence[str]):
    """``wide`` with each arm's ``uplift_<arm>`` replaced by its calibrated value (``policy.calibrated``);
    the predictions are kept as ``__pred_<arm>`` so the decisions still report them."""
    from pyspark.sql import functions as F

    out = wide
    for arm in arms:
        col = uplift_column(arm)
        out = out.withColumn(f"__pred_{slug(arm)}", F.col(col)).withColumn(col, maps[arm].expression(F.col(col)))
    return out


def add_calibrated(decisions, maps: Optional[Dict[str, ArmCalibration]], policy_cfg, arms: Sequence[str],
                   decided_on_calibrated: bool = False, predictions=None):
    """Decisions + :data:`CALIBRATED_COLUMNS` (null when there is no calibration).

    With ``decided_on_calibrated`` the decisions' expected columns hold calibrated values; ``predictions``
    (customer_id + ``__pred_<arm>``) restores the model's prediction in ``expected_uplift``/``expected_value``.
    """
    from pyspark.sql import functions as F

    if maps is None:
        return (decisions.withColumn(CALIBRATED_COLUMNS[0], F.lit(None).cast("double"))
                         .withColumn(CALIBRATED_COLUMNS[1], F.lit(None).cast("double")))
    benefit = {a: float(economics(policy_cfg, a).benefit) for a in arms}
    if decided_on_calibrated:
        pred = F.lit(0.0)
        for a in arms:
            pred = F.when(F.col("action") == a, F.col(f"__pred_{slug(a)}")).otherwise(pred)
        out = decisions.join(predictions, "customer_id", "left")
        out = (out.withColumn(CALIBRATED_COLUMNS[0], F.col("expected_uplift"))
                  .withColumn(CALIBRATED_COLUMNS[1], F.col("expected_value"))
                  .withColumn("__p", F.coalesce(pred.cast("double"), F.lit(0.0))))
        delta = F.lit(0.0)
        for a in arms:
            delta = F.when(F.col("action") == a, F.lit(benefit[a]) * (F.col("__p") - F.col("expected_uplift"))).otherwise(delta)
        out = out.withColumn("expected_value", F.col("expected_value") + delta).withColumn("expected_uplift", F.col("__p"))
        return out.drop("__p", *[f"__pred_{slug(a)}" for a in arms])
    cal = F.lit(0.0)
    for a in arms:
        cal = F.when(F.col("action") == a, maps[a].expression(F.col("expected_uplift"))).otherwise(cal)
    out = decisions.withColumn(CALIBRATED_COLUMNS[0], cal)
    delta = F.lit(0.0)
    for a in arms:
        delta = F.when(F.col("action") == a, F.lit(benefit[a]) * (F.col(CALIBRATED_COLUMNS[0]) - F.col("expected_uplift"))).otherwise(delta)
    return out.withColumn(CALIBRATED_COLUMNS[1], F.col("expected_value") + delta)


def calibrated_value_interval(written_decisions, maps: Optional[Dict[str, ArmCalibration]], policy_cfg,
                              arms: Sequence[str], ci_level: float) -> Tuple[Optional[float], Optional[float]]:
    """Interval of the contacts' total ``expected_value_calibrated`` from the calibration's own noise.

    Costs are known, so only benefit_k × Σ calibrated uplift_k varies; each arm's SE comes from its bins
    (:meth:`ArmCalibration.sum_se`) and the arms' SEs are added, not squared (their bins share the
    control customers, so they are not independent: the sum is the bound that holds whatever their
    correlation). One aggregation of the decisions: arms × knots numbers reach the driver.
    """
    from pyspark.sql import functions as F
    from scipy.stats import norm

    if not maps:
        return None, None
    aggs = []
    for k, a in enumerate(arms):
        if a in maps:
            aggs += [F.sum(F.when(F.col("action") == a, h).otherwise(0.0)).alias(f"h{k}_{j}")
                     for j, h in enumerate(maps[a].hat_expressions(F.col("expected_uplift")))]
    if not aggs:
        return None, None
    total_col = F.sum(F.when(F.col("action") != "none", F.col(CALIBRATED_COLUMNS[1]))).alias("total")
    row = written_decisions.agg(total_col, *aggs).first().asDict()  # one pass: the total and the knot weights
    se = 0.0
    for k, a in enumerate(arms):
        if a in maps:
            knots = [row[f"h{k}_{j}"] or 0.0 for j in range(len(maps[a].predicted))]
            se += abs(float(economics(policy_cfg, a).benefit)) * maps[a].sum_se(knots)
    total = row["total"]
    if total is None or not np.isfinite(se):
        return None, None
    z = float(norm.ppf(0.5 + ci_level / 2))
    return float(total) - z * se, float(total) + z * se


def summary_with_calibration(spark, summary_df, written_decisions, interval: Tuple[Optional[float], Optional[float]] = (None, None)):
    """``decision_summary`` rows + calibrated sums per bucket × action + the ``total`` row (all contacts),
    whose ``calibrated_ci_low``/``calibrated_ci_high`` are ``interval`` (:func:`calibrated_value_interval`).

    Sums come from one aggregation of the written decisions (bucket × action rows reach the driver).
    """
    from pyspark.sql import functions as F

    agg = (written_decisions.groupBy("bucket", "action")
           .agg(F.sum(CALIBRATED_COLUMNS[0]).alias(CALIBRATED_COLUMNS[0]),
                F.sum(CALIBRATED_COLUMNS[1]).alias(CALIBRATED_COLUMNS[1])))
    out = summary_df.join(agg, ["bucket", "action"], "left")
    for c in HELD_OUT_COLUMNS + CALIBRATED_CI_COLUMNS:
        out = out.withColumn(c, F.lit(None).cast("string" if c == "held_out_split" else "double"))
    alloc = out.where((F.col("kind") == "allocation") & (F.col("action") != "none"))
    sums = ["customers", "cost", "expected_uplift", "expected_value", *CALIBRATED_COLUMNS]
    total = alloc.groupBy("run_id", "campaign_id").agg(*[F.sum(c).alias(c) for c in sums])
    total = total.select("*", F.lit("total").alias("kind"),
                         *[F.lit(v).cast("double").alias(c) for c, v in zip(CALIBRATED_CI_COLUMNS, interval)])
    return out.unionByName(total, allowMissingColumns=True)


def with_held_out(store, run_id: str, headline: Dict[str, dict], population: int) -> Optional[str]:
    """Rewrite the run's ``decision_summary`` with the held-out estimate on its ``total`` row(s).

    The estimate is evaluate-policy's AIPW gain per customer (first split in ``headline``) × the customers
    in the run's decisions (``population`` when there are none); rewriting the same values on a rerun leaves one copy (idempotent per run id).
    """
    from pyspark.sql import functions as F

    if not headline or not store.exists("decision_summary"):
        return None
    current = store.read("decision_summary", run_id=run_id)
    if "held_out_value" not in current.columns or current.where(F.col("kind") == "total").limit(1).count() == 0:
        log.warning("decision_summary of run %s has no total row: rerun decide to set the held-out value beside it",
                    run_id)
        return None
    split = next(iter(headline))
    gain = headline[split]["gain"]
    if store.exists("decisions"):
        population = store.read("decisions", run_id=run_id).count() or population  # the customers decided on
    values = {"held_out_value": float(gain["estimate"]) * population,
              "held_out_ci_low": float(gain["ci_low"]) * population,
              "held_out_ci_high": float(gain["ci_high"]) * population, "held_out_split": split}
    rows = []
    for r in current.collect():  # bucket × action + constraint rows: small
        d = r.asDict()
        if d["kind"] == "total":
            d.update(values)
        rows.append(tuple(d[c] for c in current.columns))
    from ..schemas import conform

    df = conform(store.spark.createDataFrame(rows, current.schema), "decision_summary")
    return store.write(df, "decision_summary", run_id)


__all__: List[str] = ["calibration_maps", "calibrated_uplift_frame", "add_calibrated", "calibrated_value_interval",
                      "summary_with_calibration", "with_held_out", "CALIBRATED_COLUMNS", "CALIBRATED_CI_COLUMNS",
                      "HELD_OUT_COLUMNS"]
