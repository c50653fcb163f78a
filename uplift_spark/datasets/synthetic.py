"""A multi-arm randomized experiment with known effects, generated on the executors.

Why synthetic data: Hillstrom has no timestamps and no ground truth. Here every row carries
``true_uplift_<arm>`` = P(conversion | x, arm) − P(conversion | x, control), computed from the very
formula that draws the outcome, so learners, curves and policies can be checked against the truth.

Scale and reproducibility: rows come from ``spark.range`` and are filled by ``mapInPandas``. The random
numbers of row ``i`` depend only on ``(seed, i // BLOCK)`` and ``i % BLOCK`` (one NumPy generator per
block of ids), so the data are identical for the same seed whatever the partitioning or Arrow batch size,
and no driver memory grows with the number of rows.

Structure (``x*`` standard normal, ``c*`` categorical):

* base logit = logit(base_rate) + 0.5·x0 − 0.4·x1 + 0.25·x0·x1 + level effect of c0
* treatment ``k`` (0-based) adds, on the logit scale, ``effect_scale · (a_k + b_k · tanh(x_{3+k}))``
  (+0.3 when ``c1`` is the arm's favourite level), except in the **harmed segment** — the top
  ``harmed_share`` of ``x2`` — where every treatment subtracts ``effect_scale · (0.6 + 0.1·k)``
  ("sleeping dogs": contacting them lowers conversion).
* ``revenue`` = conversion · lognormal(3 + 0.2·x1, 0.5), lowered by 10 % in the last arm (a discount).
* ``drift``: ``drift_features`` are shifted by ``drift_strength · m / (months − 1)`` standard deviations
  in calendar month ``m`` (0 = first month), so the last month is shifted by ``drift_strength``.
* ``propensity: covariate`` makes assignment depend on x0/x1 through a softmax around the allocation;
  the exact probabilities are written as ``propensity_<arm>`` either way.
* ``cluster_size`` (> 1): customers come in households (column ``household_id``) of geometric size with
  that mean; a household never crosses a block of ids, so it is still a function of (seed, id). The whole
  household gets the arm and assignment time drawn for its first member (cluster randomization; uniform
  propensity only) and a shared ``cluster_effect · N(0, 1)`` shift of the outcome logit, so
  customers of one household are correlated and customer-level intervals are too narrow.
"""

from __future__ import annotations

import calendar
import math
import types
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..config import DataConfig, OutcomeSpec, SyntheticConfig
from ..errors import ConfigError
from ..schemas import slug

BLOCK = 8192
ID_WIDTH = 10
LEVELS = ("A", "B", "C", "D")
LEVEL_PROBS = (0.4, 0.3, 0.2, 0.1)
C0_LOGIT = (0.0, 0.2, -0.2, 0.4)
# a_k > b_k: outside the harmed segment every treatment helps, so negative uplift marks exactly that segment
ARM_BASE = (0.30, 0.40, 0.50, 0.35, 0.45)
ARM_SLOPE = (0.25, 0.20, 0.30, 0.20, 0.25)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def arms(cfg: SyntheticConfig) -> Tuple[str, ...]:
    """Control first, then the treatments (the order of ``propensity_*`` columns)."""
    return (cfg.control_arm,) + tuple(cfg.treatment_arms)


def allocation(cfg: SyntheticConfig) -> Dict[str, float]:
    """Assignment shares per arm: ``cfg.allocation`` normalised to 1, or equal shares."""
    names = arms(cfg)
    if len(set(names)) != len(names):
        raise ConfigError(f"synthetic: duplicate arm in {list(names)}")
    if not cfg.allocation:
        return {a: 1.0 / len(names) for a in names}
    unknown = sorted(set(cfg.allocation) - set(names))
    if unknown:
        raise ConfigError(f"synthetic.allocation: {unknown[0]!r} is not an arm of {list(names)}")
    missing = [a for a in names if a not in cfg.allocation]
    if missing:
        raise ConfigError(f"synthetic.allocation: no share for arm {missing[0]!r} (give every arm a share)")
    bad = [a for a in names if not cfg.allocation[a] > 0]
    if bad:
        raise ConfigError(f"synthetic.allocation.{bad[0]}: share must be > 0, got {cfg.allocation[bad[0]]!r}")
    total = sum(cfg.allocation[a] for a in names)
    return {a: cfg.allocation[a] / total for a in names}


