"""Exact uplift curves for many slices at once, in one shuffle (no global sort on one partition).

A *slice* is one curve to compute: e.g. (learner, outcome, split, arm) in the evaluate stage. All
slices ride through the same passes, so evaluating 18 slices costs about what one costs.

How it stays exact and distributed:

1. Histogram (pass 1, Spark SQL, no shuffle of rows). Each score falls in a log-scale bin (256 bins
   per power of two, :func:`bin_key`), a monotone function of the score, so tied scores share a bin
   and bins are ordered like scores. One aggregation returns, per (slice, bin), the rows, treated
   rows, outcome sums, the lowest score and data-quality counts: a result bounded by the number of
   occupied bins, not by rows.
2. Segments (driver). Consecutive bins are grouped into segments of about equal row counts; the
   boundary below a segment is the lowest score of its last bin, a real score, so ``score < edge``
   in Spark SQL splits exactly where the bins do. Segment totals and offsets (the curve state just
   before each segment) are prefix sums of the bin totals: no extra pass for the original sample.
   With bootstrap replicates, one more unshuffled pass sums the Poisson weights per segment.
3. Pass 2 (one shuffle). Rows are hash-partitioned by (slice, segment) and sorted within partitions
   by (score desc, id desc); ``mapInPandas`` regroups each Arrow batch by segment (keeping the
   order) and streams every segment from its offset: cumulative sums, block ends (last row of each
   run of tied scores: sklift's thresholds, also across batch boundaries), trapezoid areas per
   replicate, the sampled points, the rows at the uplift@k cut-offs and decile sums. Only these
   small results are collected, with each segment's own totals, checked against pass 1: a mismatch
   (e.g. a non-deterministic input recomputed differently) fails loudly instead of skewing a curve.

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
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .bootstrap import poisson_weights
from .curves import array_split_bounds, qini_values, sample_targets, trapezoid_area, uplift_values

log = get_logger("evaluation")

_S, _T, _Y, _H, _SEG, _ID, _SL = "_s", "_t", "_y", "_h", "_seg", "_id", "_slice"
_OUT_SCHEMA = "kind string, slice int, seg int, key long, vals array<double>"
# segments per shuffle partition (hash partitioning of (slice, segment): more, smaller segments
# even out the tasks)
SEGMENTS_PER_PARTITION = 4
# decile sums: n_t, n_c, y_t, y_c, y2_t, y2_c, sum of scores
_DECILE_FIELDS = 7


@dataclass(frozen=True)
class ScanSettings:
    """What one scan computes; ``cut_fractions`` are the uplift@k shares of rows (0 < k < 1).

    ``n_segments``: segments per slice (default: spread ``4 x spark.sql.shuffle.partitions`` over the
    slices by size); fewer are used when the scores occupy fewer histogram bins.
    """

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


# ---------------------------------------------------------------------------------------------
# pass 1: a coarse log-scale histogram per slice, in Spark SQL (no shuffle of rows)

def bin_key():
    """Spark SQL bin of a score: monotone non-decreasing in the score, 256 bins per power of two.

    key = sign(s) * (2^20 + 256 * (e + 1100) + floor(256 * (|s| / 2^e - 1))) with e = floor(log2 |s|):
    a piecewise-linear log2, continuous across powers of two (so an ``e`` off by one from rounding
    gives the same key), with ``|s| / 2^e - 1`` exact in floating point. Exactness never depends on
    this key: segment edges are real scores and every segment's totals are checked in pass 2; the
    key only decides how evenly rows spread over segments. 0, NaN and +-inf get keys of their own.
    """
    from pyspark.sql import functions as F

    a = F.abs(F.col(_S))
    e = F.least(F.greatest(F.floor(F.log2(a)), F.lit(-1100)), F.lit(1100))
    m = F.floor(F.lit(256.0) * (a / F.pow(F.lit(2.0), e) - F.lit(1.0)))
    mag = F.lit(1 << 20) + F.lit(256) * (e + F.lit(1100)) + m
    return (F.when(F.isnan(F.col(_S)) | F.col(_S).isNull(), F.lit(None))
            .when(F.col(_S) == F.lit(float("inf")), F.lit(1 << 40))
            .when(F.col(_S) == F.lit(float("-inf")), F.lit(-(1 << 40)))
            .when(F.col(_S) > 0, mag).when(F.col(_S) < 0, -mag).otherwise(F.lit(0))).cast("long")


def _histogram(base):
    """Per (slice, bin): rows, treated, outcome sums, lowest score, and data-quality counts."""
    from pyspark.sql import functions as F

    s, t, y = F.col(_S), F.col(_T), F.col(_Y)
    bad_s = s.isNull() | F.isnan(s)
    y0 = F.coalesce(F.when(~F.isnan(y), y), F.lit(0.0))
    t0 = F.coalesce(F.when(t == 1, 1.0), F.lit(0.0))
    ok = ~bad_s

    def total(expr):
        return F.sum(F.when(ok, expr).otherwise(0.0))

    def flag(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    return (base.withColumn("_key", bin_key())
            .groupBy(F.col(_SL).alias("slice"), F.col("_key").alias("key"))
            .agg(total(F.lit(1.0)).alias("n"), total(t0).alias("n_t"), total(y0 * t0).alias("y_t"),
                 total(y0 * (F.lit(1.0) - t0)).alias("y_c"), F.min(F.when(ok, s)).alias("lo"),
                 flag(bad_s).alias("bad_s"), flag(y.isNull() | F.isnan(y)).alias("bad_y"),
                 flag(t.isNull() | ~t.isin(0, 1)).alias("bad_t"),
                 flag(y.isNotNull() & ~y.isin(0.0, 1.0)).alias("nonbinary")))


def _seg_expr(edges: Mapping[int, np.ndarray]):
    """Spark SQL segment of a row: how many of its slice's edges lie strictly above the score."""
    from pyspark.sql import functions as F

    expr = F.lit(0)
    for k, e in edges.items():
        if len(e):
            count = sum((F.col(_S) < F.lit(float(v))).cast("int") for v in e)
            expr = F.when(F.col(_SL) == F.lit(int(k)), count).otherwise(expr)
    return expr.cast("int")


