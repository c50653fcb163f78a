"""Gates for cluster-randomized experiments (``data.cluster``: household, store, region).

Why: when whole clusters are randomized, the cluster is the independent unit. Customers of one cluster
are correlated, so the sample ratio is judged on clusters per arm (customer counts vary with cluster
size and would flag a sound experiment), balance on cluster-level means, and the intra-cluster
correlation (ICC) of the main outcome gives the design effect ``1 + (n0 - 1) ICC``: the factor by which
customer-level variances are too small. A cluster with members in two arms breaks the design.

Two aggregations on the executors: one row per cluster (never collected), then a handful of sums per
arm. Messages carry counts and the column name only, never a customer or cluster id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..config import DataConfig, ValidationConfig
from .results import FAIL, PASS, WARN, CheckResult, status_above

_MIXED = "<mixed>"


@dataclass
class ClusterArm:
    """Per arm: clusters, customers (rows), and sums the ICC and cluster-level balance need."""

    clusters: int
    rows: int
    sums: Dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float:
        value = self.sums.get(key)
        return 0.0 if value is None else float(value)


@dataclass
class ClusterProfile:
    arms: Dict[Optional[str], ClusterArm]
    mixed_clusters: int = 0
    null_rows: int = 0


def cluster_profile(df, data: DataConfig, usable: set) -> ClusterProfile:
    """Aggregate ``df`` per cluster, then per arm (clusters with two arms are counted apart)."""
    from pyspark.sql import functions as F

    cluster = data.cluster
    arm = F.coalesce(F.col(data.arm).cast("string"), F.lit("<null>"))
    outcome = data.main_outcome if data.outcomes and data.main_outcome in usable else None
    numeric = [f for f in data.features if f in usable and f not in set(data.categorical_features)]
    y = F.col(outcome).cast("double") if outcome else F.lit(None).cast("double")
    per_cluster = [F.count(F.lit(1)).alias("n"), F.min(arm).alias("lo"), F.max(arm).alias("hi"),
                   F.sum(y).alias("sy"), F.sum(y * y).alias("syy"), F.count(y).alias("ny")]
    per_cluster += [F.avg(F.col(f).cast("double")).alias(f"m{i}") for i, f in enumerate(numeric)]
    clusters = df.where(F.col(cluster).isNotNull()).groupBy(F.col(cluster)).agg(*per_cluster)
    label = F.when(F.col("lo") == F.col("hi"), F.col("lo")).otherwise(F.lit(_MIXED))
    ny = F.col("ny").cast("double")
    sums = [F.count(F.lit(1)).alias("clusters"), F.sum("n").alias("rows"),
            F.sum(F.col("ny")).alias("y_n"), F.sum(ny * ny).alias("y_nn"), F.count(F.when(ny > 0, 1)).alias("y_g"),
            F.sum("sy").alias("y_s"), F.sum("syy").alias("y_ss"),
            F.sum(F.when(ny > 0, F.col("sy") * F.col("sy") / ny)).alias("y_between")]
    for i in range(len(numeric)):
        m = F.col(f"m{i}")
        sums += [F.count(m).alias(f"k{i}"), F.sum(m).alias(f"s{i}"), F.sum(m * m).alias(f"q{i}")]
    rows = clusters.groupBy(label.alias("_arm")).agg(*sums).collect()
    arms: Dict[Optional[str], ClusterArm] = {}
    mixed = 0
    for r in rows:
        values = {k: r[k] for k in ("y_n", "y_nn", "y_g", "y_s", "y_ss", "y_between")}
        for i, f in enumerate(numeric):
            values.update({f"k:{f}": r[f"k{i}"], f"s:{f}": r[f"s{i}"], f"q:{f}": r[f"q{i}"]})
        if r["_arm"] == _MIXED:
            mixed = int(r["clusters"])
            continue
        arms[None if r["_arm"] == "<null>" else r["_arm"]] = ClusterArm(int(r["clusters"]), int(r["rows"]),
                                                                        {k: v for k, v in values.items()})
    nulls = df.where(F.col(cluster).isNull()).count()
    return ClusterProfile(arms=arms, mixed_clusters=mixed, null_rows=int(nulls))


def icc_anova(per_arm: List[Dict[str, float]]) -> Dict[str, float]:
    """One-way ANOVA ICC within arms (the arm effect is not cluster variance), from per-arm sums:
    ``y_n`` customers, ``y_nn`` sum of squared sizes, ``y_g`` clusters, ``y_s``/``y_ss`` sums of y and
    y², ``y_between`` sum of S_c² / n_c. Returns icc, n0 (the ANOVA mean cluster size) and the design
    effect ``1 + (n0 - 1) icc``; NaN when there are too few clusters or customers."""
    N = sum(a["y_n"] for a in per_arm)
    G = sum(a["y_g"] for a in per_arm)
    A = sum(1 for a in per_arm if a["y_g"] > 0)
    nan = {"icc": math.nan, "n0": math.nan, "design_effect": math.nan}
    if G - A < 1 or N - G < 1:
        return nan
    ssb = sum(a["y_between"] - a["y_s"] ** 2 / a["y_n"] for a in per_arm if a["y_n"] > 0)
    ssw = sum(a["y_ss"] - a["y_between"] for a in per_arm)
    msb, msw = ssb / (G - A), ssw / (N - G)
    n0 = (N - sum(a["y_nn"] / a["y_n"] for a in per_arm if a["y_n"] > 0)) / (G - A)
    denom = msb + (n0 - 1.0) * msw
    if denom <= 0:
        return nan
    icc = (msb - msw) / denom
    return {"icc": icc, "n0": n0, "design_effect": 1.0 + (n0 - 1.0) * icc}


def cluster_checks(cp: ClusterProfile, data: DataConfig, cfg: ValidationConfig,
                   expected: Dict[str, float], source: str) -> List[CheckResult]:
    """cluster_arms, cluster_count (per arm), srm (on clusters), cluster_balance and design_effect rows."""
    from scipy.stats import chisquare

    col = data.cluster
    out: List[CheckResult] = []
    if cp.mixed_clusters:
        out.append(CheckResult(
            "cluster_arms", FAIL,
            f"{cp.mixed_clusters} cluster(s) of {col!r} have members in more than one arm; a cluster-randomized "
            "experiment assigns one arm per cluster (fix data.cluster or the assignment)",
            column=col, metric=cp.mixed_clusters, threshold=0))
    else:
        out.append(CheckResult("cluster_arms", PASS, f"every cluster of {col!r} has exactly one arm",
                               column=col, metric=0, threshold=0))
    if cp.null_rows:
        out.append(CheckResult(
            "cluster_nulls", WARN, f"{cp.null_rows} row(s) have a null {col!r}: each is treated as its own cluster",
            column=col, metric=cp.null_rows, threshold=0))

    arms = list(data.arms)
    observed = [cp.arms[a].clusters if a in cp.arms else 0 for a in arms]
    for a, g_a in zip(arms, observed):
        rows = cp.arms[a].rows if a in cp.arms else 0
        out.append(CheckResult("cluster_count", PASS if g_a else FAIL,
                               f"arm {a!r}: {g_a} clusters of {col!r} ({rows} customers)",
                               arm=a, column=col, metric=g_a, threshold=1))
    g = sum(observed)
    if g == 0 or len(arms) < 2:
        out.append(CheckResult("srm", FAIL, f"no clusters of {col!r} in the configured arms: cannot test the "
                               "sample ratio", column=col, metric=0.0, threshold=cfg.srm_pvalue))
    else:
        pvalue = float(chisquare(observed, f_exp=[expected[a] * g for a in arms]).pvalue)
        failed = pvalue < cfg.srm_pvalue
        detail = ", ".join(f"{a}: {o} clusters ({o / g:.4f} vs {expected[a]:.4f})" for a, o in zip(arms, observed))
        out.append(CheckResult(
            "srm", FAIL if failed else PASS,
            f"clusters of {col!r} per arm: chi-square p={pvalue:.3g} {'<' if failed else '>='} {cfg.srm_pvalue} "
            f"against {source} ({detail})", column=col, metric=pvalue, threshold=cfg.srm_pvalue))

    control = cp.arms.get(data.control_arm)
    numeric = [f for f in data.features if f not in set(data.categorical_features)]
    if control is not None:
        for arm in data.treatment_arms:
            treated = cp.arms.get(arm)
            if treated is None:
                continue
            for feat in numeric:
                stats = []
                for prof in (treated, control):
                    k = prof.get(f"k:{feat}")
                    if k < 2:
                        break
                    mean = prof.get(f"s:{feat}") / k
                    stats.append((mean, max(prof.get(f"q:{feat}") / k - mean * mean, 0.0)))
                if len(stats) < 2:
                    continue
                (mt, vt), (mc, vc) = stats
                pooled = math.sqrt((vt + vc) / 2.0)
                smd = 0.0 if pooled < 1e-12 else (mt - mc) / pooled
                status = status_above(abs(smd), cfg.smd_warn, cfg.smd_fail)
                msg = (f"standardized difference of cluster means of {feat!r} ({arm!r} vs {data.control_arm!r}) "
                       f"is {smd:+.3f}")
                if status != PASS:
                    msg += f", above {cfg.smd_fail if status == FAIL else cfg.smd_warn}"
                out.append(CheckResult("cluster_balance", status, msg, arm=arm, column=feat, metric=abs(smd),
                                       threshold=cfg.smd_warn))

    if data.outcomes:
        d = icc_anova([a.sums for a in cp.arms.values()])
        outcome = data.main_outcome
        if math.isnan(d["design_effect"]):
            out.append(CheckResult("design_effect", WARN, f"cannot estimate the ICC of {outcome!r} by {col!r} "
                                   "(too few clusters or customers)", column=outcome))
        else:
            out.append(CheckResult(
                "design_effect", PASS,
                f"ICC of {outcome!r} within clusters of {col!r} is {d['icc']:.4f} at mean cluster size "
                f"{d['n0']:.2f}: design effect {d['design_effect']:.3f} (customer-level variances would be "
                f"{d['design_effect']:.2f}x too small; intervals here are cluster-robust)",
                column=outcome, metric=d["design_effect"], threshold=1.0))
    return out


__all__ = ["ClusterProfile", "cluster_checks", "cluster_profile", "icc_anova"]
