"""Spark plumbing for held-out policy value and cost curves: per-customer scores → sums only.

Nothing that grows with customers reaches the driver: the per-customer score vectors are built in
``mapInPandas`` and each partition returns Σ u and Σ u uᵀ (:class:`~.policy_value.Moments`); the cost
curves' global order comes from a range-partitioned sort with per-partition cumulative sums and
offsets (two small collects: per-partition totals, then the crossing segment of each grid spend).

Input frame (one row per held-out customer): ``w`` (actual arm index 0..K, 0 = control), ``y``,
``e_0..e_K`` (design propensities), ``mu_0..mu_K`` (outcome models), ``tie`` (long hash of the id),
``act_<i>`` (arm index chosen by deterministic policy i), ``r_<c>_<k>`` (predicted reward of arm k for
curve c, k = 1..K; null = not available) and optionally a cluster column.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import cost_curves as cc
from .policy_value import Layout, Moments, aipw_scores, policy_columns


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    """What the per-customer score vector holds (plain data: shipped to the executors)."""

    k_arms: int
    benefits: Tuple[float, ...]
    costs: Tuple[float, ...]
    policies: Tuple[str, ...] = ()  # deterministic policies, column act_<i>
    curves: Tuple[str, ...] = ()  # curves, reward columns r_<c>_<k>
    thresholds: Tuple[Tuple[Tuple[float, int, float], ...], ...] = ()  # per curve, per grid point

    def layout(self) -> Layout:
        lay = Layout()
        for k in range(self.k_arms + 1):
            for kind in ("gamma", "ipw", "hit"):
                lay.add(f"arm{k}|{kind}")
        for p in self.policies:
            for col in ("aipw", "ipw", "weight", "cost", *[f"arm_{k}" for k in range(1, self.k_arms + 1)]):
                lay.add(f"{p}|{col}")
        for c, ths in zip(self.curves, self.thresholds):
            for j in range(len(ths)):
                lay.add(f"curve:{c}|{j}")
                for k in range(1, self.k_arms + 1):
                    lay.add(f"curve:{c}|{j}|arm_{k}")
        return lay

    def build(self, pdf) -> np.ndarray:
        """n × m score matrix of one batch (the layout's column order)."""
        k1 = self.k_arms + 1
        n = len(pdf)
        y = pdf["y"].to_numpy(dtype=float)
        w = pdf["w"].to_numpy(dtype=np.int64)
        e = pdf[[f"e_{k}" for k in range(k1)]].to_numpy(dtype=float)
        mu = pdf[[f"mu_{k}" for k in range(k1)]].to_numpy(dtype=float)
        gamma = aipw_scores(y, w, mu, e)
        hit = (w[:, None] == np.arange(k1)[None, :]) / e
        parts = []
        for k in range(k1):
            parts += [gamma[:, k], hit[:, k] * y, hit[:, k]]
        for i, _ in enumerate(self.policies):
            act = pdf[f"act_{i}"].to_numpy(dtype=np.int64)
            pi = np.zeros((n, k1))
            pi[np.arange(n), act] = 1.0
            cols = policy_columns(pi, y, w, e, gamma, self.benefits, self.costs)
            parts += [cols["aipw"], cols["ipw"], cols["weight"], cols["cost"],
                      *[cols[f"arm_{k}"] for k in range(1, k1)]]
        if self.curves:
            b = np.asarray(self.benefits, dtype=float)
            gains = (gamma[:, 1:] - gamma[:, [0]]) * b[None, :]
            g_full = np.hstack([np.zeros((n, 1)), gains])
            tie = pdf["tie"].to_numpy(dtype=np.int64)
            for ci, (c, ths) in enumerate(zip(self.curves, self.thresholds)):
                fa, ta, _, _, ratio = cc.hull_segments(curve_rewards(pdf, ci, self.k_arms), np.asarray(self.costs))
                tie_b = np.broadcast_to(tie[:, None], ratio.shape)
                for th in ths:
                    pi = cc.allocation(fa, ta, cc.taken(ratio, tie_b, th), self.k_arms)
                    parts.append((pi * g_full).sum(axis=1))
                    parts += [pi[:, k] for k in range(1, k1)]
        return np.column_stack(parts) if parts else np.zeros((n, 0))


def curve_rewards(pdf, ci: int, k_arms: int) -> np.ndarray:
    r = pdf[[f"r_{ci}_{k}" for k in range(1, k_arms + 1)]].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(r), -np.inf, r)