def _choose_segments(keys: np.ndarray, counts: np.ndarray, lows: np.ndarray, wanted: int):
    """Group bins (in descending score order) into ≤ ``wanted`` runs of about equal rows.

    Returns the segment of each bin and the edges: the lowest score of the last bin of every
    segment but the last. A monotone bin key puts every lower bin's scores strictly below that
    score, so a score is in segment j exactly when j edges are above it.
    """
    order = np.argsort(-keys, kind="stable")
    keys, counts, lows = keys[order], counts[order], lows[order]
    wanted = max(int(wanted), 1)
    total = max(float(counts.sum()), 1.0)
    cum_before = np.r_[0.0, np.cumsum(counts)[:-1]]
    seg_sorted = np.minimum((cum_before * wanted // total).astype(np.int64), wanted - 1)
    _, seg_sorted = np.unique(seg_sorted, return_inverse=True)  # consecutive ids (heavy bins skip some)
    seg_sorted = seg_sorted.ravel()
    starts = np.flatnonzero(np.diff(seg_sorted)) + 1  # first bin of each segment but the first
    edges = lows[starts - 1] if len(starts) else np.zeros(0)
    seg = np.empty_like(seg_sorted)
    seg[order] = seg_sorted
    return seg, edges


# ---------------------------------------------------------------------------------------------
# optional pass: per-segment totals of every bootstrap replicate (no shuffle)

def _replicate_pass(replicates: int):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        totals: Dict[Tuple[int, int], np.ndarray] = {}
        for pdf in batches:
            for (k, seg), run in _runs(pdf):
                s, t, y, h = _arrays(run)
                t, y = np.nan_to_num(t), np.nan_to_num(y)
                w = poisson_weights(h, replicates)
                contrib = np.stack([np.ones_like(t), t, y * t, y * (1.0 - t)], axis=1)
                totals[(k, seg)] = totals.get((k, seg), 0.0) + contrib.T @ w
        rows = [("total", k, seg, 0, v.ravel().tolist()) for (k, seg), v in totals.items()]
        yield pd.DataFrame(rows, columns=["kind", "slice", "seg", "key", "vals"])

    return fn


def _runs(pdf: pd.DataFrame):
    """The rows of each (slice, segment) in a batch, in batch order (a stable grouping).

    Pass 2 sorts each partition by (score desc, id desc) only, so Spark's sort compares the score
    prefix instead of (slice, segment) first; the segments sharing a partition interleave, and each
    one's rows come out of this grouping still in descending order.
    """
    if pdf.empty:
        return
    sl = pdf[_SL].to_numpy(dtype=np.int64)
    seg = pdf[_SEG].to_numpy(dtype=np.int64)
    if (sl == sl[0]).all() and (seg == seg[0]).all():
        yield (int(sl[0]), int(seg[0])), pdf
        return
    order = np.lexsort((seg, sl))  # stable: keeps the batch order inside each group
    sl, seg = sl[order], seg[order]
    cuts = np.flatnonzero((sl[1:] != sl[:-1]) | (seg[1:] != seg[:-1])) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(seg)]):
        yield (int(sl[a]), int(seg[a])), pdf.iloc[order[a:b]]


