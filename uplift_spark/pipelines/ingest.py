"""Stage ``ingest``: load the configured experiment source into the ``experiment_log`` Delta table.

A source that breaks the contract (missing file, column or rows, wrong type) fails with a DataError
naming it before anything is written; a rerun with the same run id replaces that run's rows.
"""

from __future__ import annotations

from pyspark.sql import functions as F

from ..datasets import describe_source, read_source, resolve_data_config, to_experiment_log
from ..errors import DataError
from ..logs import get_logger
from ..schemas import conform
from .context import INGESTED, RunContext, Stopwatch

log = get_logger("ingest")

TABLE = "experiment_log"


def run(ctx: RunContext, **_: object) -> dict:
    """Read, check, write; returns rows, rows per arm and the table location."""
    clock = Stopwatch()
    cfg = ctx.cfg
    data = resolve_data_config(cfg)
    where = describe_source(data)
    raw = read_source(ctx.spark, data, cfg.synthetic, config_file=cfg.source_file)
    logged = to_experiment_log(raw, data, where)
    if logged.limit(1).count() == 0:
        raise DataError(f"{where}: the source has no rows (empty table)")
    out = conform(logged.withColumn("run_id", F.lit(ctx.run_id)), TABLE)
    location = ctx.store.write(out, TABLE, ctx.run_id)
    # New data for this run: an earlier gate verdict no longer describes it.
    if ctx.store.exists("validation_report") and \
            ctx.store.read("validation_report", run_id=ctx.run_id).limit(1).count() > 0:
        ctx.store.delete_run(["validation_report"], ctx.run_id)
    ctx.remember(INGESTED)
    counts = {
        r["arm"]: int(r["n"])
        for r in ctx.store.read(TABLE, run_id=ctx.run_id).groupBy("arm").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    rows = sum(counts.values())
    log.info("ingested %d rows from %s into %s in %.1fs", rows, where, TABLE, clock())
    return {"rows": rows, "arms": counts, "location": location, "source": data.source, "run_id": ctx.run_id}
