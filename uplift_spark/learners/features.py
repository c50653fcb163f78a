"""Feature encoding done in Spark, saved as JSON next to the boosters.

Both trainers and the scorer see the same dense double columns: numeric features cast to double
(null → NaN, LightGBM's "missing"), categorical features mapped to a frequency-ranked integer code
(most frequent value → 0). Unseen values, nulls and values beyond ``max_categories`` become NaN, so a
new category at scoring time follows LightGBM's missing-value branch instead of borrowing another
category's code. The index maps come from one small ``groupBy`` over all categorical columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

from ..errors import DataError
from ..schemas import require_columns

_SAFE = re.compile(r"[^0-9A-Za-z_]+")
ENCODED_PREFIX = "__uplift_f"


def booster_feature_name(name: str) -> str:
    """LightGBM refuses some characters in feature names (JSON specials): keep [A-Za-z0-9_]."""
    return _SAFE.sub("_", str(name)).strip("_") or "feature"


@dataclass(frozen=True)
class FeatureEncoding:
    """What the boosters were trained on: ordered features, which are categorical, and their codes."""

    features: tuple
    categorical: tuple = ()
    categories: Mapping[str, List[str]] = field(default_factory=dict)

    @property
    def categorical_indexes(self) -> List[int]:
        return [i for i, f in enumerate(self.features) if f in self.categorical]

    @property
    def encoded_columns(self) -> List[str]:
        return [f"{ENCODED_PREFIX}{i}" for i in range(len(self.features))]

    @property
    def booster_names(self) -> List[str]:
        names = [booster_feature_name(f) for f in self.features]
        seen: Dict[str, int] = {}
        out = []
        for n in names:  # keep names unique after sanitising
            k = seen.get(n, 0)
            seen[n] = k + 1
            out.append(n if k == 0 else f"{n}_{k}")
        return out

    def to_json(self) -> dict:
        return {
            "features": list(self.features),
            "categorical": list(self.categorical),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping) -> "FeatureEncoding":
        return cls(
            features=tuple(raw["features"]),
            categorical=tuple(raw.get("categorical", ())),
            categories={k: list(v) for k, v in raw.get("categories", {}).items()},
        )

    # ------------------------------------------------------------------ Spark
    def encoded_exprs(self, df) -> list:
        """Column expressions producing the encoded double features (named ``encoded_columns``)."""
        from pyspark.sql import functions as F

        require_columns(df, self.features, "feature encoding")
        nan = F.lit(float("nan"))
        exprs = []
        for f, out in zip(self.features, self.encoded_columns):
            if f in self.categorical:
                values = self.categories.get(f, [])
                if values:
                    pairs = []
                    for i, v in enumerate(values):
                        pairs += [F.lit(v), F.lit(float(i))]
                    code = F.create_map(*pairs)[F.col(f).cast("string")]
                else:
                    code = F.lit(None).cast("double")
                exprs.append(F.coalesce(code, nan).alias(out))
            else:
                exprs.append(F.coalesce(F.col(f).cast("double"), nan).alias(out))
        return exprs

    def transform(self, df, keep: Sequence[str] = ()):
        """``keep`` columns plus the encoded features."""
        from pyspark.sql import functions as F

        return df.select(*[F.col(c) for c in keep], *self.encoded_exprs(df))


def fit_encoding(df, features: Sequence[str], categorical: Sequence[str] = (),
                 max_categories: int = 200) -> FeatureEncoding:
    """Frequency-ranked codes per categorical feature (ties broken by value, so codes are stable)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, BooleanType

    features = tuple(features)
    if not features:
        raise DataError("no feature columns given to the learner")
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise DataError(f"feature column {missing[0]!r} is missing from the training data")
    unknown = [c for c in categorical if c not in features]
    if unknown:
        raise DataError(f"categorical feature {unknown[0]!r} is not among the features {list(features)}")
    types = {f.name: f.dataType for f in df.schema.fields}
    # string/other non-numeric columns are categorical even if not declared: LightGBM needs numbers
    cats = tuple(f for f in features if f in categorical or not isinstance(types[f], (NumericType, BooleanType)))
    categories: Dict[str, List[str]] = {c: [] for c in cats}
    if cats:
        # ONE job for all categorical columns (not one scan of the input per column): (column, value)
        # counts, then the top ``max_categories`` per column; only those small rows reach the driver.
        from pyspark.sql import Window

        pairs = df.select(F.explode(F.array(*[
            F.struct(F.lit(i).alias("k"), F.col(c).cast("string").alias("v")) for i, c in enumerate(cats)
        ])).alias("p")).select("p.k", "p.v").where(F.col("v").isNotNull())
        rank = Window.partitionBy("k").orderBy(F.desc("count"), F.asc("v"))
        rows = (pairs.groupBy("k", "v").count().withColumn("r", F.row_number().over(rank))
                .where(F.col("r") <= max_categories).select("k", "v", "r").collect())
        for r in sorted(rows, key=lambda r: (r["k"], r["r"])):
            categories[cats[r["k"]]].append(r["v"])
    return FeatureEncoding(features=features, categorical=cats, categories=categories)


__all__ = ["FeatureEncoding", "fit_encoding", "booster_feature_name", "ENCODED_PREFIX"]