def _arrays(run: pd.DataFrame):
    s = run[_S].to_numpy(dtype=np.float64, na_value=np.nan)
    t = run[_T].to_numpy(dtype=np.float64, na_value=np.nan)
    y = run[_Y].to_numpy(dtype=np.float64, na_value=np.nan)
    h = run[_H].to_numpy(dtype=np.int64, na_value=0)
    return s, t, y, h


class _SegmentScan:
    """Pass-2 state for one segment: running sums, last curve point, areas, cut and decile sums."""

    def __init__(self, offset: np.ndarray, targets: np.ndarray, cut_sizes: np.ndarray,
                 decile_bounds: np.ndarray):
        self.cum = offset.copy()  # (4, B+1) state after the last processed row
        self.start = offset.copy()
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

    def results(self, sl: int, seg: int) -> List[tuple]:
        self.flush_pending()
        rows = [("area", sl, seg, 0, np.r_[self.area_q, self.area_u].tolist()),
                ("check", sl, seg, 0, (self.cum[:, 0] - self.start[:, 0]).tolist())]
        rows += [("point", sl, seg, key, vals) for key, vals in self.points]
        rows += [("cut", sl, seg, k, self.cuts[k].ravel().tolist()) for k in range(self.cuts.shape[0])
                 if np.any(self.cuts[k])]
        rows += [("decile", sl, seg, j, self.deciles[j].tolist()) for j in range(self.deciles.shape[0])
                 if self.deciles[j, 0] + self.deciles[j, 1] > 0]
        return rows


# ---------------------------------------------------------------------------------------------
# pass 2: ordered scan of every segment (one shuffle)

def _pass2(replicates: int, offsets: Mapping[Tuple[int, int], np.ndarray], per_slice: Mapping[int, tuple]):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scans: Dict[Tuple[int, int], _SegmentScan] = {}
        for pdf in batches:
            for key, run in _runs(pdf):
                scan = scans.get(key)
                if scan is None:
                    targets, cut_sizes, decile_bounds = per_slice[key[0]]
                    scan = scans[key] = _SegmentScan(offsets[key], targets, cut_sizes, decile_bounds)
                s, t, y, h = _arrays(run)
                scan.add_rows(s, np.nan_to_num(t), np.nan_to_num(y), h, replicates)
        out: List[tuple] = []
        for key, scan in scans.items():
            out += scan.results(*key)
        yield pd.DataFrame(out, columns=["kind", "slice", "seg", "key", "vals"])

    return fn


def _where(label: str) -> str:
    return f" ({label})" if label else ""


@dataclass
class _SlicePlan:
    """Driver-side state of one slice between the passes."""

    label: str
    n_total: int
    binary: bool
    seg_totals: np.ndarray  # (segments, 4) original sample, from the histogram
    edges: np.ndarray
    totals: Optional[np.ndarray] = None  # (4, B+1)
    cut_sizes: Optional[np.ndarray] = None  # (K, B+1)
    offsets: Optional[Dict[int, np.ndarray]] = None


