"""Reference profiles saved with each trained model: summaries, never raw rows.

A profile is plain JSON (``<model_dir>/reference_profile.json``) with three optional sections:

* ``features``: per numeric feature the quantile bin edges (Spark's approximate-quantile summary, on the executors) and
  the share of each bin; per categorical feature the top ``max_categories`` category shares plus an
  ``__other__`` bucket, and the list of known categories (to tell unseen from rare values); both with
  the null share.
* ``scores``: per treatment arm, for predicted ``uplift`` and ``value``: bin edges and shares, mean,
  std and the share of negative predictions.
* ``policy``: the decision mix (action × bucket shares) and budget use of the reference campaign.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Dict, List, Mapping, Optional, Sequence

from ..config import MonitoringConfig
from ..errors import MonitoringError
from ..schemas import require_columns
from ..io import fs as hfs
from .buckets import NULL, OTHER, UNSEEN, bin_index, category_label, count_labels, numeric_label, numeric_vector

PROFILE_FILE = "reference_profile.json"
PROFILE_VERSION = 1
_SCORE_METRICS = ("uplift", "value")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shares(counts: Sequence[float]) -> List[float]:
    total = float(sum(counts))
    return [float(c) / total if total > 0 else 0.0 for c in counts]


def _quantile_probs(bins: int) -> List[float]:
    return [i / bins for i in range(1, bins)]


def _accuracy(relative_error: float) -> int:
    """percentile_approx accuracy for a relative error (1/error; 0 means as exact as we allow)."""
    return int(min(1_000_000, max(100, round(1.0 / relative_error)))) if relative_error > 0 else 1_000_000


def _unique_edges(values: Sequence[float]) -> List[float]:
    """Sorted distinct finite edges: heavy ties (a 0/1 flag) collapse to fewer, wider bins."""
    out: List[float] = []
    for v in sorted(float(x) for x in values if x is not None and math.isfinite(float(x))):
        if not out or v > out[-1]:
            out.append(v)
    return out


# --------------------------------------------------------------------------------------- features


def feature_labels(df, feature_profile: Mapping[str, Mapping]) -> Dict[str, object]:
    """The bucket-label Column of every profiled feature (see :mod:`.buckets`)."""
    from pyspark.sql import functions as F

    dtypes = dict(df.dtypes)
    require_columns(list(dtypes), feature_profile, "monitoring batch (feature)")
    labels = {}
    for name, spec in feature_profile.items():
        if spec["kind"] == "numeric":
            labels[name] = numeric_label(F.col(name), spec["edges"], dtypes[name])
        else:
            labels[name] = category_label(F.col(name), spec["categories"], spec.get("known", []),
                                          bool(spec.get("known_complete", False)))
    return labels


def feature_counts(df, feature_profile: Mapping[str, Mapping]) -> Dict[str, Dict[str, object]]:
    """Counts of ``df`` in the profile's buckets, one pass over ``df``.

    Per feature: ``values`` (counts of the value buckets, in profile order; unseen categories are in
    ``__other__``), ``null``, ``unseen`` and ``rows``.
    """
    raw = count_labels(df, feature_labels(df, feature_profile))
    out = {}
    for name, spec in feature_profile.items():
        counts = raw.get(name, {})
        if spec["kind"] == "numeric":
            values = numeric_vector(counts, len(spec["edges"]))
        else:
            values = [int(counts.get(c, 0)) for c in spec["categories"]]
            values.append(int(counts.get(OTHER, 0)) + int(counts.get(UNSEEN, 0)))
        null = int(counts.get(NULL, 0))
        out[name] = {"values": values, "null": null, "unseen": int(counts.get(UNSEEN, 0)),
                     "rows": int(sum(counts.values()))}
    return out


def _top_categories(df, categorical: Sequence[str], keep: int):
    """Per categorical feature: its most frequent categories (at most ``keep``) and the distinct count."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not categorical:
        return {}
    pairs = [F.struct(F.lit(c).alias("f"), F.col(c).cast("string").alias("v")) for c in categorical]
    counts = (
        df.select(F.explode(F.array(*pairs)).alias("p"))
        .where(F.col("p.v").isNotNull())
        .groupBy(F.col("p.f").alias("f"), F.col("p.v").alias("v"))
        .count()
    )
    by_feature = Window.partitionBy("f")
    ranked = (
        counts.withColumn("rank", F.row_number().over(by_feature.orderBy(F.desc("count"), F.asc("v"))))
        .withColumn("distinct", F.count(F.lit(1)).over(by_feature))
        .where(F.col("rank") <= keep)
        .collect()
    )
    out = {c: {"values": [], "distinct": 0} for c in categorical}
    for row in sorted(ranked, key=lambda r: (r["f"], r["rank"])):
        out[row["f"]]["values"].append(row["v"])
        out[row["f"]]["distinct"] = int(row["distinct"])
    return out


