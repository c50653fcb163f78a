"""Segments a marketer can act on: bins of the strongest features with predicted and observed uplift.

:func:`segment_uplift` aggregates on Spark (one pass over the rows after small profiling passes) and
returns only the per-(arm, feature, bin) aggregate; :func:`top_segments` then picks the best and worst
segments from that small frame in pandas. Observed uplift is the randomized comparison inside the segment
(treated mean − control mean, Welch standard error), so it checks the model instead of repeating it.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..schemas import require_columns
from .text import fmt

SEGMENT_COLUMNS = ("arm", "feature", "segment", "order", "n", "predicted", "n_t", "n_c", "y_t", "y_c",
                   "observed", "se")
MISSING_LABEL = "missing"
OTHER_LABEL = "other"


def strongest_features(importance: pd.DataFrame, available: Sequence[str], k: int) -> Dict[str, List[str]]:
    """Per arm, the ``k`` features with the largest summed gain share that exist in ``available``.

    ``importance`` holds one learner/outcome of the ``feature_importance`` table (arm, feature,
    gain_share, possibly several models per arm). Features not present as columns (e.g. encoded names)
    are skipped.
    """
    avail = set(available)
    out: Dict[str, List[str]] = {}
    if importance is None or importance.empty:
        return out
    share = "gain_share" if "gain_share" in importance else "gain"
    grouped = importance.groupby(["arm", "feature"], as_index=False)[share].sum()
    for arm, sub in grouped.groupby("arm"):
        ranked = sub.sort_values([share, "feature"], ascending=[False, True])["feature"].tolist()
        out[str(arm)] = [f for f in ranked if f in avail][:k]
    return out


def _edges_label(lo: Optional[float], hi: Optional[float]) -> str:
    if lo is None:
        return f"≤ {fmt(hi)}"
    if hi is None:
        return f"> {fmt(lo)}"
    return f"{fmt(lo)} – {fmt(hi)}"


def _numeric_bins(df, features: Sequence[str], bins: int, rel_error: float, distinct: Dict[str, int]
                  ) -> Dict[str, Tuple[str, list]]:
    """Per numeric feature: ("values", []) when it has at most ``bins`` values (each value is a
    segment), else ("edges", approximate quantile cuts)."""
    from pyspark.sql import functions as F

    if not features:
        return {}
    plan: Dict[str, Tuple[str, list]] = {f: ("values", []) for f in features if distinct[f] <= bins}
    to_cut = [f for f in features if f not in plan]
    if to_cut:
        probs = [i / bins for i in range(1, bins)]
        casted = df.select(*[F.col(f).cast("double").alias(f) for f in to_cut])
        cuts = casted.approxQuantile(to_cut, probs, rel_error)  # one job for all features
        for f, edges in zip(to_cut, cuts):
            plan[f] = ("edges", sorted(set(float(e) for e in edges if e is not None and math.isfinite(e))))
    return plan


def _numeric_expr(f: str, kind: str, points: list):
    """(order, label) Spark columns for a numeric feature's bin."""
    from pyspark.sql import functions as F

    x = F.col(f).cast("double")
    if kind == "values":
        order = x
        label = F.when(x == F.floor(x), x.cast("long").cast("string")).otherwise(x.cast("string"))
        label = F.concat(F.lit("= "), label)
    else:
        order_expr, label_expr = None, None
        bounds = [None] + list(points) + [None]
        for i in range(len(bounds) - 1):
            lo, hi = bounds[i], bounds[i + 1]
            cond = F.lit(True) if hi is None else (x <= F.lit(hi))
            text = _edges_label(lo, hi)
            if order_expr is None:
                order_expr, label_expr = F.when(cond, F.lit(float(i))), F.when(cond, F.lit(text))
            else:
                order_expr, label_expr = order_expr.when(cond, F.lit(float(i))), label_expr.when(cond, F.lit(text))
        order, label = order_expr, label_expr
    order = F.when(x.isNull(), F.lit(1e300)).otherwise(order)
    label = F.when(x.isNull(), F.lit(MISSING_LABEL)).otherwise(label)
    return order, label


def _categorical_expr(df, f: str, max_categories: int, n_distinct: int):
    """(order, label) for a categorical feature: its top categories by count, the rest as 'other'."""
    from pyspark.sql import functions as F

    x = F.col(f).cast("string")
    label = x
    if n_distinct > max_categories:
        top = [r[0] for r in df.where(x.isNotNull()).groupBy(x.alias("v")).count()
               .orderBy(F.desc("count"), F.asc("v")).limit(max_categories).collect()]
        label = F.when(x.isin(top), x).otherwise(F.lit(OTHER_LABEL))
    label = F.when(x.isNull(), F.lit(MISSING_LABEL)).otherwise(label)
    return F.lit(0.0), label


