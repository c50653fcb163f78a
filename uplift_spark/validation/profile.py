"""The aggregation passes every gate reads from, run on the executors; only small results come back.

Pass 1 groups by arm and computes, in one scan: row counts, null/invalid counts, weighted moments of
the numeric features, leakage counts and propensity sums. Pass 2 counts duplicated customer ids (one
shuffle on the id). Pass 3 counts categorical levels per arm (one scan; levels beyond ``max_levels``
per feature are dropped on the executors, so a high-cardinality column cannot flood the driver).

Weights: with known propensities each row weighs 1 / P(own arm | x) (inverse-propensity weighting), so
covariate balance is judged on the population each arm represents — with covariate-dependent
assignment the raw arms differ by design. With equal propensities the weights cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ..config import DataConfig
from .contract import propensity_columns


@dataclass
class ArmProfile:
    """Pass 1 results for one arm value (``None`` = null arm)."""

    rows: int
    values: Dict[str, float] = field(default_factory=dict)

    def get(self, key: str, default: float = 0.0) -> float:
        value = self.values.get(key)
        return default if value is None else value


@dataclass
class Profile:
    arms: Dict[Optional[str], ArmProfile]
    duplicate_ids: int = 0
    duplicate_rows: int = 0
    levels: Dict[Tuple[str, str, str], Tuple[int, float]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.arms.values())

    def total(self, key: str) -> float:
        return sum(p.get(key) for p in self.arms.values())


def _own_propensity(data: DataConfig, usable: set):
    from pyspark.sql import functions as F

    props = {a: c for a, c in propensity_columns(data).items() if c in usable}
    if not props or len(props) != len(data.arms):
        return None
    expr = None
    for arm, col in props.items():
        cond = F.col(data.arm) == F.lit(arm)
        expr = F.when(cond, F.col(col)) if expr is None else expr.when(cond, F.col(col))
    return expr.cast("double")


def _weight(data: DataConfig, usable: set):
    from pyspark.sql import functions as F

    own = _own_propensity(data, usable)
    if own is None:
        return F.lit(1.0), None
    return F.when(own > 0, 1.0 / own).otherwise(F.lit(0.0)), own


def profile(df, data: DataConfig, usable: set, max_levels: int = 50) -> Profile:
    """Run the passes over ``df`` using only the ``usable`` (present, well-typed) columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    arm = F.col(data.arm).cast("string")
    weight, own = _weight(data, usable)
    exprs: Dict[str, object] = {"rows": F.count(F.lit(1))}

    def count_if(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    if data.customer_id in usable:
        exprs["id_null"] = count_if(F.col(data.customer_id).isNull())
    categorical = set(data.categorical_features)
    for feat in data.features:
        if feat not in usable:
            continue
        c = F.col(feat)
        exprs[f"null:{feat}"] = count_if(c.isNull())
        if feat not in categorical:
            x = c.cast("double")
            w = F.when(x.isNotNull(), weight)
            exprs[f"sw:{feat}"] = F.sum(w)
            exprs[f"swx:{feat}"] = F.sum(w * x)
            exprs[f"swx2:{feat}"] = F.sum(w * x * x)
    exprs["sw"] = F.sum(weight)
    if data.assigned_at and data.assigned_at in usable:
        at = F.col(data.assigned_at).cast("timestamp")
        if data.feature_snapshot_at and data.feature_snapshot_at in usable:
            exprs[f"late:{data.feature_snapshot_at}"] = count_if(F.col(data.feature_snapshot_at).cast("timestamp") >= at)
        for feat, col in data.feature_observed_at.items():
            if col in usable:
                exprs[f"late:{col}"] = count_if(F.col(col).cast("timestamp") >= at)
    for spec in data.outcomes:
        if spec.name not in usable:
            continue
        y = F.col(spec.name).cast("double")
        exprs[f"null:{spec.name}"] = count_if(y.isNull())
        if spec.type == "binary":
            exprs[f"bad:{spec.name}"] = count_if(y.isNotNull() & ~y.isin(0.0, 1.0))
        else:
            if spec.min is not None:
                exprs[f"low:{spec.name}"] = count_if(y < F.lit(float(spec.min)))
            if spec.max is not None:
                exprs[f"high:{spec.name}"] = count_if(y > F.lit(float(spec.max)))
    props = propensity_columns(data)
    if own is not None:
        # rows of unknown arms have no own propensity: the unknown_arms gate reports them, not this one
        known = F.col(data.arm).cast("string").isin(*data.arms)
        exprs["prop_bad"] = count_if(known & (own.isNull() | (own <= 0) | (own > 1)))
        row_sum = sum((F.coalesce(F.col(c).cast("double"), F.lit(0.0)) for c in props.values()), F.lit(0.0))
        exprs["prop_sum_err"] = F.max(F.abs(row_sum - 1.0))
        for a, col in props.items():
            exprs[f"prop:{a}"] = F.sum(F.col(col).cast("double"))

    keys = list(exprs)
    aliases = {k: f"a{i}" for i, k in enumerate(keys)}
    rows = df.groupBy(arm.alias("_arm")).agg(*[exprs[k].alias(aliases[k]) for k in keys]).collect()
    arms = {}
    for r in rows:
        values = {k: (None if r[aliases[k]] is None else float(r[aliases[k]])) for k in keys}
        arms[r["_arm"]] = ArmProfile(rows=int(values.pop("rows")), values=values)
    result = Profile(arms=arms)
    if not rows:
        return result

    if data.customer_id in usable:
        dup = (
            df.where(F.col(data.customer_id).isNotNull())
            .groupBy(data.customer_id).agg(F.count(F.lit(1)).alias("n")).where("n > 1")
            .agg(F.count(F.lit(1)).alias("ids"), F.sum(F.col("n") - 1).alias("extra")).first()
        )
        result.duplicate_ids = int(dup["ids"] or 0)
        result.duplicate_rows = int(dup["extra"] or 0)

    cats = [f for f in data.features if f in categorical and f in usable]
    if cats:
        stacked = df.select(
            arm.alias("_arm"), weight.alias("_w"),
            F.explode(F.array(*[
                F.struct(F.lit(f).alias("feature"), F.coalesce(F.col(f).cast("string"), F.lit("<null>")).alias("level"))
                for f in cats
            ])).alias("_kv"),
        )
        counts = stacked.groupBy("_arm", "_kv.feature", "_kv.level").agg(
            F.count(F.lit(1)).alias("n"), F.sum("_w").alias("w")
        )
        totals = counts.groupBy("feature", "level").agg(F.sum("n").alias("total"))
        ranked = totals.withColumn(
            "rank", F.row_number().over(Window.partitionBy("feature").orderBy(F.desc("total"), F.asc("level")))
        ).where(F.col("rank") <= max_levels)
        kept = counts.join(ranked.select("feature", "level"), ["feature", "level"])
        for r in kept.collect():
            result.levels[(r["_arm"], r["feature"], r["level"])] = (int(r["n"]), float(r["w"] or 0.0))
    return result