def build_feature_profile(df, features: Sequence[str], categorical: Sequence[str],
                          cfg: MonitoringConfig) -> Dict[str, object]:
    """Reference profile of ``features`` on ``df`` (the training rows): edges, shares, null shares.

    Three passes over ``df``: quantiles, mean and std of the numeric features (one aggregation),
    category counts of the categorical ones, and the bucket counts.
    """
    from pyspark.sql import functions as F

    categorical = [c for c in features if c in set(categorical)]
    numeric = [c for c in features if c not in set(categorical)]
    require_columns(df, features, "reference profile (feature)")
    dtypes = dict(df.dtypes)
    spec: Dict[str, Dict[str, object]] = {}
    if numeric:
        # One aggregation for all numeric features: approximate quantiles (the approxQuantile summary,
        # as the percentile_approx aggregate), mean and std. NaN is nulled first (it would sort last).
        accuracy = _accuracy(cfg.quantile_error)
        probs = _quantile_probs(cfg.bins)
        clean = [F.when(~F.isnan(F.col(c)), F.col(c).cast("double")) if dtypes[c] in ("double", "float")
                 else F.col(c).cast("double") for c in numeric]
        row = df.agg(*[F.percentile_approx(x, probs, accuracy).alias(f"q_{i}") for i, x in enumerate(clean)],
                     *[F.avg(x).alias(f"m_{i}") for i, x in enumerate(clean)],
                     *[F.stddev(x).alias(f"s_{i}") for i, x in enumerate(clean)]).first()
        for i, name in enumerate(numeric):
            spec[name] = {"kind": "numeric", "edges": _unique_edges(row[f"q_{i}"] or []),
                          "mean": row[f"m_{i}"], "std": row[f"s_{i}"]}
    if categorical:
        top = _top_categories(df, categorical, max(cfg.max_categories, cfg.max_known_categories))
        for name in categorical:
            known = top[name]["values"]
            spec[name] = {
                "kind": "categorical",
                "categories": known[: cfg.max_categories],
                "known": known,
                "known_complete": top[name]["distinct"] <= len(known),
            }
    spec = {name: spec[name] for name in features}
    counts = feature_counts(df, spec)
    for name in features:
        c = counts[name]
        spec[name]["shares"] = _shares(c["values"])
        spec[name]["null_share"] = c["null"] / c["rows"] if c["rows"] else 0.0
        spec[name]["rows"] = c["rows"]
    return {"created_at": _now(), "bins": cfg.bins, "features": spec}


# --------------------------------------------------------------------------------------- scores


def _score_long(scores_long_df):
    """(arm, metric, x) rows from a long scores frame with ``arm``, ``uplift`` and optional ``value``."""
    from pyspark.sql import functions as F

    require_columns(scores_long_df, ("arm", "uplift"), "score profile")
    metrics = [m for m in _SCORE_METRICS if m in scores_long_df.columns]
    pairs = [F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("x")) for m in metrics]
    return scores_long_df.select(F.col("arm").cast("string").alias("arm"),
                                 F.explode(F.array(*pairs)).alias("p")).select(
        "arm", F.col("p.metric").alias("metric"), F.col("p.x").alias("x"))


