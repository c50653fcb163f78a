"""The validation gate, enforced for every stage after ``validate`` however it is started.

``uplift-spark run`` stops at a failed gate by itself; a stage run on its own (``uplift-spark split
--run-id R``) checks the run's ``validation_report`` instead, so data that failed its gates (or was
never gated) cannot reach splits, models or decisions unless an expert says ``--skip-validation``.
"""

from __future__ import annotations

from ..errors import ValidationFailed
from ..validation.results import FAIL, WARN
from .context import RunContext

AFTER_VALIDATE = ("split", "train", "predict", "evaluate", "score", "decide", "evaluate-policy", "monitor", "report",
                  "publish")
REPORT = "validation_report"


def require_validated(ctx: RunContext) -> None:
    """Raise ValidationFailed (the gate's exit code) unless this run passed ``validate``."""
    hint = "fix the data, rerun 'uplift-spark validate', or pass --skip-validation"
    rows = []
    if ctx.store.exists(REPORT):  # one row per check: small
        rows = ctx.store.read(REPORT, run_id=ctx.run_id).select("check", "arm", "column", "status").collect()
    if not rows:
        raise ValidationFailed(f"run {ctx.run_id!r} has not been validated: run 'uplift-spark validate "
                               f"--run-id {ctx.run_id}' first, or pass --skip-validation")
    stopping = (FAIL, WARN) if ctx.cfg.validation.fail_on_warn else (FAIL,)
    bad = [r for r in rows if r["status"] in stopping]
    if bad:
        names = ", ".join(sorted({r["check"] + ("[" + "/".join(x for x in (r["arm"], r["column"]) if x) + "]"
                                                if (r["arm"] or r["column"]) else "") for r in bad}))
        raise ValidationFailed(f"run {ctx.run_id!r} failed its validation gate ({len(bad)} check(s): {names}); "
                               f"{hint}", failures=())
