"""Spark expressions that put values into the reference buckets, so reference and batch counts come
from the same code (a profile built one way and compared another would report drift by construction)."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

NULL = "__null__"
OTHER = "__other__"
UNSEEN = "__unseen__"


def _is_missing(col, dtype: str):
    from pyspark.sql import functions as F

    if dtype in ("double", "float"):
        return col.isNull() | F.isnan(col)
    return col.isNull()


def bin_index(col, edges: Sequence[float], dtype: str = "double"):
    """Bucket of a numeric value: 0 for ``x <= e_1``, i for ``e_i < x <= e_{i+1}``, k for ``x > e_k``.

    Same rule as ``numpy.searchsorted(edges, x, side="left")``; null/NaN stay null.
    """
    from pyspark.sql import functions as F

    x = col.cast("double")
    expr = F.when(_is_missing(col, dtype), F.lit(None).cast("int"))
    for i, edge in enumerate(edges):
        expr = expr.when(x <= F.lit(float(edge)), F.lit(i))
    return expr.otherwise(F.lit(len(edges)))


def numeric_label(col, edges: Sequence[float], dtype: str = "double"):
    """Bucket label as a string (``"0"``, ``"1"``, … or ``__null__``), stackable with categories."""
    from pyspark.sql import functions as F

    return F.coalesce(bin_index(col, edges, dtype).cast("string"), F.lit(NULL))


def category_label(col, top: Sequence[str], known: Sequence[str], known_complete: bool):
    """Category label: itself if among the reference top categories, ``__other__`` if the reference had
    it (or we cannot tell because the known list was truncated), ``__unseen__`` if never seen."""
    from pyspark.sql import functions as F

    s = col.cast("string")
    expr = F.when(s.isNull(), F.lit(NULL))
    if top:
        expr = expr.when(s.isin(list(top)), s)
    if known_complete:
        expr = expr.when(s.isin(list(known)) if known else F.lit(False), F.lit(OTHER)).otherwise(F.lit(UNSEEN))
    else:
        expr = expr.otherwise(F.lit(OTHER))
    return expr


def count_labels(df, labels: Mapping[str, object]) -> Dict[str, Dict[str, int]]:
    """One pass over ``df``: rows per (feature, label). Only the small aggregate reaches the driver."""
    from pyspark.sql import functions as F

    if not labels:
        return {}
    pairs = [F.struct(F.lit(name).alias("f"), expr.alias("b")) for name, expr in labels.items()]
    counted = (
        df.select(F.explode(F.array(*pairs)).alias("p"))
        .groupBy(F.col("p.f").alias("f"), F.col("p.b").alias("b"))
        .count()
        .collect()
    )
    out: Dict[str, Dict[str, int]] = {name: {} for name in labels}
    for row in counted:
        out[row["f"]][row["b"]] = int(row["count"])
    return out


def numeric_vector(counts: Mapping[str, int], n_edges: int) -> List[int]:
    """Counts of the value bins 0..n_edges, in order (missing bins are 0)."""
    return [int(counts.get(str(i), 0)) for i in range(n_edges + 1)]