def _plan_slices(hist, wanted_total: int, fixed: Optional[int], names: Tuple[str, str, str],
                 labels: Mapping[int, str]) -> Dict[int, _SlicePlan]:
    """Histogram rows → per-slice segment edges and totals; data errors named per slice."""
    score_col, treatment_col, outcome_col = names
    by_slice: Dict[int, list] = {}
    for r in hist:
        by_slice.setdefault(r["slice"], []).append(r)
    if not by_slice:
        raise DataError("uplift evaluation: no rows to evaluate")
    n_all = max(sum(float(r["n"]) for r in hist), 1.0)
    plans: Dict[int, _SlicePlan] = {}
    for k in sorted(by_slice):
        rows = by_slice[k]
        label = labels.get(k, "")
        null_s, null_y, bad_t, nonbinary = (sum(int(r[c]) for r in rows)
                                            for c in ("bad_s", "bad_y", "bad_t", "nonbinary"))
        if null_s:
            raise DataError(f"uplift evaluation{_where(label)}: {null_s} rows have a null/NaN score in column "
                            f"{score_col!r}")
        if null_y:
            raise DataError(f"uplift evaluation{_where(label)}: {null_y} rows have a null/NaN outcome in column "
                            f"{outcome_col!r}")
        if bad_t:
            raise DataError(f"uplift evaluation{_where(label)}: {bad_t} rows have a treatment flag other than 0/1 "
                            f"in {treatment_col!r}")
        keys = np.array([r["key"] for r in rows], dtype=np.int64)
        sums = np.array([[r["n"], r["n_t"], r["y_t"], r["y_c"]] for r in rows], dtype=np.float64)
        lows = np.array([r["lo"] for r in rows], dtype=np.float64)
        n, n_t = sums[:, 0].sum(), sums[:, 1].sum()
        if n == 0:
            raise DataError(f"uplift evaluation{_where(label)}: no rows to evaluate")
        if n_t == 0 or n_t == n:
            raise DataError(f"uplift evaluation{_where(label)}: need treated and control rows, got {int(n_t)} "
                            f"treated of {int(n)}")
        wanted = fixed or max(1, math.ceil(wanted_total * n / n_all))
        seg, edges = _choose_segments(keys, sums[:, 0], lows, wanted)
        seg_totals = np.zeros((int(seg.max()) + 1, 4))
        np.add.at(seg_totals, seg, sums)
        plans[k] = _SlicePlan(label, int(round(n)), nonbinary == 0, seg_totals, edges)
    return plans


@dataclass
class PreparedScan:
    """Everything pass 2 needs: ``frame`` is its ordered input (partitioned by (slice, segment))."""

    frame: "object"
    plans: Dict[int, _SlicePlan]
    offsets: Dict[Tuple[int, int], np.ndarray]
    per_slice: Dict[int, tuple]
    replicates: int


def prepare_slices(df, slice_col: str, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                   settings: ScanSettings, labels: Optional[Mapping[int, str]] = None) -> PreparedScan:
    """Pass 1 (and the replicate pass): segment edges, offsets and the ordered frame of pass 2."""
    from pyspark.sql import functions as F

    for col in (slice_col, score_col, treatment_col, outcome_col, id_col):
        if col not in df.columns:
            raise DataError(f"uplift evaluation: column {col!r} not found (have {sorted(df.columns)})")
    labels = dict(labels or {})
    B = int(settings.replicates)
    R = B + 1
    base = df.select(
        F.col(slice_col).cast("int").alias(_SL),
        F.col(score_col).cast("double").alias(_S),
        F.col(treatment_col).cast("int").alias(_T),
        F.col(outcome_col).cast("double").alias(_Y),
        F.col(id_col).cast("string").alias(_ID),
    ).where(F.col(_SL).isNotNull())
    spark = df.sparkSession
    partitions = max(int(spark.conf.get("spark.sql.shuffle.partitions")), 1)

    # pass 1: a histogram aggregated on the executors (partial aggregation: no shuffle of rows)
    hist = _histogram(base).collect()
    plans = _plan_slices(hist, SEGMENTS_PER_PARTITION * partitions, settings.n_segments,
                         (score_col, treatment_col, outcome_col), labels)
    seg_col = _seg_expr({k: p.edges for k, p in plans.items()})
    with_seg = base.withColumn(_SEG, seg_col).withColumn(_H, F.xxhash64(F.col(_ID), F.lit(int(settings.seed))))

    rep_totals: Dict[Tuple[int, int], np.ndarray] = {}
    if B > 0:
        rep = (with_seg.select(_SL, _SEG, _S, _T, _Y, _H).mapInPandas(_replicate_pass(B), _OUT_SCHEMA)
               .select("slice", "seg", F.posexplode("vals"))
               .groupBy("slice", "seg", "pos").agg(F.sum("col").alias("v")).collect())
        for r in rep:
            acc = rep_totals.setdefault((r["slice"], r["seg"]), np.zeros(4 * R))
            acc[r["pos"]] = r["v"]
        rep_totals = {key: v.reshape(4, R) for key, v in rep_totals.items()}

    offsets: Dict[Tuple[int, int], np.ndarray] = {}
    per_slice: Dict[int, tuple] = {}
    for k, p in plans.items():
        running = np.zeros((4, R))
        for seg in range(p.seg_totals.shape[0]):
            offsets[(k, seg)] = running.copy()
            if B > 0:
                running = running + rep_totals.get((k, seg), np.zeros((4, R)))
            else:
                running = running + p.seg_totals[seg][:, None]
        p.totals = running
        p.cut_sizes = per_cut_sizes(running, settings.cut_fractions)
        targets = sample_targets(p.n_total, settings.curve_points).astype(np.float64)
        per_slice[k] = (targets, p.cut_sizes,
                        array_split_bounds(p.n_total, settings.n_deciles).astype(np.float64))

    # (slice, segment) decides the partition; the sort is by score alone (see _runs)
    prepared = (with_seg.repartition(partitions, _SL, _SEG)
                .sortWithinPartitions(F.col(_S).desc(), F.col(_ID).desc())
                .select(_SL, _SEG, _S, _T, _Y, _H))
    return PreparedScan(prepared, plans, offsets, per_slice, B)