def segment_uplift(df, features: Sequence[str], categorical: Sequence[str], control_arm: str,
                   outcome_col: str, arm_col: str = "arm", actual_arm_col: str = "actual_arm",
                   uplift_col: str = "uplift", bins: int = 5, max_categories: int = 12,
                   rel_error: float = 0.001, features_by_arm: Optional[Dict[str, Sequence[str]]] = None
                   ) -> pd.DataFrame:
    """Mean predicted and observed uplift per (arm, feature, bin) — a small pandas frame.

    ``df`` is long: one row per customer × predicted treatment arm (``arm_col``, with the prediction in
    ``uplift_col``) carrying the customer's actual arm, outcome and feature columns. Observed uplift for
    arm k in a bin compares customers whose actual arm is k with control customers in that bin.
    ``features_by_arm`` limits the bins to each arm's own strongest features.
    Numeric features are cut at approximate quantiles (``bins`` bins; few-valued ones keep their values),
    categorical ones keep their ``max_categories`` most frequent values.
    """
    from pyspark.sql import functions as F

    require_columns(df, (arm_col, actual_arm_col, uplift_col, outcome_col, *features), "segment_uplift")
    features = list(dict.fromkeys(features))
    if not features:
        return pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    cat = [f for f in features if f in set(categorical) or dict(df.dtypes)[f] in ("string", "boolean")]
    num = [f for f in features if f not in cat]
    # one profiling pass for every feature's cardinality (few-valued numerics keep their values)
    distinct = df.agg(*[F.approx_count_distinct(F.col(f)).alias(f"d{i}") for i, f in enumerate(features)]).first()
    distinct = {f: int(distinct[i]) for i, f in enumerate(features)}
    plan = _numeric_bins(df, num, bins, rel_error, distinct)
    structs = []
    for f in features:
        order, label = (_numeric_expr(f, *plan[f]) if f in plan
                        else _categorical_expr(df, f, max_categories, distinct[f]))
        keep = F.lit(True)
        if features_by_arm is not None:
            arms_for_f = [a for a, fs in features_by_arm.items() if f in fs]
            keep = F.col(arm_col).isin(arms_for_f)
        structs.append(F.when(keep, F.struct(F.lit(f).alias("feature"), order.alias("order"),
                                             label.alias("segment"))))
    y = F.col(outcome_col).cast("double")
    is_t = F.col(actual_arm_col) == F.col(arm_col)
    is_c = F.col(actual_arm_col) == F.lit(control_arm)
    exploded = (df.select(F.col(arm_col).alias("arm"), F.col(uplift_col).cast("double").alias("_u"),
                          F.when(is_t, y).alias("_yt"), F.when(is_c, y).alias("_yc"),
                          F.explode(F.filter(F.array(*structs), lambda s: s.isNotNull())).alias("_s"))
                .select("arm", "_u", "_yt", "_yc", "_s.feature", "_s.order", "_s.segment"))
    agg = (exploded.groupBy("arm", "feature", "order", "segment")
           .agg(F.count(F.lit(1)).alias("n"), F.avg("_u").alias("predicted"),
                F.count("_yt").alias("n_t"), F.sum("_yt").alias("s_t"), F.sum(F.col("_yt") * F.col("_yt")).alias("q_t"),
                F.count("_yc").alias("n_c"), F.sum("_yc").alias("s_c"), F.sum(F.col("_yc") * F.col("_yc")).alias("q_c"))
           .toPandas())
    return _finish(agg)


def _finish(agg: pd.DataFrame) -> pd.DataFrame:
    """Means, observed uplift and Welch standard error from the per-bin sums."""
    if agg.empty:
        return pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    out = agg.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        n_t = out["n_t"].astype(float)
        n_c = out["n_c"].astype(float)
        out["y_t"] = np.where(n_t > 0, out["s_t"].astype(float) / n_t, np.nan)
        out["y_c"] = np.where(n_c > 0, out["s_c"].astype(float) / n_c, np.nan)
        var_t = np.where(n_t > 1, (out["q_t"].astype(float) - n_t * out["y_t"] ** 2) / (n_t - 1), np.nan)
        var_c = np.where(n_c > 1, (out["q_c"].astype(float) - n_c * out["y_c"] ** 2) / (n_c - 1), np.nan)
        out["observed"] = out["y_t"] - out["y_c"]
        out["se"] = np.sqrt(np.clip(var_t, 0, None) / n_t + np.clip(var_c, 0, None) / n_c)
    out = out[list(SEGMENT_COLUMNS)].sort_values(["arm", "feature", "order", "segment"]).reset_index(drop=True)
    return out


def top_segments(segments: pd.DataFrame, arm: str, k: int, min_rows: int = 30, z: float = 1.96
                 ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The ``k`` segments with the highest and the ``k`` with the lowest mean predicted uplift for ``arm``.

    Only segments with at least ``min_rows`` treated and control customers qualify (smaller ones have
    intervals too wide to act on). The two lists never share a segment. Adds ``harmed``: the observed
    interval lies entirely below zero, or both the prediction and the observed effect are negative.
    """
    sub = segments[(segments["arm"] == arm) & (segments["n_t"] >= min_rows) & (segments["n_c"] >= min_rows)]
    sub = sub.sort_values(["predicted", "feature", "segment"], ascending=[False, True, True]).copy()
    sub["harmed"] = (sub["observed"] + z * sub["se"] < 0) | ((sub["predicted"] < 0) & (sub["observed"] < 0))
    n_best = min(k, (len(sub) + 1) // 2)  # with few segments, each list gets half
    best = sub.head(n_best)
    rest = sub.iloc[n_best:]
    worst = rest.sort_values(["predicted", "feature", "segment"], ascending=[True, True, True]).head(k)
    return best.reset_index(drop=True), worst.reset_index(drop=True)