def score_counts(scores_long_df, edges: Mapping[str, Mapping[str, Sequence[float]]]) -> Dict[str, Dict[str, dict]]:
    """One pass: per arm and metric the bin counts on ``edges[arm][metric]`` plus n, mean, std, negative share."""
    from pyspark.sql import functions as F

    long = _score_long(scores_long_df).where(F.col("x").isNotNull() & ~F.isnan("x"))
    bucket = F.lit(None).cast("int")
    for arm, per_metric in edges.items():
        for metric, e in per_metric.items():
            bucket = F.when((F.col("arm") == arm) & (F.col("metric") == metric), bin_index(F.col("x"), e)).otherwise(bucket)
    rows = (
        long.withColumn("b", bucket)
        .groupBy("arm", "metric", "b")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("x").alias("s"), F.sum(F.col("x") * F.col("x")).alias("ss"),
             F.sum((F.col("x") < 0).cast("long")).alias("neg"))
        .collect()
    )
    acc: Dict[str, Dict[str, dict]] = {}
    for r in rows:
        a = acc.setdefault(r["arm"], {}).setdefault(r["metric"], {"bins": {}, "n": 0, "s": 0.0, "ss": 0.0, "neg": 0})
        if r["b"] is not None:
            a["bins"][int(r["b"])] = a["bins"].get(int(r["b"]), 0) + int(r["n"])
        a["n"] += int(r["n"])
        a["s"] += float(r["s"] or 0.0)
        a["ss"] += float(r["ss"] or 0.0)
        a["neg"] += int(r["neg"] or 0)
    out: Dict[str, Dict[str, dict]] = {}
    for arm, per_metric in acc.items():
        for metric, a in per_metric.items():
            n = a["n"]
            mean = a["s"] / n if n else float("nan")
            var = (a["ss"] - n * mean * mean) / (n - 1) if n > 1 else float("nan")
            e = edges.get(arm, {}).get(metric, [])
            out.setdefault(arm, {})[metric] = {
                "counts": [a["bins"].get(i, 0) for i in range(len(e) + 1)],
                "rows": n, "mean": mean, "std": math.sqrt(max(var, 0.0)) if n > 1 else float("nan"),
                "negative_share": a["neg"] / n if n else float("nan"),
            }
    return out


def build_score_profile(scores_long_df, bins: int = 10, quantile_error: float = 0.001) -> Dict[str, object]:
    """Per arm, the distribution of predicted ``uplift`` (and ``value`` when present) of a long frame
    (one row per customer × treatment arm, as the ``scores``/``predictions`` tables hold)."""
    from pyspark.sql import functions as F

    long = _score_long(scores_long_df).where(F.col("x").isNotNull() & ~F.isnan("x"))
    accuracy = _accuracy(quantile_error)
    quantiles = long.groupBy("arm", "metric").agg(
        F.percentile_approx("x", _quantile_probs(bins), accuracy).alias("q")).collect()
    edges: Dict[str, Dict[str, List[float]]] = {}
    for r in quantiles:
        edges.setdefault(r["arm"], {})[r["metric"]] = _unique_edges(r["q"] or [])
    if not edges:
        raise MonitoringError("score profile: the scores frame has no non-null predictions")
    counts = score_counts(scores_long_df, edges)
    arms: Dict[str, Dict[str, dict]] = {}
    for arm in sorted(edges):
        for metric, e in edges[arm].items():
            c = counts.get(arm, {}).get(metric)
            if c is None:
                continue
            arms.setdefault(arm, {})[metric] = {
                "edges": e, "shares": _shares(c["counts"]), "rows": c["rows"], "mean": c["mean"],
                "std": c["std"], "negative_share": c["negative_share"],
            }
    return {"created_at": _now(), "bins": bins, "arms": arms}


