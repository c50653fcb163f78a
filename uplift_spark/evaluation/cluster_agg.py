"""Spark plumbing for :mod:`.cluster_se`: per-group cluster moments in two aggregations.

The first aggregation sums a score per (group, cluster) -- as many rows as clusters, never collected; the
second reduces them to six numbers per group, which is all the cluster-robust variance needs.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from .cluster_se import ClusterMoments


def cluster_moments(df, value_col: str, cluster_col: Optional[str], group_cols: Sequence[str] = (),
                    ) -> Dict[Tuple, ClusterMoments]:
    """``{group values: ClusterMoments}`` of ``value_col`` summed per cluster (rows with a null value
    are left out). ``cluster_col=None`` makes every row its own cluster (the customer-level variance)."""
    from pyspark.sql import functions as F

    groups = [F.col(c) for c in group_cols]
    v = F.col(value_col).cast("double")
    rows = df.where(v.isNotNull())
    if cluster_col is None:
        per = rows.select(*groups, v.alias("_s"), F.lit(1.0).alias("_n"))
    else:
        per = rows.groupBy(*groups, F.col(cluster_col)).agg(F.sum(v).alias("_s"),
                                                             F.count(F.lit(1)).cast("double").alias("_n"))
    s, n = F.col("_s"), F.col("_n")
    agg = per.groupBy(*[F.col(c) for c in group_cols]).agg(
        F.count(F.lit(1)).alias("_m_g"), F.sum(n).alias("_m_n"), F.sum(s).alias("_m_s"),
        F.sum(s * s).alias("_m_ss"), F.sum(s * n).alias("_m_sn"), F.sum(n * n).alias("_m_nn"))
    names = ("_m_g", "_m_n", "_m_s", "_m_ss", "_m_sn", "_m_nn")
    return {tuple(r[c] for c in group_cols): ClusterMoments(*(float(r[k]) for k in names)) for r in agg.collect()}


__all__ = ["cluster_moments"]
