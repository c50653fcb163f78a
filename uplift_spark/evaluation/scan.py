"""Exact uplift curves over all rows in two distributed passes (no global sort on one partition).

How it stays exact and distributed:

1. Segments. Approximate score quantiles (a small aggregate) cut the score axis into ``S`` segments;
   a row's segment is a pure function of its score, so tied scores always share a segment and the
   assignment is identical in every pass (no dependence on sampling or partition ids).
2. Rows are hash-partitioned by segment and sorted within partitions by
   (segment, score desc, id desc): every segment is one contiguous, fully ordered run in one task.
3. Pass 1 (``mapInPandas``) returns per-segment totals for every bootstrap replicate (4 x (B+1)
   numbers per segment). The driver turns them into prefix offsets: the curve state just before each
   segment.
4. Pass 2 (``mapInPandas``) streams each segment's rows in Arrow batches, starting from its offset:
   cumulative sums, block ends (last row of each run of tied scores: sklift's thresholds, also
   across batch boundaries), trapezoid areas per replicate, the sampled points, the rows at the
   uplift@k cut-offs and decile sums. Only these small results are collected.

Ties: curve points sit at the end of tie blocks, so the curves and areas do not depend on the order
inside a block. Cut-offs that fall inside a tie block (uplift@k, deciles) use the total order
(score desc, id desc): the order sklift itself uses when it is given rows sorted by id ascending
(its ``argsort(kind='mergesort')[::-1]`` puts later rows first among ties). Deterministic and
rerun-stable, but arbitrary within a block: report ties honestly when scores are coarse.

Bootstrap: replicate ``b`` weights each row by Poisson(1) drawn from a hash of (id, b, seed), see
:mod:`.bootstrap`. The order never changes, so all replicates ride along the same pass as extra
columns of the cumulative sums; replicate 0 is the original sample (weights 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .bootstrap import poisson_weights
from .curves import array_split_bounds, qini_values, sample_targets, trapezoid_area, uplift_values

log = get_logger("evaluation")

_OUT_SCHEMA = "kind string, seg int, key long, vals array<double>"
_S, _T, _Y, _H, _SEG, _ID = "_s", "_t", "_y", "_h", "_seg", "_id"
QUANTILE_REL_ERROR = 1e-3
# decile sums: n_t, n_c, y_t, y_c, y2_t, y2_c, sum of scores
_DECILE_FIELDS = 7


@dataclass(frozen=True)
class ScanSettings:
    """What one scan computes; ``cut_fractions`` are the uplift@k shares of rows (0 < k < 1)."""

    replicates: int = 0
    seed: int = 11
    curve_points: int = 101
    cut_fractions: Tuple[float, ...] = ()
    n_deciles: int = 10
    n_segments: Optional[int] = None


@dataclass
class ScanResult:
    """Small, collected results of a scan; arrays have a trailing replicate axis (0 = original)."""

    totals: np.ndarray  # (4, B+1): n, n_t, y_t, y_c
    qini_area: np.ndarray  # (B+1,)
    uplift_area: np.ndarray  # (B+1,)
    points: np.ndarray  # (P, 4, B+1) cumulative sums at the sampled points, origin first
    cuts: np.ndarray  # (K, 4, B+1) cumulative sums at the uplift@k cut-offs
    cut_sizes: np.ndarray  # (K, B+1) rows (weighted) in each cut
    deciles: np.ndarray  # (D, 7) decile sums of the original sample
    binary: bool
    segments: int = 0


def prepare(df, score_col: str, treatment_col: str, outcome_col: str, id_col: str, seed: int,
            n_segments: Optional[int] = None):
    """The full-data frame both passes read: segment, score, treatment, outcome, id hash, ordered.

    Runs one small aggregate (approximate quantiles of the score) to place segment boundaries.
    """
    from pyspark.sql import functions as F

    for col in (score_col, treatment_col, outcome_col, id_col):
        if col not in df.columns:
            raise DataError(f"uplift evaluation: column {col!r} not found (have {sorted(df.columns)})")
    base = df.select(
        F.col(score_col).cast("double").alias(_S),
        F.col(treatment_col).cast("int").alias(_T),
        F.col(outcome_col).cast("double").alias(_Y),
        F.col(id_col).cast("string").alias(_ID),
    ).withColumn(_H, F.xxhash64(F.col(_ID), F.lit(int(seed))))
    spark = df.sparkSession
    segments = int(n_segments or int(spark.conf.get("spark.sql.shuffle.partitions")))
    segments = max(segments, 1)
    bounds: List[float] = []
    if segments > 1:
        probs = [j / segments for j in range(1, segments)]
        bounds = sorted({float(q) for q in base.approxQuantile(_S, probs, QUANTILE_REL_ERROR)
                         if q is not None and not math.isnan(q)})
    # segment = how many boundaries lie strictly above the score: highest scores get segment 0
    seg = F.lit(0)
    for q in bounds:
        seg = seg + F.when(F.col(_S) < F.lit(q), 1).otherwise(0)
    seg = F.coalesce(seg, F.lit(0)).cast("int")
    prepared = (
        base.withColumn(_SEG, seg)
        .repartition(max(len(bounds) + 1, 1), _SEG)
        .sortWithinPartitions(F.col(_SEG), F.col(_S).desc(), F.col(_ID).desc())
        .select(_SEG, _S, _T, _Y, _H)
    )
    return prepared, len(bounds) + 1


def _seg_runs(pdf: pd.DataFrame):
    """Contiguous runs of one segment inside a sorted Arrow batch."""
    seg = pdf[_SEG].to_numpy()
    if len(seg) == 0:
        return
    cuts = np.flatnonzero(seg[1:] != seg[:-1]) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(seg)]
    for a, b in zip(starts, ends):
        yield int(seg[a]), pdf.iloc[a:b]


def _arrays(run: pd.DataFrame):
    s = run[_S].to_numpy(dtype=np.float64, na_value=np.nan)
    t = run[_T].to_numpy(dtype=np.float64, na_value=np.nan)
    y = run[_Y].to_numpy(dtype=np.float64, na_value=np.nan)
    h = run[_H].to_numpy(dtype=np.int64, na_value=0)
    return s, t, y, h


def _pass1(replicates: int):
    """Per-segment totals for every replicate, plus data-quality counts."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        totals: Dict[int, np.ndarray] = {}
        meta: Dict[int, np.ndarray] = {}
        for pdf in batches:
            for seg, run in _seg_runs(pdf):
                s, t, y, h = _arrays(run)
                bad = np.array([
                    np.isnan(s).sum(), np.isnan(y).sum(),
                    (~np.isin(t, (0.0, 1.0))).sum(), (~np.isin(y, (0.0, 1.0))).sum(),
                ], dtype=np.float64)
                t0 = np.nan_to_num(t)
                y0 = np.nan_to_num(y)
                w = poisson_weights(h, replicates)
                contrib = np.stack([np.ones_like(t0), t0, y0 * t0, y0 * (1.0 - t0)], axis=1)
                tot = contrib.T @ w  # (4, B+1)
                totals[seg] = totals.get(seg, 0.0) + tot
                meta[seg] = meta.get(seg, 0.0) + bad
        rows = [("total", seg, 0, tot.ravel().tolist()) for seg, tot in totals.items()]
        rows += [("meta", seg, 0, m.tolist()) for seg, m in meta.items()]
        yield pd.DataFrame(rows, columns=["kind", "seg", "key", "vals"])

    return fn