def score_moments(frame, spec: ScoreSpec, cluster: Optional[str] = None) -> Moments:
    """One pass: Moments of the score vectors (per cluster sums first when ``cluster`` is given)."""
    import pandas as pd
    from pyspark.sql import functions as F

    m = len(spec.layout())

    def reduce_units(u_batches):
        tot, cross, units = np.zeros(m + 1), np.zeros((m + 1, m + 1)), 0
        for u in u_batches:
            units += len(u)
            tot += u.sum(axis=0)
            cross += u.T @ u
        if units:
            yield pd.DataFrame({"g": [float(units)], "t": [tot.tolist()], "q": [cross.ravel().tolist()]})

    if cluster is None:
        def partial(batches):
            def units():
                for pdf in batches:
                    if len(pdf):
                        yield np.hstack([spec.build(pdf), np.ones((len(pdf), 1))])
            yield from reduce_units(units())

        rows = frame.mapInPandas(partial, "g double, t array<double>, q array<double>").collect()
    else:
        def zcols(batches):
            for pdf in batches:
                z = spec.build(pdf)
                out = pd.DataFrame(z, columns=[f"z{j}" for j in range(m)])
                out.insert(0, "__cluster", pdf[cluster].astype(str).to_numpy())
                yield out

        schema = "__cluster string, " + ", ".join(f"z{j} double" for j in range(m))
        per = (frame.mapInPandas(zcols, schema).groupBy("__cluster")
               .agg(*[F.sum(f"z{j}").alias(f"z{j}") for j in range(m)], F.count(F.lit(1)).cast("double").alias("n")))

        def partial_units(batches):
            def units():
                for pdf in batches:
                    if len(pdf):
                        yield pdf[[f"z{j}" for j in range(m)] + ["n"]].to_numpy(dtype=float)
            yield from reduce_units(units())

        rows = per.mapInPandas(partial_units, "g double, t array<double>, q array<double>").collect()
    out = Moments.empty(m)
    for r in rows:
        out = out + Moments(float(r["g"]), np.asarray(r["t"], dtype=float),
                            np.asarray(r["q"], dtype=float).reshape(m + 1, m + 1))
    return out


# ---------------------------------------------------------------------------------------- curves


def segments(frame, n_curves: int, k_arms: int, costs: Sequence[float]):
    """Hull segments of every customer and curve: (curve, ratio, tie, dcost) rows (mapInPandas)."""
    import pandas as pd

    costs = np.asarray(costs, dtype=float)

    def seg(batches):
        for pdf in batches:
            if not len(pdf):
                continue
            tie = pdf["tie"].to_numpy(dtype=np.int64)
            for ci in range(n_curves):
                _, _, dc, _, ratio = cc.hull_segments(curve_rewards(pdf, ci, k_arms), costs)
                valid = ~np.isnan(ratio)
                rows = np.nonzero(valid)
                yield pd.DataFrame({"curve": np.full(len(rows[0]), ci, dtype=np.int32), "ratio": ratio[valid],
                                    "tie": tie[rows[0]], "dcost": dc[valid]})

    cols = ["tie"] + [f"r_{ci}_{k}" for ci in range(n_curves) for k in range(1, k_arms + 1)]
    return frame.select(*cols).mapInPandas(seg, "curve int, ratio double, tie long, dcost double")


