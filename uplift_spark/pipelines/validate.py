"""Stage ``validate``: run the data gates on this run's experiment log and write ``validation_report``.

The report is written even when a gate fails (it is the diagnostic); then :class:`ValidationFailed`
stops the pipeline, and rows an earlier attempt of this run wrote to downstream tables are removed so
nothing downstream describes data that failed its gates.
"""

from __future__ import annotations

from ..datasets import logged_data_config
from ..errors import ValidationFailed
from ..io.tables import PUBLISHED, TABLES
from ..logs import get_logger
from ..schemas import conform
from ..validation import failure_message, failures, run_checks, summarize, to_frame
from .context import RunContext, Stopwatch

log = get_logger("validate")

SOURCE = "experiment_log"
TABLE = "validation_report"
DOWNSTREAM = tuple(t for t in TABLES if t not in (SOURCE, TABLE) + PUBLISHED)


def _clear_downstream(ctx: RunContext) -> list:
    cleared = []
    for name in DOWNSTREAM:
        if ctx.store.exists(name) and ctx.store.read(name, run_id=ctx.run_id).limit(1).count() > 0:
            ctx.store.delete_run([name], ctx.run_id)
            cleared.append(name)
    return cleared


def run(ctx: RunContext, **_: object) -> dict:
    """Gate the data; returns check counts and the report location, or raises ValidationFailed."""
    clock = Stopwatch()
    cfg = ctx.cfg
    data = logged_data_config(cfg)
    df = ctx.store.read_run(SOURCE, ctx.run_id)
    results = run_checks(df, data, cfg.validation)
    report = conform(to_frame(ctx.spark, results, ctx.run_id), TABLE)
    location = ctx.store.write(report.coalesce(1), TABLE, ctx.run_id)
    summary = dict(summarize(results), location=location, run_id=ctx.run_id)
    bad = failures(results, cfg.validation.fail_on_warn)
    log.info("validation: %d checks, %d warn, %d fail in %.1fs", summary["checks"], summary["warned"],
             summary["failed"], clock())
    if bad:
        cleared = _clear_downstream(ctx)
        if cleared:
            log.info("removed run %s rows from %s", ctx.run_id, ", ".join(cleared))
        raise ValidationFailed(failure_message(bad), failures=bad)
    ctx.remember()  # runs/LATEST only ever names a run that passed its gate
    srm = next((r for r in results if r.check == "srm"), None)
    if srm is not None:
        summary["srm_pvalue"] = srm.metric
    return summary