class _SegmentScan:
    """Pass-2 state for one segment: running sums, last curve point, areas, cut and decile sums."""

    def __init__(self, offset: np.ndarray, targets: np.ndarray, cut_sizes: np.ndarray,
                 decile_bounds: np.ndarray):
        self.cum = offset.copy()  # (4, B+1) state after the last processed row
        self.prev_x = offset[0].copy()
        self.prev_q = qini_values(*offset)
        self.prev_u = uplift_values(*offset)
        self.area_q = np.zeros(offset.shape[1])
        self.area_u = np.zeros(offset.shape[1])
        self.targets = targets
        self.cut_sizes = cut_sizes  # (K, B+1)
        self.cuts = np.zeros((cut_sizes.shape[0],) + offset.shape)
        self.decile_bounds = decile_bounds
        self.deciles = np.zeros((len(decile_bounds), _DECILE_FIELDS))
        self.points: List[Tuple[int, list]] = []
        self.pending: Optional[Tuple[float, np.ndarray]] = None  # (score, state) of a batch's last row

    def add_points(self, state: np.ndarray) -> None:
        """Curve points (m, 4, B+1) in order: areas from the previous point, sampled points kept."""
        n, n_t, y_t, y_c = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
        q = qini_values(n, n_t, y_t, y_c)
        u = uplift_values(n, n_t, y_t, y_c)
        self.area_q += trapezoid_area(self.prev_x, self.prev_q, n, q)
        self.area_u += trapezoid_area(self.prev_x, self.prev_u, n, u)
        n0 = n[:, 0]
        before = np.r_[self.prev_x[0], n0[:-1]]
        hits = np.searchsorted(self.targets, n0, side="right") - np.searchsorted(self.targets, before, side="right")
        keep = np.flatnonzero(hits > 0)
        if len(keep):
            flat = state[keep].reshape(len(keep), -1).tolist()
            self.points.extend(zip(np.rint(n0[keep]).astype(np.int64).tolist(), flat))
        self.prev_x, self.prev_q, self.prev_u = n[-1].copy(), q[-1].copy(), u[-1].copy()

    def flush_pending(self) -> None:
        if self.pending is not None:
            self.add_points(self.pending[1][None, ...])
            self.pending = None

    def add_rows(self, s, t, y, h, replicates: int) -> None:
        if self.pending is not None:
            if s[0] != self.pending[0]:
                self.flush_pending()  # the previous batch ended a tie block
            else:
                self.pending = None  # the block continues: its end comes later
        w = poisson_weights(h, replicates)  # (rows, B+1)
        contrib = np.stack([np.ones_like(t), t, y * t, y * (1.0 - t)], axis=1)  # (rows, 4)
        cum = np.cumsum(contrib[:, :, None] * w[:, None, :], axis=0)  # (rows, 4, B+1)
        cum += self.cum[None, ...]
        # uplift@k: the row where the weighted count reaches each cut-off, taken partially
        # (c of its w copies), exactly like sklift's top int(n*k) rows of the resampled data
        for b in range(w.shape[1]):
            sizes = self.cut_sizes[:, b]
            idx = np.searchsorted(cum[:, 0, b], sizes, side="left")
            ok = (sizes > 0) & (idx < len(s))
            idx_ok = np.where(ok, idx, 0)
            ok &= (cum[idx_ok, 0, b] - w[idx_ok, b]) < sizes
            for k in np.flatnonzero(ok):
                i = idx_ok[k]
                before = cum[i, :, b] - contrib[i] * w[i, b]
                self.cuts[k, :, b] = before + (sizes[k] - before[0]) * contrib[i]
        # deciles of the original sample by global row position
        pos = self.cum[0, 0] + np.arange(len(s), dtype=np.float64)
        d = np.searchsorted(self.decile_bounds, pos, side="right")
        d = np.minimum(d, len(self.decile_bounds) - 1)
        c = 1.0 - t
        for j, weights in enumerate((t, c, y * t, y * c, y * y * t, y * y * c, s)):
            self.deciles[:, j] += np.bincount(d, weights=weights, minlength=len(self.decile_bounds))
        ends = np.flatnonzero(s[1:] != s[:-1])
        if len(ends):
            self.add_points(cum[ends])
        self.pending = (float(s[-1]), cum[-1].copy())
        self.cum = cum[-1].copy()

    def results(self, seg: int) -> List[tuple]:
        self.flush_pending()
        rows = [("area", seg, 0, np.r_[self.area_q, self.area_u].tolist())]
        rows += [("point", seg, key, vals) for key, vals in self.points]
        rows += [("cut", seg, k, self.cuts[k].ravel().tolist()) for k in range(self.cuts.shape[0])
                 if np.any(self.cuts[k])]
        rows += [("decile", seg, j, self.deciles[j].tolist()) for j in range(self.deciles.shape[0])
                 if self.deciles[j, 0] + self.deciles[j, 1] > 0]
        return rows


