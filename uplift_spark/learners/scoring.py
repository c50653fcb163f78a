"""Vectorized scoring of saved boosters on Spark, for any number of rows.

Model strings are broadcast once; each Python worker parses every booster once (cached by SHA-256 of
the model text) and scores Arrow batches with a pandas UDF. No per-row Python, nothing collected.
"""

# No ``from __future__ import annotations`` here: pandas_udf reads the real type hints of ``score``.
import hashlib
from typing import Callable, Dict, Mapping, Sequence

import numpy as np

_BOOSTERS: Dict[str, object] = {}


def model_sha(model_str: str) -> str:
    return hashlib.sha256(model_str.encode("utf-8")).hexdigest()


def booster(model_str: str):
    """A PyPI ``lightgbm.Booster`` for ``model_str``, parsed once per process."""
    import lightgbm as lgb

    key = model_sha(model_str)
    cached = _BOOSTERS.get(key)
    if cached is None:
        cached = lgb.Booster(model_str=model_str)
        _BOOSTERS[key] = cached
    return cached


def predict_matrix(model_str: str, x: np.ndarray) -> np.ndarray:
    """Booster output on the response scale (probability for ``binary``, value for regression)."""
    return np.asarray(booster(model_str).predict(x, num_threads=1), dtype=np.float64)


def predict_key(models: Mapping[str, str], key: str, x: np.ndarray) -> np.ndarray:
    """Prediction of booster ``key``; ``"<booster>@<value>"`` appends a constant last column ``value``
    (the S-learner predicts its one booster with the arm feature set to each arm's code)."""
    if key in models or "@" not in key:
        return predict_matrix(models[key], x)
    base, value = key.rsplit("@", 1)
    return predict_matrix(models[base], np.column_stack([x, np.full(len(x), float(value))]))


def score_boosters(df, encoded_cols: Sequence[str], boosters: Mapping[str, str], outputs: Mapping[str, Callable],
                   extra_cols: Sequence[str] = ()):
    """Add one double column per entry of ``outputs``.

    ``outputs[name](preds, extra, n)`` builds the column from ``preds(key)`` (the booster ``key``'s
    prediction for the batch, computed lazily and once) and ``extra`` (raw ``extra_cols`` arrays).
    """
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StructField, StructType

    sc = df.sparkSession.sparkContext
    bc = sc.broadcast(dict(boosters))
    names = list(outputs)
    schema = StructType([StructField(n, DoubleType(), True) for n in names])
    feature_fields = [f"f{i}" for i in range(len(encoded_cols))]
    extra_fields = [f"e{i}" for i in range(len(extra_cols))]
    extra_names = list(extra_cols)
    builders = dict(outputs)

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        models = bc.value
        x = batch[feature_fields].to_numpy(dtype=np.float64) if feature_fields else np.empty((len(batch), 0))
        extra = {name: batch[f].to_numpy(dtype=np.float64) for name, f in zip(extra_names, extra_fields)}
        memo: Dict[str, np.ndarray] = {}

        def preds(key: str) -> np.ndarray:
            if key not in memo:
                memo[key] = predict_key(models, key, x)
            return memo[key]

        data = {name: builders[name](preds, extra, len(batch)) for name in names}
        return pd.DataFrame(data, columns=names)

    udf = F.pandas_udf(score, schema)
    packed = F.struct(*[F.col(c).cast("double").alias(f) for c, f in zip(encoded_cols, feature_fields)],
                      *[F.col(c).cast("double").alias(f) for c, f in zip(extra_cols, extra_fields)])
    tmp = "__uplift_scores"
    scored = df.withColumn(tmp, udf(packed))
    return scored.select("*", *[F.col(f"{tmp}.{n}").alias(n) for n in names]).drop(tmp), bc


__all__ = ["booster", "predict_matrix", "predict_key", "score_boosters", "model_sha"]