def curve_thresholds(segs, targets: Dict[int, Sequence[float]], partitions: int) -> Dict[int, List[tuple]]:
    """Exact thresholds (λ, t, f) per curve at each total-spend target, as :func:`cost_curves.crossing`.

    Segments are range-partitioned by (curve, ratio desc, tie) and sorted within partitions; pass 1
    returns each partition's first key and cost total per curve, the driver turns them into offsets,
    and pass 2 finds each target's crossing segment inside the one partition that holds it.
    """
    import pandas as pd
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    order = [F.col("curve"), F.col("ratio").desc(), F.col("tie")]
    ordered = segs.repartitionByRange(max(1, int(partitions)), *order).sortWithinPartitions(*order)
    ordered = ordered.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        def totals(batches):
            acc = {}
            for pdf in batches:
                for c, part in pdf.groupby("curve", sort=False):
                    c = int(c)
                    if c not in acc:
                        acc[c] = [float(part["ratio"].iloc[0]), int(part["tie"].iloc[0]), 0.0]
                    acc[c][2] += float(part["dcost"].sum())
            if acc:
                yield pd.DataFrame({"curve": list(acc), "ratio": [v[0] for v in acc.values()],
                                    "tie": [v[1] for v in acc.values()], "total": [v[2] for v in acc.values()]})

        parts = ordered.mapInPandas(totals, "curve int, ratio double, tie long, total double").collect()
        # offsets: partitions of one curve in key order; which partition holds each target's crossing
        jobs: Dict[Tuple[int, float, int], List[Tuple[int, float, float]]] = {}
        out: Dict[int, List[tuple]] = {c: [cc.ALL] * len(t) for c, t in targets.items()}
        for c, ts in targets.items():
            mine = sorted((p for p in parts if p["curve"] == c), key=lambda p: (-p["ratio"], p["tie"]))
            offset = 0.0
            bounds = []
            for p in mine:
                bounds.append((offset, offset + p["total"], (c, p["ratio"], p["tie"])))
                offset += p["total"]
            for j, target in enumerate(ts):
                for lo, hi, key in bounds:
                    if lo <= target < hi:
                        jobs.setdefault(key, []).append((j, float(target), lo))
                        break
        if jobs:
            job_list = [(k[0], k[1], k[2], v) for k, v in jobs.items()]

            def cross(batches):
                state = {}
                rows = []
                for pdf in batches:
                    for c, part in pdf.groupby("curve", sort=False):
                        c = int(c)
                        if c not in state:
                            first = (float(part["ratio"].iloc[0]), int(part["tie"].iloc[0]))
                            task = next((v for kc, kr, kt, v in job_list if kc == c and (kr, kt) == first), None)
                            state[c] = {"task": task, "before": None}
                        st = state[c]
                        if st["task"] is None:
                            continue
                        d = part["dcost"].to_numpy(dtype=float)
                        if st["before"] is None:
                            st["before"] = st["task"][0][2]
                        cum = st["before"] + np.cumsum(d)
                        before = cum - d
                        for j, target, _ in st["task"]:
                            i = int(np.searchsorted(cum, target, side="right"))
                            if i < len(cum) and before[i] <= target:
                                rows.append((c, j, float(part["ratio"].iloc[i]), int(part["tie"].iloc[i]),
                                             float((target - before[i]) / d[i])))
                        st["before"] = float(cum[-1]) if len(cum) else st["before"]
                if rows:
                    yield pd.DataFrame(rows, columns=["curve", "j", "ratio", "tie", "frac"])

            found = ordered.mapInPandas(cross, "curve int, j int, ratio double, tie long, frac double").collect()
            for r in found:
                out[int(r["curve"])][int(r["j"])] = (float(r["ratio"]), int(r["tie"]), float(r["frac"]))
    finally:
        ordered.unpersist()
    return out


__all__ = ["ScoreSpec", "score_moments", "segments", "curve_thresholds", "curve_rewards"]