def _time_range(cfg: SyntheticConfig) -> Tuple[int, int, List[int]]:
    """Start/end epoch seconds and the month boundaries (epoch seconds) of the experiment window."""
    try:
        start = datetime.strptime(cfg.start, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ConfigError(f"synthetic.start: {cfg.start!r} is not a YYYY-MM-DD date") from None
    bounds = []
    year, month = start.year, start.month
    for _ in range(cfg.months + 1):
        day = min(start.day, calendar.monthrange(year, month)[1])
        bounds.append(int(datetime(year, month, day, tzinfo=timezone.utc).timestamp()))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return bounds[0], bounds[-1], bounds


def feature_names(cfg: SyntheticConfig) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    return tuple(f"x{j}" for j in range(cfg.n_numeric)), tuple(f"c{j}" for j in range(cfg.n_categorical))


def _check(cfg: SyntheticConfig) -> None:
    numeric, _ = feature_names(cfg)
    for feat in cfg.drift_features if cfg.drift else ():
        if feat not in numeric:
            raise ConfigError(f"synthetic.drift_features: {feat!r} is not a numeric feature {list(numeric)}")
    if not cfg.treatment_arms:
        raise ConfigError("synthetic.treatment_arms: at least one treatment arm is required")
    allocation(cfg)
    _time_range(cfg)
    if clustered(cfg) and cfg.propensity == "covariate":
        raise ConfigError("synthetic.propensity: 'covariate' is not supported with synthetic.cluster_size "
                          "(a household is assigned as one unit); use 'uniform'")


def clustered(cfg: SyntheticConfig) -> bool:
    """Households are generated when the mean cluster size is above one customer."""
    return bool(cfg.cluster_size) and float(cfg.cluster_size) > 1.0


def _block_draws(seed: int, block: int, n_num: int, n_cat: int,
                 cluster_size: float = 0.0) -> Dict[str, np.ndarray]:
    """Every random number of one block of BLOCK ids, drawn in a fixed order (household draws last, so
    the other draws are the same with and without households)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(block), 7919])))
    draws = {
        "x": rng.standard_normal((BLOCK, n_num)),
        "c": rng.random((BLOCK, max(n_cat, 1))),
        "t": rng.random(BLOCK),
        "lag": rng.random(BLOCK),
        "arm": rng.random(BLOCK),
        "y": rng.random(BLOCK),
        "rev": rng.standard_normal(BLOCK),
        "opt": rng.random(BLOCK),
        "dsc": rng.random(BLOCK),
    }
    if cluster_size > 1.0:
        starts = rng.random(BLOCK) < 1.0 / cluster_size
        starts[0] = True
        # index (within the block) of each id's household head: its first member
        draws["head"] = np.maximum.accumulate(np.where(starts, np.arange(BLOCK), 0)).astype(np.int64)
        draws["hz"] = rng.standard_normal(BLOCK)
    return draws


def _draws_for(ids: np.ndarray, seed: int, n_num: int, n_cat: int,
               cluster_size: float = 0.0) -> Dict[str, np.ndarray]:
    """Random numbers for arbitrary ids: depends only on (seed, id), never on the batching.

    With households, ``head`` is the household head's id and ``arm``/``hz`` are the head's draws, so
    every member of a household shares them."""
    blocks = ids // BLOCK
    offsets = ids % BLOCK
    out: Dict[str, np.ndarray] = {}
    for block in np.unique(blocks):
        mask = blocks == block
        draws = _block_draws(seed, int(block), n_num, n_cat, cluster_size)
        if "head" in draws:
            head = draws["head"]
            draws["arm"] = draws["arm"][head]
            draws["t"] = draws["t"][head]
            draws["hz"] = draws["hz"][head]
            draws["head"] = head + int(block) * BLOCK
        for key, arr in draws.items():
            if key not in out:
                out[key] = np.empty((len(ids),) + arr.shape[1:], dtype=arr.dtype)
            out[key][mask] = arr[offsets[mask]]
    return out


def _make_generator(cfg: SyntheticConfig):
    """The per-batch function run by ``mapInPandas`` (closes over plain values only)."""
    import pandas as pd

    names = arms(cfg)
    alloc = allocation(cfg)
    shares = np.array([alloc[a] for a in names])
    n_num, n_cat = cfg.n_numeric, cfg.n_categorical
    t0, t1, bounds = _time_range(cfg)
    bounds = np.array(bounds[1:-1], dtype=np.int64)
    base = _logit(cfg.base_rate)
    harm_cut = _norm_ppf(1.0 - cfg.harmed_share) if cfg.harmed_share > 0 else np.inf
    drift_idx = [int(f[1:]) for f in cfg.drift_features] if cfg.drift and cfg.months > 1 else []
    level_cum = np.cumsum(LEVEL_PROBS)
    seed, scale, months = cfg.seed, cfg.effect_scale, cfg.months
    covariate = cfg.propensity == "covariate"
    n_treat = len(names) - 1
    households = clustered(cfg)
    cluster_size = float(cfg.cluster_size) if households else 0.0
    cluster_effect = float(cfg.cluster_effect)

    def xcol(x, j):
        return x[:, j % n_num]

    def generate(batches):
        for batch in batches:
            ids = batch["id"].to_numpy(dtype=np.int64)
            if len(ids) == 0:
                continue
            d = _draws_for(ids, seed, n_num, n_cat, cluster_size)
            n = len(ids)
            ts = t0 + np.floor(d["t"] * (t1 - t0)).astype(np.int64)
            month = np.searchsorted(bounds, ts, side="right")
            x = d["x"].copy()
            for j in drift_idx:
                x[:, j] += cfg.drift_strength * month / (months - 1)
            cats = np.searchsorted(level_cum, d["c"][:, :n_cat], side="right").clip(0, len(LEVELS) - 1)
            # outcome model
            z0 = base + 0.5 * xcol(x, 0) - 0.4 * xcol(x, 1) + 0.25 * xcol(x, 0) * xcol(x, 1)
            if n_cat:
                z0 = z0 + np.asarray(C0_LOGIT)[cats[:, 0]]
            if households:
                z0 = z0 + cluster_effect * d["hz"]
            harmed = xcol(x, 2) > harm_cut
            p_ctrl = _sigmoid(z0)
            p_arm = [p_ctrl]
            for k in range(n_treat):
                tau = ARM_BASE[k % len(ARM_BASE)] + ARM_SLOPE[k % len(ARM_SLOPE)] * np.tanh(xcol(x, 3 + k))
                if n_cat > 1:
                    tau = tau + 0.3 * (cats[:, 1] == k % len(LEVELS))
                tau = np.where(harmed, -(0.6 + 0.1 * k), tau)
                p_arm.append(_sigmoid(z0 + scale * tau))
            p_arm = np.stack(p_arm, axis=1)
            # assignment
            if covariate:
                logits = np.log(shares)[None, :].repeat(n, 0)
                for k in range(1, len(names)):
                    sign = 1.0 if k % 2 else -1.0
                    logits[:, k] += 0.4 * sign * np.tanh(xcol(x, 0)) + 0.2 * np.tanh(xcol(x, 1)) * (k == n_treat)
                prop = np.exp(logits - logits.max(axis=1, keepdims=True))
                prop /= prop.sum(axis=1, keepdims=True)
            else:
                prop = np.broadcast_to(shares, (n, len(names)))
            arm_idx = (d["arm"][:, None] > np.cumsum(prop, axis=1)).sum(axis=1).clip(0, len(names) - 1)
            p_obs = p_arm[np.arange(n), arm_idx]
            conversion = (d["y"] < p_obs).astype(np.int32)
            revenue = conversion * np.exp(3.0 + 0.2 * xcol(x, 1) + 0.5 * d["rev"])
            if n_treat >= 2:
                revenue = np.where(arm_idx == len(names) - 1, 0.9 * revenue, revenue)
            lag = 1 + np.floor(d["lag"] * 30 * 86400).astype(np.int64)
            out = {
                "customer_id": np.char.add("s", np.char.zfill(ids.astype(str), ID_WIDTH)),
                "arm": np.asarray(names, dtype=object)[arm_idx],
                "assigned_s": ts,
                "features_s": ts - lag,
            }
            if households:
                out["household_id"] = np.char.add("h", np.char.zfill(d["head"].astype(str), ID_WIDTH))
            for j in range(n_num):
                out[f"x{j}"] = x[:, j]
            for j in range(n_cat):
                out[f"c{j}"] = np.asarray(LEVELS, dtype=object)[cats[:, j]]
            out["opted_in"] = (d["opt"] < 0.8).astype(np.int32)
            out["days_since_contact"] = np.floor(-np.log1p(-d["dsc"]) * 45).astype(np.int32)
            out["conversion"] = conversion
            out["revenue"] = revenue.astype(np.float64)
            for k, a in enumerate(names):
                out[f"propensity_{slug(a)}"] = np.ascontiguousarray(prop[:, k], dtype=np.float64)
            for k, a in enumerate(names[1:], start=1):
                out[f"true_uplift_{slug(a)}"] = p_arm[:, k] - p_arm[:, 0]
            yield pd.DataFrame(out)

    return generate


def _schema(cfg: SyntheticConfig):
    from pyspark.sql import types as T

    numeric, categorical = feature_names(cfg)
    fields = [
        T.StructField("customer_id", T.StringType()),
        T.StructField("arm", T.StringType()),
        T.StructField("assigned_s", T.LongType()),
        T.StructField("features_s", T.LongType()),
    ]
    if clustered(cfg):
        fields.append(T.StructField("household_id", T.StringType()))
    fields += [T.StructField(c, T.DoubleType()) for c in numeric]
    fields += [T.StructField(c, T.StringType()) for c in categorical]
    fields += [
        T.StructField("opted_in", T.IntegerType()),
        T.StructField("days_since_contact", T.IntegerType()),
        T.StructField("conversion", T.IntegerType()),
        T.StructField("revenue", T.DoubleType()),
    ]
    fields += [T.StructField(f"propensity_{slug(a)}", T.DoubleType()) for a in arms(cfg)]
    fields += [T.StructField(f"true_uplift_{slug(a)}", T.DoubleType()) for a in cfg.treatment_arms]
    return T.StructType(fields)


def generate_synthetic(spark, cfg: SyntheticConfig, n_rows: Optional[int] = None):
    """The synthetic experiment log as a Spark DataFrame (lazy; rows are made on the executors).

    ``n_rows`` overrides ``cfg.n_rows`` (tests). Same ``cfg`` and ``n_rows`` → identical rows.
    """
    from pyspark.sql import functions as F

    _check(cfg)
    n = int(cfg.n_rows if n_rows is None else n_rows)
    if n < 1:
        raise ConfigError(f"synthetic.n_rows: must be at least 1, got {n}")
    schema = _schema(cfg)
    raw = spark.range(0, n, 1, numPartitions=min(cfg.partitions, n)).mapInPandas(_make_generator(cfg), schema)
    cols = []
    for name in schema.fieldNames():
        if name == "assigned_s":
            cols.append(F.timestamp_seconds("assigned_s").alias("assigned_at"))
        elif name == "features_s":
            cols.append(F.timestamp_seconds("features_s").alias("features_at"))
        else:
            cols.append(F.col(name))
    return raw.select(*cols)


def synthetic_data_config(cfg: SyntheticConfig) -> DataConfig:
    """The :class:`DataConfig` describing :func:`generate_synthetic`'s columns."""
    _check(cfg)
    numeric, categorical = feature_names(cfg)
    return DataConfig(
        source="synthetic",
        customer_id="customer_id",
        arm="arm",
        control_arm=cfg.control_arm,
        treatment_arms=tuple(cfg.treatment_arms),
        assigned_at="assigned_at",
        features=numeric + categorical,
        categorical_features=categorical,
        feature_snapshot_at="features_at",
        outcomes=(OutcomeSpec("conversion", "binary"), OutcomeSpec("revenue", "continuous", min=0.0)),
        primary_outcome="conversion",
        propensity="propensity",
        allocation=types.MappingProxyType(allocation(cfg)),
        outcome_like_columns=tuple(f"true_uplift_{slug(a)}" for a in cfg.treatment_arms),
        cluster="household_id" if clustered(cfg) else None,
    )


def harmed_threshold(cfg: SyntheticConfig) -> float:
    """x2 above this value is the harmed segment (for tests and benchmarks)."""
    return _norm_ppf(1.0 - cfg.harmed_share) if cfg.harmed_share > 0 else math.inf
