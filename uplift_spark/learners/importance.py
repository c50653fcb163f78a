"""Uplift importance: which features change the predicted effect, not which predict the outcome.

The outcome boosters' gain (``feature_importance``) ranks what predicts the outcome; a feature that
moves everyone's outcome but not the effect ranks high there and tells a marketer nothing about whom
to target. Here a surrogate LightGBM regressor is fitted on the model's predicted effect τ̂_k(x) of
each treatment arm k over a bounded, seeded sample of train rows, and its gain shares are the uplift
importance of arm k (the surrogate's in-sample R² says how much of τ̂_k it explains). The sample is
drawn in Spark (:func:`sample_rows`); only it (at most ``model.uplift_importance_rows`` rows,
features and predicted effects only) reaches the driver.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

# small, fixed surrogate: it explains a smooth function of x, it does not need tuning
SURROGATE_PARAMS = {
    "objective": "regression", "num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 20,
    "feature_fraction": 1.0, "bagging_fraction": 1.0, "lambda_l2": 0.0, "deterministic": True,
    "force_row_wise": True, "num_threads": 1, "verbose": -1,
}
SURROGATE_ROUNDS = 100


def sample_rows(df, rows: int, seed: int, total: int):
    """A seeded Bernoulli sample of about ``rows`` of ``df``'s ``total`` rows, capped at ``rows``."""
    if total <= 0 or rows <= 0:
        return df.limit(0)
    fraction = min(1.0, 1.1 * rows / total)
    sampled = df if fraction >= 1.0 else df.sample(withReplacement=False, fraction=fraction, seed=seed)
    return sampled.limit(rows)


def surrogate_importance(features: pd.DataFrame, effects: Mapping[str, np.ndarray],
                         categorical: Sequence[str] = (), seed: int = 1) -> List[dict]:
    """Rows ``{arm, feature, gain, gain_share, rank, sample_rows, surrogate_r2}`` per arm and feature.

    ``features``: the sampled rows (numeric columns, ``categorical`` as strings); ``effects``: arm →
    predicted effect per row. Gains come from one LightGBM regressor per arm on the effect.
    """
    import lightgbm as lgb

    if features.empty:
        raise DataError("uplift importance: the train sample is empty")
    x = features.copy()
    for col in x.columns:
        if col in categorical:
            x[col] = x[col].astype("string").fillna("__missing__").astype("category")
        else:
            x[col] = pd.to_numeric(x[col], errors="coerce").astype("float64")
    names = list(x.columns)
    cats = [f"f{j}" for j, c in enumerate(names) if c in categorical]
    x.columns = [f"f{j}" for j in range(len(names))]  # LightGBM refuses some characters in feature names
    rows: List[dict] = []
    for arm, tau in effects.items():
        y = np.asarray(tau, dtype=np.float64)
        if y.shape[0] != len(x):
            raise DataError(f"uplift importance: {y.shape[0]} effects for {len(x)} rows (arm {arm!r})")
        keep = np.isfinite(y)
        params = dict(SURROGATE_PARAMS, seed=int(seed))
        data = lgb.Dataset(x[keep], label=y[keep], categorical_feature=cats or "auto", free_raw_data=True,
                           params={"verbose": -1})
        booster = lgb.train(params, data, num_boost_round=SURROGATE_ROUNDS)
        gains = booster.feature_importance(importance_type="gain").astype(np.float64)
        fitted = booster.predict(x[keep])
        var = float(np.var(y[keep]))
        r2 = float(1.0 - np.mean((y[keep] - fitted) ** 2) / var) if var > 0 else None
        total = float(gains.sum())
        order = np.argsort(-gains, kind="stable")
        ranks = np.empty(len(gains), dtype=int)
        ranks[order] = np.arange(1, len(gains) + 1)
        for j, feat in enumerate(names):
            rows.append({"arm": arm, "feature": str(feat), "gain": float(gains[j]),
                         "gain_share": float(gains[j]) / total if total > 0 else 0.0, "rank": int(ranks[j]),
                         "sample_rows": int(keep.sum()), "surrogate_r2": r2})
    return rows


def effects_by_arm(scored: pd.DataFrame, arm_columns: Dict[str, str]) -> Dict[str, np.ndarray]:
    """arm → predicted effect array from a collected frame holding ``uplift_<arm>`` columns."""
    return {arm: scored[col].to_numpy(dtype=np.float64) for arm, col in arm_columns.items()}


__all__ = ["surrogate_importance", "sample_rows", "effects_by_arm", "SURROGATE_PARAMS", "SURROGATE_ROUNDS"]
