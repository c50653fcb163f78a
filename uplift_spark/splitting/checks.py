"""Gates on a split: every split must hold every arm, treated and control, above a minimum size."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..config import DataConfig, SplitConfig
from ..errors import SplitError


def _get(row, key):
    """Summary rows may be Spark ``Row`` objects or plain dicts; both index by name."""
    return row[key]


def split_arm_rows(summary_rows: Iterable) -> Dict[Tuple[str, str], int]:
    """``{(split, arm): rows}`` from summary rows (repeated once per outcome: counted once)."""
    counts: Dict[Tuple[str, str], int] = {}
    for row in summary_rows:
        counts[(str(_get(row, "split")), str(_get(row, "arm")))] = int(_get(row, "rows") or 0)
    return counts


def check_splits(summary_rows: Iterable, data_cfg: DataConfig, split_cfg: SplitConfig,
                 expected: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Raise :class:`SplitError` naming every split × arm that cannot support an uplift estimate.

    Fails when an expected split is empty, has no control rows, has no treated rows at all, misses a
    treatment arm, or has an arm below ``split.min_rows_per_arm``. ``summary_rows`` are the collected
    rows of :func:`summarize_splits` (small). Returns ``{split: rows}`` when everything passes.
    """
    counts = split_arm_rows(summary_rows)
    present = sorted({s for s, _ in counts})
    splits = list(expected) if expected is not None else present
    control = data_cfg.control_arm
    treatments = list(data_cfg.treatment_arms) or sorted({a for _, a in counts if a != control})
    minimum = max(1, int(split_cfg.min_rows_per_arm))
    problems: List[str] = []
    totals: Dict[str, int] = {}
    for split in splits:
        rows = {a: n for (s, a), n in counts.items() if s == split}
        totals[split] = sum(rows.values())
        if not totals[split]:
            problems.append(f"split {split!r} has no rows (check the fractions and the oot cutoff)")
            continue
        if not rows.get(control):
            problems.append(f"split {split!r} has no control rows (arm {control!r})")
        if not any(rows.get(t) for t in treatments):
            problems.append(f"split {split!r} has no treated rows (arms {treatments})")
        for a in [control] + treatments:
            n = rows.get(a, 0)
            if n == 0 and a != control and any(rows.get(t) for t in treatments):
                problems.append(f"split {split!r} has no rows for treatment arm {a!r}")
            elif 0 < n < minimum:
                problems.append(f"split {split!r}, arm {a!r}: {n} rows, below split.min_rows_per_arm={minimum}")
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise SplitError("split check failed: " + "; ".join(problems[:8]) + more)
    return totals


def stratum_balance(assigned, split_cfg: SplitConfig) -> Dict[str, object]:
    """Largest gap between a stratum's in-time split share and its configured fraction.

    ``assigned`` is :func:`assign_splits` output with ``with_stratum=True``; one small aggregate
    (strata × splits). Strata under 100 customers are skipped: their gaps are sampling noise.
    """
    from pyspark.sql import functions as F

    rows = (
        assigned.where(F.col("split") != "oot").groupBy("stratum", "split").count().collect()
    )
    per: Dict[str, Dict[str, int]] = {}
    for r in rows:
        per.setdefault(r["stratum"], {})[r["split"]] = int(r["count"])
    fractions = {"train": split_cfg.train, "valid": split_cfg.valid, "test": split_cfg.test}
    worst, where = 0.0, None
    for stratum, counts in per.items():
        n = sum(counts.values())
        if n < 100:
            continue
        for split, frac in fractions.items():
            gap = abs(counts.get(split, 0) / n - frac)
            if gap > worst:
                worst, where = gap, f"{stratum} / {split}"
    return {"strata": len(per), "max_share_gap": round(worst, 5), "max_gap_at": where}
