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
3. Pass 2 (one shuffle). The driver spreads the segments over partitions by size (largest first onto
   the least loaded; enough partitions that no task sorts much over ``ROWS_PER_SORT_PARTITION``
   rows) and rows are sorted within partitions by (score desc, id desc); ``mapInArrow`` (no pandas
   conversion) regroups each chunk of Arrow batches by segment (keeping the order) and streams
   every segment from its offset: cumulative sums, block ends (last row of each
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
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from ..schemas import require_columns
from ..logs import get_logger
from .bootstrap import poisson_weights
from .curves import array_split_bounds, qini_values, sample_targets, trapezoid_area, uplift_values

if TYPE_CHECKING:
    import pyarrow as pa

log = get_logger("evaluation")

_S, _T, _Y, _H, _SEG, _ID, _SL, _PART = "_s", "_t", "_y", "_h", "_seg", "_id", "_slice", "_part"
_CL = "_cluster"
_OUT_SCHEMA = "kind string, slice int, seg int, key long, vals array<double>"
# segments per pass-2 partition: more, smaller segments let the driver's placement even out the tasks
SEGMENTS_PER_PARTITION = 4
# pass-2 partitions grow with the slice rows: at most about this many rows sorted per task
ROWS_PER_SORT_PARTITION = 1_000_000
# decile sums: n_t, n_c, y_t, y_c, y2_t, y2_c, sum of scores
_DECILE_FIELDS = 7


@dataclass(frozen=True)
class ScanSettings:
    """What one scan computes; ``cut_fractions`` are the uplift@k shares of rows (0 < k < 1).

    ``n_segments``: segments per slice (default: spread ``4 x spark.sql.shuffle.partitions`` over the
    slices by size); fewer are used when the scores occupy fewer histogram bins. ``chunk_rows``: rows
    the Python side handles at once (default :func:`chunk_rows`; results never depend on it).
    """

    replicates: int = 0
    seed: int = 11
    curve_points: int = 101
    cut_fractions: Tuple[float, ...] = ()
    n_deciles: int = 10
    n_segments: Optional[int] = None
    chunk_rows: Optional[int] = None


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
    """Spark SQL segment of a row: how many of its slice's edges lie strictly above the score.

    Edges are strictly descending, so that count is found by bisection: a balanced tree of
    ``score < edge`` tests, about log2(edges) per row instead of one test per edge.
    """
    from pyspark.sql import functions as F

    def count_in(e: np.ndarray, lo: int, hi: int):
        if lo == hi:
            return F.lit(lo)
        mid = (lo + hi) // 2  # more than ``mid`` edges lie above the score <=> score < e[mid]
        return F.when(F.col(_S) < F.lit(float(e[mid])), count_in(e, mid + 1, hi)).otherwise(count_in(e, lo, mid))

    expr = F.lit(0)
    for k, e in edges.items():
        if len(e):
            expr = F.when(F.col(_SL) == F.lit(int(k)), count_in(e, 0, len(e))).otherwise(expr)
    return expr.cast("int")


def spark_hash_int(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an int column (Murmur3 x86 32-bit, seed 42): what ``repartition(n, col)``
    takes modulo n to place a row."""
    m = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    k1 = (value & m) * 0xCC9E2D51 & m
    k1 = rotl(k1, 15) * 0x1B873593 & m
    h1 = rotl((seed & m) ^ k1, 13)
    h1 = (h1 * 5 + 0xE6546B64) & m
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & m
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & m
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def partition_keys(partitions: int) -> List[int]:
    """For each partition p, the smallest int that ``repartition(partitions, col)`` sends to p.

    Hashing (slice, segment) directly put 8.3M of 15M rows in one of 4 partitions; with these keys
    the driver decides exactly which partition holds which segment.
    """
    keys: Dict[int, int] = {}
    v = 0
    while len(keys) < partitions:
        keys.setdefault(spark_hash_int(v) % partitions, v)  # Python % is pmod
        v += 1
    return [keys[p] for p in range(partitions)]


def _assign_partitions(plans: Mapping[int, "_SlicePlan"], partitions: int) -> Dict[Tuple[int, int], int]:
    """Segments → partitions, largest first onto the least loaded (LPT), so tasks hold similar rows."""
    import heapq

    sizes = sorted(((float(p.seg_totals[j, 0]), k, j) for k, p in plans.items()
                    for j in range(p.seg_totals.shape[0])), key=lambda x: (-x[0], x[1], x[2]))
    heap = [(0.0, q) for q in range(partitions)]
    out: Dict[Tuple[int, int], int] = {}
    for size, k, j in sizes:
        load, q = heapq.heappop(heap)
        out[(k, j)] = q
        heapq.heappush(heap, (load + size, q))
    return out


def _part_expr(assigned: Mapping[Tuple[int, int], int], partitions: int):
    """Spark SQL partitioning key of a row: the hash pre-image of its segment's assigned partition."""
    from pyspark.sql import functions as F

    keys = partition_keys(partitions)
    by_slice: Dict[int, Dict[int, int]] = {}
    for (k, j), q in assigned.items():
        by_slice.setdefault(k, {})[j] = keys[q]
    expr = F.lit(keys[0])
    for k, segs in by_slice.items():
        arr = F.array(*[F.lit(segs[j]) for j in range(len(segs))])
        expr = F.when(F.col(_SL) == F.lit(int(k)), F.element_at(arr, F.col(_SEG) + 1)).otherwise(expr)
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

def _replicate_pass(replicates: int, chunk: int, edges: Mapping[int, np.ndarray]):
    def fn(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        totals: Dict[Tuple[int, int], np.ndarray] = {}
        for batch in _chunks(batches, chunk):
            sl, seg, s, t, y, h = _arrays(batch, edges)
            for key, idx in _runs(sl, seg):
                w = poisson_weights(h[idx], replicates)
                ti, yi = t[idx], y[idx]
                contrib = np.stack([np.ones_like(ti), ti, yi * ti, yi * (1.0 - ti)], axis=1)
                totals[key] = totals.get(key, 0.0) + contrib.T @ w
        yield _out_batch([("total", k, seg, 0, v.ravel().tolist()) for (k, seg), v in totals.items()])

    return fn


def _chunks(batches: Iterator["pa.RecordBatch"], target: int) -> Iterator["pa.RecordBatch"]:
    """Consecutive Arrow batches merged into chunks of at least ``target`` rows (but the last), order kept.

    Spark hands Python 10,000-row batches; the per-chunk NumPy work has a fixed cost, so bigger chunks
    run faster, while the (rows, 4, replicates) running sums bound how big a chunk may be.
    """
    import pyarrow as pa

    buf: List["pa.RecordBatch"] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        buf.append(batch)
        rows += batch.num_rows
        if rows >= target:
            yield buf[0] if len(buf) == 1 else pa.Table.from_batches(buf).combine_chunks().to_batches()[0]
            buf, rows = [], 0
    if buf:
        yield buf[0] if len(buf) == 1 else pa.Table.from_batches(buf).combine_chunks().to_batches()[0]


def chunk_rows(replicates: int) -> int:
    """Rows per Python chunk: ~32 MB of float64 running sums (rows x 4 x (replicates + 1))."""
    return int(min(max(1_000_000 // (int(replicates) + 1), 5_000), 200_000))


def _out_batch(rows: List[tuple]) -> "pa.RecordBatch":
    import pyarrow as pa

    kind, sl, seg, key, vals = (list(c) for c in zip(*rows)) if rows else ([], [], [], [], [])
    return pa.RecordBatch.from_arrays(
        [pa.array(kind, pa.string()), pa.array(sl, pa.int32()), pa.array(seg, pa.int32()),
         pa.array(key, pa.int64()), pa.array(vals, pa.list_(pa.float64()))],
        names=["kind", "slice", "seg", "key", "vals"])


def _runs(sl: np.ndarray, seg: np.ndarray):
    """The row positions of each (slice, segment) in a chunk, in chunk order (a stable grouping).

    Pass 2 sorts each partition by (score desc, id desc) only, so Spark's sort compares the score
    prefix instead of (slice, segment) first; the segments sharing a partition interleave, and each
    one's rows come out of this grouping still in descending order.
    """
    if len(sl) == 0:
        return
    if (sl == sl[0]).all() and (seg == seg[0]).all():
        yield (int(sl[0]), int(seg[0])), slice(None)
        return
    order = np.lexsort((seg, sl))  # stable: keeps the chunk order inside each group
    sl_o, seg_o = sl[order], seg[order]
    cuts = np.flatnonzero((sl_o[1:] != sl_o[:-1]) | (seg_o[1:] != seg_o[:-1])) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(seg_o)]):
        yield (int(sl_o[a]), int(seg_o[a])), order[a:b]


def _arrays(batch: "pa.RecordBatch", edges: Mapping[int, np.ndarray]):
    """(slice, segment, score, treatment, outcome, row hash) of a chunk as NumPy arrays.

    Pass 1 rejected null scores, outcomes and treatments, so nulls only reach here as NaN-safe zeros.
    Rows carry neither the segment (found again from ``edges``) nor, without replicates, the hash:
    every column less is one less to shuffle and convert to Arrow for every row.
    """
    def col(name, dtype):
        i = batch.schema.get_field_index(name)
        if i < 0:
            return None
        arr = batch.column(i)
        if arr.null_count:
            arr = arr.fill_null(0)
        return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    sl, s = col(_SL, np.int64), col(_S, np.float64)
    h = col(_H, np.int64)
    if h is None:
        h = np.zeros(len(s), dtype=np.int64)
    return sl, segment_of(edges, sl, s), s, col(_T, np.float64), col(_Y, np.float64), h


def segment_of(edges: Mapping[int, np.ndarray], sl: np.ndarray, s: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`_seg_expr`: how many of the row's slice's edges lie strictly above its score."""
    seg = np.zeros(len(s), dtype=np.int64)
    for k, e in edges.items():
        if len(e):
            rows = sl == k
            seg[rows] = len(e) - np.searchsorted(np.asarray(e, dtype=np.float64)[::-1], s[rows], side="right")
    return seg


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

def _pass2(replicates: int, offsets: Mapping[Tuple[int, int], np.ndarray], per_slice: Mapping[int, tuple],
           edges: Mapping[int, np.ndarray], chunk: int):
    def fn(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        scans: Dict[Tuple[int, int], _SegmentScan] = {}
        for batch in _chunks(batches, chunk):
            sl, seg, s, t, y, h = _arrays(batch, edges)
            for key, idx in _runs(sl, seg):
                scan = scans.get(key)
                if scan is None:
                    targets, cut_sizes, decile_bounds = per_slice[key[0]]
                    scan = scans[key] = _SegmentScan(offsets[key], targets, cut_sizes, decile_bounds)
                scan.add_rows(s[idx], t[idx], y[idx], h[idx], replicates)
        out: List[tuple] = []
        for key, scan in scans.items():
            out += scan.results(*key)
        yield _out_batch(out)

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
    chunk: int
    edges: Dict[int, np.ndarray]


def prepare_slices(df, slice_col: str, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                   settings: ScanSettings, labels: Optional[Mapping[int, str]] = None,
                   cluster_col: Optional[str] = None) -> PreparedScan:
    """Pass 1 (and the replicate pass): segment edges, offsets and the ordered frame of pass 2.

    ``cluster_col`` (cluster-randomized experiments): the bootstrap hash is taken from the cluster id
    instead of the customer id, so every member of a cluster shares its cluster's Poisson weight and the
    intervals are cluster-robust (a null cluster id falls back to the customer's own id)."""
    from pyspark.sql import functions as F

    require_columns(df, (slice_col, score_col, treatment_col, outcome_col, id_col, cluster_col), "uplift evaluation")
    labels = dict(labels or {})
    B = int(settings.replicates)
    R = B + 1
    chunk = int(settings.chunk_rows or chunk_rows(B))
    base = df.select(
        F.col(slice_col).cast("int").alias(_SL),
        F.col(score_col).cast("double").alias(_S),
        F.col(treatment_col).cast("int").alias(_T),
        F.col(outcome_col).cast("double").alias(_Y),
        F.col(id_col).cast("string").alias(_ID),
        *([F.coalesce(F.col(cluster_col).cast("string"), F.concat(F.lit("customer:"), F.col(id_col).cast("string")))
           .alias(_CL)] if cluster_col else []),
    ).where(F.col(_SL).isNotNull())
    spark = df.sparkSession

    # pass 1: a histogram aggregated on the executors (partial aggregation: no shuffle of rows)
    hist = _histogram(base).collect()
    slice_rows = sum(float(r["n"]) for r in hist)
    # enough partitions that no task sorts (and spills) millions of rows while other cores wait
    partitions = max(int(spark.conf.get("spark.sql.shuffle.partitions")), 1,
                     math.ceil(slice_rows / ROWS_PER_SORT_PARTITION))
    plans = _plan_slices(hist, SEGMENTS_PER_PARTITION * partitions, settings.n_segments,
                         (score_col, treatment_col, outcome_col), labels)
    partitions = min(partitions, sum(p.seg_totals.shape[0] for p in plans.values()))
    edges = {k: p.edges for k, p in plans.items()}
    row_hash = F.xxhash64(F.col(_CL if cluster_col else _ID), F.lit(int(settings.seed))).alias(_H)

    rep_totals: Dict[Tuple[int, int], np.ndarray] = {}
    if B > 0:
        rep = (base.select(_SL, _S, _T, _Y, row_hash).mapInArrow(_replicate_pass(B, chunk, edges), _OUT_SCHEMA)
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

    # the driver places every (slice, segment) in a partition; the sort is by score alone (see _runs);
    # the segment and the hash are found again after the shuffle, so rows cross it narrower
    placed = base.withColumn(_SEG, _seg_expr(edges)).withColumn(
        _PART, _part_expr(_assign_partitions(plans, partitions), partitions)).drop(_SEG)
    ordered = placed.repartition(partitions, _PART).sortWithinPartitions(F.col(_S).desc(), F.col(_ID).desc())
    cols = [_SL, _S, _T, _Y] + ([row_hash] if B > 0 else [])
    return PreparedScan(ordered.select(*cols), plans, offsets, per_slice, B, chunk, edges)


def scan_slices(df, slice_col: str, score_col: str, treatment_col: str, outcome_col: str, id_col: str,
                settings: ScanSettings, labels: Optional[Mapping[int, str]] = None,
                cluster_col: Optional[str] = None) -> Dict[int, ScanResult]:
    """Exact curves of every slice of ``df`` (``slice_col``: int ids) in one shuffle; see the module doc.

    ``treatment_col`` is 1 (treated) / 0 (control) within each slice; ``labels`` name slices in
    errors. ``cluster_col``: bootstrap weights per cluster (see :func:`prepare_slices`).
    Returns one :class:`ScanResult` per slice id present.
    """
    prep = prepare_slices(df, slice_col, score_col, treatment_col, outcome_col, id_col, settings, labels,
                          cluster_col)
    second = prep.frame.mapInArrow(_pass2(prep.replicates, prep.offsets, prep.per_slice, prep.edges, prep.chunk),
                                   _OUT_SCHEMA).collect()
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
                settings: ScanSettings, cluster_col: Optional[str] = None) -> ScanResult:
    """Exact curves of one score column over all rows (treatment 1/0): a one-slice :func:`scan_slices`."""
    from pyspark.sql import functions as F

    require_columns(df, (score_col, treatment_col, outcome_col, id_col), "uplift evaluation")
    return scan_slices(df.withColumn(_SL, F.lit(0)), _SL, score_col, treatment_col, outcome_col, id_col,
                       settings, cluster_col=cluster_col)[0]
