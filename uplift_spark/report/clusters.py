"""The report's sentence on cluster randomization, from the ``cluster_count`` rows of
``validation_report`` (written only when ``data.cluster`` is set), so the reader knows the intervals
resample clusters and how many independent units each arm has."""

from __future__ import annotations

from typing import Optional

import pandas as pd


def cluster_sentence(validation: Optional[pd.DataFrame]) -> Optional[str]:
    """Plain text, or ``None`` for a customer-randomized experiment (no ``cluster_count`` rows)."""
    if validation is None or "check" not in validation:
        return None
    rows = validation[validation["check"] == "cluster_count"]
    if rows.empty:
        return None
    column = rows["column"].iloc[0]
    counts = ", ".join(f"{arm}: {int(n):,}" for arm, n in zip(rows["arm"], rows["metric"]))
    return (f"This experiment is cluster-randomized by '{column}': whole clusters were assigned to an arm. "
            f"Clusters per arm: {counts}. Splits, sample-ratio check and bootstrap intervals use clusters "
            f"as the independent units.")