# --------------------------------------------------------------------------------------- policy


def policy_mix(decisions_df) -> Dict[str, object]:
    """Rows per (action, bucket) of a decisions frame: one small aggregate."""
    from pyspark.sql import functions as F

    require_columns(decisions_df, ("action", "bucket"), "decisions")
    rows = decisions_df.groupBy(F.col("action").cast("string").alias("action"),
                                F.col("bucket").cast("string").alias("bucket")).count().collect()
    cells = {f"{r['action']}|{r['bucket']}": int(r["count"]) for r in rows}
    return {"cells": cells, "rows": int(sum(cells.values()))}


def budget_use(cells: Mapping[str, int], summary: Optional[Mapping[str, object]] = None) -> Optional[float]:
    """Share of the budget spent: ``summary["budget_use"]`` if given, else Σ cost[action] × contacts / budget
    from ``summary["costs"]`` and ``summary["budget"]``; None when the budget is unknown."""
    summary = dict(summary or {})
    if summary.get("budget_use") is not None:
        return float(summary["budget_use"])
    budget = summary.get("budget")
    costs = summary.get("costs") or {}
    if not budget or not costs:
        return None
    spend = sum(float(costs.get(key.split("|", 1)[0], 0.0)) * n for key, n in cells.items())
    return spend / float(budget)


def build_policy_profile(decisions_df, summary: Optional[Mapping[str, object]] = None) -> Dict[str, object]:
    """The decision mix of one campaign: action × bucket shares, action shares and budget use.

    ``summary`` may carry ``campaign_id``, ``budget_use`` or (``budget``, ``costs`` per action).
    """
    mix = policy_mix(decisions_df)
    n = mix["rows"]
    if n == 0:
        raise MonitoringError("policy profile: the decisions frame is empty")
    actions: Dict[str, float] = {}
    for key, count in mix["cells"].items():
        action = key.split("|", 1)[0]
        actions[action] = actions.get(action, 0.0) + count / n
    summary = dict(summary or {})
    return {
        "created_at": _now(),
        "campaign_id": summary.get("campaign_id"),
        "rows": n,
        "cells": {k: v / n for k, v in sorted(mix["cells"].items())},
        "actions": dict(sorted(actions.items())),
        "budget_use": budget_use(mix["cells"], summary),
    }


# --------------------------------------------------------------------------------------- files


def profile_path(model_dir: str) -> str:
    return hfs.join(model_dir, PROFILE_FILE)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def save_profile(profile: Mapping[str, object], model_dir: str) -> str:
    """Write ``<model_dir>/reference_profile.json`` atomically (a reader never sees half a file)."""
    fs = hfs.filesystem(model_dir)  # any Hadoop path: run.model_root may be remote
    fs.mkdirs(model_dir)
    path = profile_path(model_dir)
    body = dict(_json_safe(profile))
    body.setdefault("version", PROFILE_VERSION)
    tmp = path + ".tmp"
    fs.write_text(tmp, json.dumps(body, indent=1, sort_keys=True, allow_nan=False))
    fs.replace_file(tmp, path)
    return path


def load_profile(model_dir: str) -> Dict[str, object]:
    """Read a saved profile; :class:`MonitoringError` names the missing file."""
    path = profile_path(model_dir)
    fs = hfs.filesystem(path)
    if not fs.exists(path):
        raise MonitoringError(f"no reference profile at {path}: train the model (or run monitor once) first")
    try:
        profile = json.loads(fs.read_text(path))
    except json.JSONDecodeError as exc:
        raise MonitoringError(f"reference profile {path} is not valid JSON: {exc}") from None
    if profile.get("version", PROFILE_VERSION) > PROFILE_VERSION:
        raise MonitoringError(f"reference profile {path} has version {profile.get('version')}, "
                              f"this code reads up to {PROFILE_VERSION}")
    return profile
