"""Customer-level split assignment.

Design (why it looks like this):

* **Customer level.** A customer's rows all land in one split, so a model never sees one of a
  customer's assignments in training and another in evaluation.
* **Out of time.** A customer with *any* assignment at/after the cutoff is wholly ``oot``: none of a
  customer's later rows can reach an earlier split. (A customer with rows on both sides of the cutoff
  therefore brings some pre-cutoff rows into ``oot``; that errs on the side of never training on the
  future. Such customers are flagged ``straddles`` for the run summary.)
* **Deterministic hash.** Every in-time customer gets ``u = xxhash64("uplift_spark.split:<seed>",
  customer_id)`` mapped to ``[0, 1)``. Nothing depends on partitioning, row order or other customers.
* **method="hash" (default).** ``u`` against fixed thresholds (train, train+valid). Within every stratum
  (arm × outcome class) the shares then match the fractions up to binomial sampling error, a new
  customer never moves an old one, and there is no shuffle by stratum, hence no skew at any scale.
* **method="rank".** Customers are ranked by ``u`` inside their stratum (a ``Window`` partitioned by
  stratum) and the rank position replaces ``u``: shares match exactly (±1 customer per stratum), which
  matters for small experiments, at the price of one task per stratum (few, large strata: skew) and of
  old customers moving when new ones arrive. Use it for experiments up to a few million customers.
* **Folds.** With ``n_folds > 0`` train customers get ``fold = floor(v / train * K)`` from the same
  stratified value ``v``, so folds are as balanced as the split itself; every other customer, and every
  customer when ``n_folds == 0``, gets ``fold = -1`` (never null, so filters need no null logic).
* **Clusters.** With ``data.cluster`` (cluster-randomized experiments: households, stores) the unit of
  all of the above is the cluster: the hash is of the cluster id, the stratum is the arm (and outcome
  class) of the cluster's earliest row, a cluster with any assignment at/after the cutoff is wholly
  ``oot``, and every customer takes its cluster's split and fold, so no cluster straddles two splits.
  A customer listed under several clusters takes the smallest cluster id (validation flags such data);
  a customer without a cluster id is its own cluster.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ..config import DataConfig, SplitConfig
from ..errors import ConfigError
from ..schemas import require_columns
from ..joins import join_customers
from .cutoff import micros, resolve_cutoff

SPLIT_NAMES = ("train", "valid", "test", "oot")
NO_FOLD = -1
_AUTO = object()
_MANTISSA = (1 << 53) - 1


def expected_splits(split_cfg: SplitConfig, with_oot: bool) -> Tuple[str, ...]:
    """The splits that must be non-empty: those with a positive fraction, plus ``oot`` when cut."""
    names = tuple(n for n in ("train", "valid", "test") if getattr(split_cfg, n) > 0)
    return names + (("oot",) if with_oot else ())


def split_value(customer_id_col, seed: int):
    """``u`` in ``[0, 1)`` from the seed and the customer id: 53 hash bits, exact in a double."""
    from pyspark.sql import functions as F

    hashed = F.xxhash64(F.lit(f"uplift_spark.split:{int(seed)}"), customer_id_col.cast("string"))
    return hashed.bitwiseAND(F.lit(_MANTISSA)).cast("double") / float(1 << 53)


def _require(df, column: Optional[str], key: str) -> None:
    require_columns(df, [column], f"{key} (experiment log)")


def _thresholds(split_cfg: SplitConfig) -> Tuple[float, float]:
    total = split_cfg.train + split_cfg.valid + split_cfg.test
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"split: train + valid + test must be 1.0, got {total:.4f}")
    if split_cfg.train <= 0:
        raise ConfigError("split.train: must be above 0 (there is nothing to fit on otherwise)")
    t1 = split_cfg.train if (split_cfg.valid > 0 or split_cfg.test > 0) else 2.0
    t2 = split_cfg.train + split_cfg.valid if split_cfg.test > 0 else 2.0
    return t1, t2


def _outcome_class(cust, data_cfg: DataConfig, split_cfg: SplitConfig):
    """Binary outcome → "0"/"1"; continuous → quantile bin "q1".."qB" (edges by approxQuantile)."""
    from pyspark.sql import functions as F

    if not data_cfg.outcomes:
        return F.lit("all")
    spec = data_cfg.outcome(data_cfg.main_outcome)
    y = F.col("_first._y")
    if spec.type == "binary":
        return F.coalesce(y.cast("int").cast("string"), F.lit("null"))
    if split_cfg.continuous_bins <= 1:
        return F.lit("all")
    probs = [i / split_cfg.continuous_bins for i in range(1, split_cfg.continuous_bins)]
    edges = cust.select(F.col("_first._y").cast("double").alias("_y")).approxQuantile(
        "_y", probs, split_cfg.quantile_error
    )
    edges = sorted(set(e for e in edges if e is not None))
    if not edges:
        return F.lit("all")
    index = sum((F.when(y.cast("double") > F.lit(e), 1).otherwise(0) for e in edges), F.lit(1))
    return F.when(y.isNull(), F.lit("null")).otherwise(F.concat(F.lit("q"), index.cast("string")))


def assign_splits(df, data_cfg: DataConfig, split_cfg: SplitConfig, cutoff_micros=_AUTO,
                  with_stratum: bool = False):
    """One row per customer: ``customer_id`` (string), ``split``, ``fold`` (int, -1 outside folds).

    ``df`` is the experiment log (one or more rows per customer). ``cutoff_micros`` is the out-of-time
    cutoff from :func:`resolve_cutoff` (computed here when omitted; ``None`` = no ``oot``).
    ``with_stratum`` adds ``stratum`` and ``straddles`` for diagnostics (not part of the table).
    The output column is always named ``customer_id``, whatever ``data.customer_id`` is.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cid, arm, ts = data_cfg.customer_id, data_cfg.arm, data_cfg.assigned_at
    _require(df, cid, "data.customer_id")
    _require(df, arm, "data.arm")
    outcome = data_cfg.main_outcome if data_cfg.outcomes else None
    _require(df, outcome, "data.primary_outcome")
    t1, t2 = _thresholds(split_cfg)
    if cutoff_micros is _AUTO:
        cutoff_micros = resolve_cutoff(df, data_cfg, split_cfg.oot)
    use_time = cutoff_micros is not None
    if use_time:
        _require(df, ts, "data.assigned_at")

    # The customer's representative row (earliest assignment; ties by arm, outcome — without timestamps
    # simply the smallest arm, outcome) sets its stratum.
    has_time = ts is not None and ts in df.columns
    first = F.struct(
        (micros(ts) if has_time else F.lit(0).cast("long")).alias("_t"),
        F.col(arm).cast("string").alias("_arm"),
        (F.col(outcome) if outcome else F.lit(None).cast("double")).alias("_y"),
    )
    aggs = [F.min(first).alias("_first"), F.count(F.lit(1)).alias("_rows")]
    if use_time:
        aggs.append(F.max(micros(ts)).alias("_last_us"))
    cluster = data_cfg.cluster
    _require(df, cluster, "data.cluster")
    rows = df.where(F.col(cid).isNotNull())
    if cluster is not None:
        # the randomization unit is the cluster: its key replaces the customer id until the end
        unit_of = _unit_key(cid, cluster)
        members = rows.groupBy(F.col(cid).cast("string").alias("_member")).agg(F.min(unit_of).alias("_unit"))
        rows = rows.withColumn("_unit", unit_of)
        unit = F.col("_unit").alias("customer_id")
    else:
        unit = F.col(cid).cast("string").alias("customer_id")
    cust = rows.groupBy(unit).agg(*aggs)
    is_oot = (F.col("_last_us") >= F.lit(int(cutoff_micros))) if use_time else F.lit(False)
    cust = cust.withColumn("_oot", is_oot).withColumn("_u", split_value(F.col("customer_id"), split_cfg.seed))

    need_stratum = with_stratum or split_cfg.method == "rank"
    if need_stratum:
        cust = cust.withColumn(
            "stratum",
            F.concat_ws("|", F.coalesce(F.col("_first._arm"), F.lit("null")), _outcome_class(cust, data_cfg, split_cfg)),
        )
    if split_cfg.method == "rank":
        # oot customers are ranked apart so they never shift in-time ranks.
        by = Window.partitionBy("_oot", "stratum")
        ranked = F.row_number().over(by.orderBy("_u", "customer_id"))
        cust = cust.withColumn("_v", (ranked.cast("double") - 0.5) / F.count(F.lit(1)).over(by))
    else:
        cust = cust.withColumn("_v", F.col("_u"))

    v = F.col("_v")
    split = (
        F.when(F.col("_oot"), F.lit("oot"))
        .when(v < F.lit(t1), F.lit("train"))
        .when(v < F.lit(t2), F.lit("valid"))
        .otherwise(F.lit("test"))
    )
    cust = cust.withColumn("split", split)
    if split_cfg.n_folds > 0:
        k = int(split_cfg.n_folds)
        fold = F.least(F.floor(v / F.lit(split_cfg.train) * k).cast("int"), F.lit(k - 1))
        cust = cust.withColumn("fold", F.when(F.col("split") == "train", fold).otherwise(F.lit(NO_FOLD)))
    else:
        cust = cust.withColumn("fold", F.lit(NO_FOLD))
    cols = [F.col("customer_id"), F.col("split"), F.col("fold").cast("int").alias("fold")]
    if with_stratum:
        straddles = (F.col("_oot") & (F.col("_first._t") < F.lit(int(cutoff_micros)))) if use_time else F.lit(False)
        cols += [F.col("stratum"), straddles.alias("straddles")]
    out = cust.select(*cols)
    if cluster is None:
        return out
    # every member takes its cluster's split (one row per customer, as without clusters)
    return (members.join(out.withColumnRenamed("customer_id", "_unit"), "_unit")
            .select(F.col("_member").alias("customer_id"), *[c for c in out.columns if c != "customer_id"]))


def _unit_key(cid: str, cluster: str):
    """The cluster id as a string; a customer without one is its own cluster (a distinct key space)."""
    from pyspark.sql import functions as F

    return F.coalesce(F.concat(F.lit("c:"), F.col(cluster).cast("string")),
                      F.concat(F.lit("u:"), F.col(cid).cast("string")))


def attach_splits(df, splits, data_cfg: DataConfig):
    """The experiment rows with their customer's ``split`` and ``fold`` (inner join on the id)."""
    from pyspark.sql import functions as F

    keyed = splits.select(F.col("customer_id").alias("_split_cid"), "split", "fold")
    joined = join_customers(df, keyed, F.col(data_cfg.customer_id).cast("string") == F.col("_split_cid"), "inner")
    return joined.drop("_split_cid")


__all__ = ["SPLIT_NAMES", "NO_FOLD", "assign_splits", "attach_splits", "expected_splits", "split_value"]
