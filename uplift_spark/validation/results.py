"""One row per check outcome: the ``validation_report`` contract and the pass/warn/fail logic."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, List, Optional, Sequence

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)


@dataclass(frozen=True)
class CheckResult:
    """A gate's verdict on one (arm, column); ``metric`` is compared with ``threshold``."""

    check: str
    status: str
    message: str
    arm: Optional[str] = None
    column: Optional[str] = None
    metric: Optional[float] = None
    threshold: Optional[float] = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check {self.check!r}: status {self.status!r} is not one of {STATUSES}")

    def as_dict(self) -> dict:
        return asdict(self)


def status_above(value: float, warn: Optional[float], fail: Optional[float]) -> str:
    """fail when ``value > fail``, warn when ``value > warn``, else pass (a None limit is off)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return WARN
    if fail is not None and value > fail:
        return FAIL
    if warn is not None and value > warn:
        return WARN
    return PASS


def failures(results: Iterable[CheckResult], fail_on_warn: bool = False) -> List[CheckResult]:
    """The results that stop the pipeline."""
    bad = (FAIL, WARN) if fail_on_warn else (FAIL,)
    return [r for r in results if r.status in bad]


def summarize(results: Sequence[CheckResult]) -> dict:
    counts = {s: sum(1 for r in results if r.status == s) for s in STATUSES}
    return {"checks": len(results), "passed": counts[PASS], "warned": counts[WARN], "failed": counts[FAIL]}


def failure_message(bad: Sequence[CheckResult], limit: int = 8) -> str:
    """One line naming the failing checks (the CLI prints it; the report table has the details)."""
    parts = []
    for r in bad[:limit]:
        where = "/".join(x for x in (r.arm, r.column) if x)
        parts.append(f"{r.check}{'[' + where + ']' if where else ''} {r.status}: {r.message}")
    more = f" (+{len(bad) - limit} more)" if len(bad) > limit else ""
    return f"{len(bad)} validation check(s) failed: " + "; ".join(parts) + more


def to_frame(spark, results: Sequence[CheckResult], run_id: str):
    """The results as a DataFrame with the ``validation_report`` columns (small: one row per check)."""
    from pyspark.sql import types as T

    schema = T.StructType([
        T.StructField("run_id", T.StringType()), T.StructField("check", T.StringType()),
        T.StructField("arm", T.StringType()), T.StructField("column", T.StringType()),
        T.StructField("metric", T.DoubleType()), T.StructField("threshold", T.DoubleType()),
        T.StructField("status", T.StringType()), T.StructField("message", T.StringType()),
    ])
    rows = [
        (run_id, r.check, r.arm, r.column, None if r.metric is None else float(r.metric),
         None if r.threshold is None else float(r.threshold), r.status, r.message)
        for r in results
    ]
    return spark.createDataFrame(rows, schema)
