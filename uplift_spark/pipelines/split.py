"""``uplift-spark split``: read the run's experiment log, split it once, check it, record it.

Writes ``splits`` (run_id, customer_id, split, fold) and ``split_summary`` (per split × arm × outcome).
The customer-level assignment is cached for the duration of the stage, so the data is read once for the
assignment, once for the summary join and the splits table is written from the cache. When the check
fails, rows an earlier attempt of this run wrote are removed, so later stages never read a stale split.
"""

from __future__ import annotations

import dataclasses
from typing import Dict

from ..config import DataConfig
from ..datasets import resolve_data_config
from ..errors import SplitError
from ..logs import get_logger
from ..schemas import conform
from ..splitting import (
    assign_splits, check_splits, expected_splits, format_micros, resolve_cutoff, stratum_balance, summarize_splits,
)
from ..splitting.assign import attach_splits
from .context import RunContext, Stopwatch

log = get_logger("split")

_STANDARD = {"customer_id": "customer_id", "arm": "arm"}


def log_data_config(df, data_cfg: DataConfig) -> DataConfig:
    """The data config as the experiment log spells it: ingest stores ``customer_id``/``arm`` under
    their contract names, whatever the source called them."""
    changes = {}
    for key, standard in _STANDARD.items():
        if getattr(data_cfg, key) not in df.columns and standard in df.columns:
            changes[key] = standard
    if data_cfg.assigned_at and data_cfg.assigned_at not in df.columns and "assigned_at" in df.columns:
        changes["assigned_at"] = "assigned_at"
    return dataclasses.replace(data_cfg, **changes) if changes else data_cfg


def run(ctx: RunContext, **_ignored) -> Dict[str, object]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    watch = Stopwatch()
    cfg, store, run_id = ctx.cfg, ctx.store, ctx.run_id
    split_cfg = cfg.split
    log_df = store.read_run("experiment_log", run_id)
    # the cluster column as the data contract in force names it (the synthetic generator's households)
    data_cfg = log_data_config(log_df, dataclasses.replace(cfg.data, cluster=resolve_data_config(cfg).cluster))
    if split_cfg.oot != type(split_cfg.oot)() and data_cfg.assigned_at is None:
        log.warning("split.oot is set but data.assigned_at is not: no out-of-time split for this data")

    cutoff = resolve_cutoff(log_df, data_cfg, split_cfg.oot)
    assigned = assign_splits(log_df, data_cfg, split_cfg, cutoff_micros=cutoff, with_stratum=True)
    assigned = assigned.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        summary_rows = summarize_splits(attach_splits(log_df, assigned, data_cfg), data_cfg).collect()
        expected = expected_splits(split_cfg, with_oot=cutoff is not None)
        try:
            totals = check_splits(summary_rows, data_cfg, split_cfg, expected=expected)
        except SplitError:
            store.delete_run(["splits", "split_summary"], run_id)
            raise
        per_split = {
            r["split"]: {"customers": int(r["customers"]), "straddling": int(r["straddling"])}
            for r in assigned.groupBy("split").agg(
                F.count(F.lit(1)).alias("customers"), F.sum(F.col("straddles").cast("int")).alias("straddling")
            ).collect()
        }
        balance = stratum_balance(assigned, split_cfg)

        splits_df = conform(assigned.withColumn("run_id", F.lit(run_id)), "splits")
        store.write(splits_df, "splits", run_id)
        summary_df = ctx.spark.createDataFrame(
            [r.asDict() for r in summary_rows],
            "split string, arm string, outcome string, rows long, share double, outcome_mean double",
        )
        store.write(conform(summary_df.withColumn("run_id", F.lit(run_id)), "split_summary"), "split_summary", run_id)
    finally:
        assigned.unpersist()

    result = {
        "rows": {s: totals.get(s, 0) for s in expected},
        "customers": {s: v["customers"] for s, v in sorted(per_split.items())},
        "oot_cutoff": format_micros(cutoff),
        "oot_customers_with_earlier_rows": per_split.get("oot", {}).get("straddling", 0),
        "method": split_cfg.method,
        "n_folds": split_cfg.n_folds,
        "seed": split_cfg.seed,
        "strata": balance["strata"],
        "max_stratum_share_gap": balance["max_share_gap"],
        "tables": {"splits": store.location("splits"), "split_summary": store.location("split_summary")},
        "seconds": round(watch(), 1),
    }
    log.info("split run %s: customers %s, oot cutoff %s", run_id, result["customers"], result["oot_cutoff"])
    return result