def scan_slices(df, slice_col: str, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                settings: ScanSettings, labels: Optional[Mapping[int, str]] = None) -> Dict[int, ScanResult]:
    """Exact curves of every slice of ``df`` (``slice_col``: int ids) in one shuffle; see the module doc.

    ``treatment_col`` is 1 (treated) / 0 (control) within each slice; ``labels`` name slices in
    errors. Returns one :class:`ScanResult` per slice id present.
    """
    prep = prepare_slices(df, slice_col, score_col, treatment_col, outcome_col, id_col, settings, labels)
    second = prep.frame.mapInPandas(_pass2(prep.replicates, prep.offsets, prep.per_slice), _OUT_SCHEMA).collect()
    return _assemble(second, prep.plans, settings, prep.replicates + 1)


def _assemble(rows, plans: Mapping[int, _SlicePlan], settings: ScanSettings, R: int) -> Dict[int, ScanResult]:
    K = len(settings.cut_fractions)
    acc = {k: {"area": np.zeros((2, R)), "points": {0: np.zeros((4, R))}, "cuts": np.zeros((K, 4, R)),
               "deciles": np.zeros((settings.n_deciles, _DECILE_FIELDS)),
               "check": np.zeros((len(p.seg_totals), 4))} for k, p in plans.items()}
    for r in rows:
        a = acc[r["slice"]]
        vals = np.asarray(r["vals"], dtype=np.float64)
        kind = r["kind"]
        if kind == "area":
            a["area"] += vals.reshape(2, R)
        elif kind == "point":
            a["points"][int(r["key"])] = vals.reshape(4, R)
        elif kind == "cut":
            a["cuts"][int(r["key"])] += vals.reshape(4, R)
        elif kind == "decile":
            a["deciles"][int(r["key"])] += vals
        elif kind == "check":
            a["check"][int(r["seg"])] += vals
    out: Dict[int, ScanResult] = {}
    for k, p in plans.items():
        a = acc[k]
        got, want = a["check"], p.seg_totals
        if not (np.array_equal(got[:, :2], want[:, :2]) and np.allclose(got[:, 2:], want[:, 2:], rtol=1e-9, atol=1e-9)):
            raise DataError(f"uplift evaluation{_where(p.label)}: the input changed between passes "
                            f"(segment totals differ); persist or write a non-deterministic input first")
        ordered = np.stack([a["points"][j] for j in sorted(a["points"])])
        log.info("exact curve%s: %d rows, %d segments, %d sampled points, %d replicates", _where(p.label),
                 p.n_total, len(want), len(ordered), R - 1)
        out[k] = ScanResult(totals=p.totals, qini_area=a["area"][0], uplift_area=a["area"][1], points=ordered,
                            cuts=a["cuts"], cut_sizes=p.cut_sizes,
                            deciles=a["deciles"], binary=p.binary, segments=len(want))
    return out


def per_cut_sizes(totals: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Rows in each uplift@k cut per replicate: sklift's ``int(n_samples * k)``, where a replicate's
    n_samples is its weighted row count."""
    R = totals.shape[1]
    return np.array([[float(int(totals[0, b] * f)) for b in range(R)] for f in fractions],
                    dtype=np.float64).reshape(len(fractions), R)


def scan_uplift(df, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                settings: ScanSettings) -> ScanResult:
    """Exact curves of one score column over all rows (treatment 1/0): a one-slice :func:`scan_slices`."""
    from pyspark.sql import functions as F

    for col in (score_col, treatment_col, outcome_col, id_col):
        if col not in df.columns:
            raise DataError(f"uplift evaluation: column {col!r} not found (have {sorted(df.columns)})")
    return scan_slices(df.withColumn(_SL, F.lit(0)), _SL, score_col, treatment_col, outcome_col, id_col,
                       settings)[0]
