"""Decile calibration: does observed uplift follow predicted uplift, decile by decile?

Rows are ordered by predicted uplift (descending; ties by id descending, see :mod:`.scan`) and cut
into ``n_deciles`` position bins like ``np.array_split`` (sklift's ``uplift_by_percentile``,
strategy 'overall'): decile 1 holds the highest predictions, the first ``N % n_deciles`` bins one
extra row. Per decile: mean predicted uplift over all its rows, observed uplift = treated mean -
control mean, and its Welch standard error sqrt(s_t^2/n_t + s_c^2/n_c) with sample variances
(ddof=1; NaN when a side has fewer than two rows). A well-ranked model shows observed uplift
falling with the decile; a harmed segment shows up as negative observed uplift at the bottom.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

DECILE_COLUMNS = ("decile", "n_t", "n_c", "predicted", "observed", "se", "treated_mean", "control_mean")


def deciles_frame(sums: np.ndarray) -> pd.DataFrame:
    """Turn per-decile sums (n_t, n_c, y_t, y_c, y2_t, y2_c, sum score) into the calibration table."""
    sums = np.asarray(sums, dtype=np.float64)
    n_t, n_c, y_t, y_c, y2_t, y2_c, s_sum = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_t = np.where(n_t > 0, y_t / n_t, np.nan)
        mean_c = np.where(n_c > 0, y_c / n_c, np.nan)
        var_t = np.where(n_t > 1, (y2_t - n_t * mean_t ** 2) / (n_t - 1), np.nan)
        var_c = np.where(n_c > 1, (y2_c - n_c * mean_c ** 2) / (n_c - 1), np.nan)
        var_t = np.maximum(var_t, 0.0)
        var_c = np.maximum(var_c, 0.0)
        se = np.sqrt(var_t / n_t + var_c / n_c)
        predicted = np.where(n_t + n_c > 0, s_sum / (n_t + n_c), np.nan)
    return pd.DataFrame({
        "decile": np.arange(1, len(sums) + 1, dtype=np.int64),
        "n_t": n_t.astype(np.int64), "n_c": n_c.astype(np.int64),
        "predicted": predicted, "observed": mean_t - mean_c, "se": se,
        "treated_mean": mean_t, "control_mean": mean_c,
    })

