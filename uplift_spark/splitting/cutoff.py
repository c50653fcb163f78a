"""Where the out-of-time period starts.

The cutoff is kept as integer microseconds since the epoch (UTC): comparing ``unix_micros(ts)`` with an
integer avoids any Python/JVM time-zone conversion of timestamp literals, so the same config gives the
same cutoff on a laptop and on a cluster whatever their local time zones.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from ..config import DataConfig, OotConfig
from ..errors import ConfigError, SplitError
from ..schemas import require_columns

_DAY_US = 86_400 * 1_000_000


def micros(column: str):
    """``unix_micros`` of a timestamp column (dates and strings are cast to timestamp first)."""
    from pyspark.sql import functions as F

    return F.expr(f"unix_micros(cast(`{column}` as timestamp))")


def format_micros(value: Optional[int]) -> Optional[str]:
    """ISO-8601 UTC text of a micros cutoff, for summaries and logs."""
    if value is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(value))).isoformat()


def _parse_cutoff(spark, text: str) -> int:
    """A configured date/datetime in the session time zone (UTC in this project) → micros."""
    from pyspark.sql import functions as F

    try:
        row = spark.range(1).select(F.lit(text).alias("_c")).select(
            F.expr("unix_micros(try_cast(_c as timestamp))").alias("us")
        ).first()
    except Exception as exc:  # pragma: no cover - defensive: engine-level parse failure
        raise ConfigError(f"split.oot.cutoff: cannot parse {text!r} as a date/timestamp: {exc}") from None
    if row is None or row["us"] is None:
        raise ConfigError(f"split.oot.cutoff: cannot parse {text!r} as a date/timestamp (use e.g. 2025-05-01)")
    return int(row["us"])


def resolve_cutoff(df, data_cfg: DataConfig, oot_cfg: OotConfig) -> Optional[int]:
    """The out-of-time cutoff in epoch micros, or ``None`` when there is no out-of-time split.

    No OOT split when the data has no assignment timestamp (``data.assigned_at`` unset, e.g. Hillstrom)
    or when none of ``cutoff``/``last_days``/``fraction`` is set. ``last_days`` and ``fraction`` are
    measured back from the latest assignment (one small min/max aggregate). Rows with a null
    timestamp cannot be placed in time, so they fail loudly instead of silently landing in training.
    """
    from pyspark.sql import functions as F

    ts = data_cfg.assigned_at
    if ts is None or (oot_cfg.cutoff is None and oot_cfg.last_days is None and oot_cfg.fraction is None):
        return None
    require_columns(df, [ts], "data.assigned_at (experiment log)")
    stats = df.agg(
        F.min(micros(ts)).alias("lo"),
        F.max(micros(ts)).alias("hi"),
        F.sum(F.when(micros(ts).isNull(), 1).otherwise(0)).alias("nulls"),
        F.count(F.lit(1)).alias("n"),
    ).first()
    if not stats["n"]:
        raise SplitError("cannot split an empty experiment log (0 rows)")
    if stats["nulls"]:
        raise SplitError(
            f"column {ts!r} has {stats['nulls']} null/unparseable assignment timestamps: an out-of-time "
            "split cannot place them; fix the data or unset split.oot"
        )
    lo, hi = int(stats["lo"]), int(stats["hi"])
    if oot_cfg.cutoff is not None:
        return _parse_cutoff(df.sparkSession, oot_cfg.cutoff)
    if oot_cfg.last_days is not None:
        if oot_cfg.last_days <= 0:
            raise ConfigError(f"split.oot.last_days: {oot_cfg.last_days!r} must be a positive number of days")
        return hi - int(oot_cfg.last_days) * _DAY_US
    return hi - int(round(float(oot_cfg.fraction) * (hi - lo)))
