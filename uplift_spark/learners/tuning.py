"""Hyperparameter grids over LightGBM settings: for pyspark.ml tuning and for ``model.tune``.

The learners hold their LightGBM settings as one JSON string Param (``lightgbmParams``), so a
``ParamGridBuilder`` grid is a list of JSON strings. :func:`lightgbm_grid` builds that list from the
learner's current settings and a few overrides, each point checked by the typed config (a typo or an
out-of-range value fails here, naming the key, rather than in a Spark job mid-search)::

    grid = (ParamGridBuilder()
            .addGrid(learner.lightgbmParams, lightgbm_grid(learner, num_leaves=[7, 15], learning_rate=[0.05, 0.1]))
            .build())

The train stage's ``model.tune`` uses :func:`tuning_grid` (a few override dicts, at most six, sized to
the smallest arm's train rows) and :func:`best_point`. Why a built-in grid at all: the LightGBM defaults
suit strong effects; weak, noisy effects (a few percentage points) rank customers better with fewer
leaves, larger leaves (``min_data_in_leaf`` grown with the rows) and a slower learning rate.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from ..config import LightGBMConfig, ModelConfig, config_from_dict, to_dict
from ..errors import ConfigError


def lightgbm_grid(learner, **lists: Iterable) -> List[str]:
    """``lightgbmParams`` JSON strings for every combination of ``lists`` (product, in the order
    given: the last key varies fastest) on top of the learner's current LightGBM settings."""
    base = to_dict(learner.getLightGBMConfig())
    names = list(lists)
    values = []
    for name in names:
        vals = list(lists[name]) if not isinstance(lists[name], (str, bytes)) else [lists[name]]
        if not vals:
            raise ConfigError(f"lightgbm_grid: no values given for {name!r}")
        values.append(vals)
    out = []
    for combo in itertools.product(*values):
        raw = dict(base, **dict(zip(names, combo)))
        cfg = config_from_dict({"model": {"lightgbm": raw}}).model.lightgbm  # validates keys and bounds
        out.append(json.dumps(to_dict(cfg)))
    return out


def with_overrides(base: LightGBMConfig, overrides: Mapping[str, object], key: str = "model.tune_grid"
                   ) -> LightGBMConfig:
    """``base`` with ``overrides`` applied, checked by the typed config (ConfigError names ``key``)."""
    raw = dict(to_dict(base), **dict(overrides))
    try:
        return config_from_dict({"model": {"lightgbm": raw}}).model.lightgbm
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def scaled_min_data_in_leaf(base: int, rows: int) -> int:
    """A regularised ``min_data_in_leaf`` for a booster on ``rows`` rows: at least twice the default or
    0.5 % of the rows, never above 5 % of them (so a few leaves still fit)."""
    rows = max(int(rows), 0)
    return int(max(base, min(max(2 * base, rows // 200), rows // 20)))


def tuning_grid(model: ModelConfig, smallest_arm_rows: int) -> List[Dict[str, object]]:
    """Override dicts to try, the configured settings first (``{}``): ``model.tune_grid`` (its product,
    in the order given) when set, else the first ``model.tune_points`` of the built-in grid; ``[{}]``
    when ``model.tune`` is off. Points that resolve to the same settings are kept once."""
    if not model.tune:
        return [{}]
    base = model.lightgbm
    if model.tune_grid:
        names = list(model.tune_grid)
        points = [dict(zip(names, combo)) for combo in itertools.product(*(model.tune_grid[n] for n in names))]
        limit = len(points)
    else:
        leaves = max(2, min(7, base.num_leaves // 4)) if base.num_leaves > 3 else base.num_leaves
        leaf_rows = scaled_min_data_in_leaf(base.min_data_in_leaf, smallest_arm_rows)
        slow = base.learning_rate / 2.0
        points = [
            {},
            {"num_leaves": leaves, "min_data_in_leaf": leaf_rows},
            {"num_leaves": leaves, "min_data_in_leaf": leaf_rows, "learning_rate": slow},
            {"min_data_in_leaf": leaf_rows},
            {"num_leaves": leaves},
            {"min_data_in_leaf": leaf_rows, "learning_rate": slow},
        ]
        limit = model.tune_points
    out, seen = [], set()
    for point in points:
        settings = json.dumps(to_dict(with_overrides(base, point)), sort_keys=True)
        if settings not in seen:
            seen.add(settings)
            out.append(point)
    return out[:limit]


def mean_score(by_arm: Mapping[str, Optional[float]]) -> Optional[float]:
    """Mean over the arms with a defined score (None when no arm has one)."""
    vals = [float(v) for v in by_arm.values() if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def best_point(scores: Sequence[Optional[float]]) -> int:
    """Index of the highest defined score; ties and an all-undefined list keep the earliest point (the
    configured settings come first, so tuning never moves away from them without evidence)."""
    best, best_value = 0, None
    for i, value in enumerate(scores):
        if value is None or not math.isfinite(value):
            continue
        if best_value is None or value > best_value:
            best, best_value = i, value
    return best


__all__ = ["lightgbm_grid", "tuning_grid", "with_overrides", "scaled_min_data_in_leaf", "best_point", "mean_score"]