def _pass2(replicates: int, offsets: Dict[int, np.ndarray], targets: np.ndarray, cut_sizes: np.ndarray,
           decile_bounds: np.ndarray):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        out: List[tuple] = []
        cur_seg, scan = None, None
        for pdf in batches:
            for seg, run in _seg_runs(pdf):
                if seg != cur_seg:
                    if scan is not None:
                        out += scan.results(cur_seg)
                    cur_seg = seg
                    scan = _SegmentScan(offsets[seg], targets, cut_sizes, decile_bounds)
                s, t, y, h = _arrays(run)
                scan.add_rows(s, t, y, h, replicates)
        if scan is not None:
            out += scan.results(cur_seg)
        yield pd.DataFrame(out, columns=["kind", "seg", "key", "vals"])

    return fn


def _collect(df) -> pd.DataFrame:
    rows = df.collect()
    return pd.DataFrame([r.asDict() for r in rows], columns=["kind", "seg", "key", "vals"])


def scan_uplift(df, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                settings: ScanSettings) -> ScanResult:
    """Run both passes; see the module docstring. ``treatment_col`` is 1 (treated) / 0 (control)."""
    B = int(settings.replicates)
    R = B + 1
    prepared, segments = prepare(df, score_col, treatment_col, outcome_col, id_col, settings.seed,
                                 settings.n_segments)
    first = _collect(prepared.mapInPandas(_pass1(B), _OUT_SCHEMA))
    meta = np.zeros(4)
    per_seg: Dict[int, np.ndarray] = {}
    for row in first.itertuples(index=False):
        vals = np.asarray(row.vals, dtype=np.float64)
        if row.kind == "meta":
            meta += vals
        else:
            per_seg[row.seg] = per_seg.get(row.seg, 0.0) + vals.reshape(4, R)
    null_s, null_y, bad_t, nonbinary = (int(v) for v in meta)
    if null_s:
        raise DataError(f"uplift evaluation: {null_s} rows have a null/NaN score in column {score_col!r}")
    if null_y:
        raise DataError(f"uplift evaluation: {null_y} rows have a null/NaN outcome in column {outcome_col!r}")
    if bad_t:
        raise DataError(f"uplift evaluation: {bad_t} rows have a treatment flag other than 0/1 in {treatment_col!r}")
    if not per_seg:
        raise DataError("uplift evaluation: no rows to evaluate")
    offsets: Dict[int, np.ndarray] = {}
    running = np.zeros((4, R))
    for seg in sorted(per_seg):
        offsets[seg] = running.copy()
        running = running + per_seg[seg]
    totals = running
    n_total = int(round(totals[0, 0]))
    if totals[1, 0] == 0 or totals[1, 0] == totals[0, 0]:
        raise DataError(
            f"uplift evaluation: need treated and control rows, got {int(totals[1, 0])} treated of {n_total}"
        )
    targets = sample_targets(n_total, settings.curve_points).astype(np.float64)
    # sklift: n_size = int(n_samples * k); on a replicate, n_samples is the weighted row count
    cut_sizes = np.array([[float(int(totals[0, b] * k)) for b in range(R)] for k in settings.cut_fractions],
                         dtype=np.float64).reshape(len(settings.cut_fractions), R)
    decile_bounds = array_split_bounds(n_total, settings.n_deciles).astype(np.float64)
    second = _collect(prepared.mapInPandas(_pass2(B, offsets, targets, cut_sizes, decile_bounds), _OUT_SCHEMA))
    area = np.zeros((2, R))
    points = {0: np.zeros((4, R))}
    cuts = np.zeros((len(settings.cut_fractions), 4, R))
    deciles = np.zeros((settings.n_deciles, _DECILE_FIELDS))
    for row in second.itertuples(index=False):
        vals = np.asarray(row.vals, dtype=np.float64)
        if row.kind == "area":
            area += vals.reshape(2, R)
        elif row.kind == "point":
            points[int(row.key)] = vals.reshape(4, R)
        elif row.kind == "cut":
            cuts[int(row.key)] += vals.reshape(4, R)
        elif row.kind == "decile":
            deciles[int(row.key)] += vals
    ordered = np.stack([points[k] for k in sorted(points)])
    log.info("exact curve: %d rows, %d segments, %d sampled points, %d replicates",
             n_total, segments, len(ordered), B)
    return ScanResult(totals=totals, qini_area=area[0], uplift_area=area[1], points=ordered, cuts=cuts,
                      cut_sizes=cut_sizes, deciles=deciles, binary=nonbinary == 0, segments=segments)
