"""Hyperparameter grids over LightGBM settings for pyspark.ml tuning.

The learners hold their LightGBM settings as one JSON string Param (``lightgbmParams``), so a
``ParamGridBuilder`` grid is a list of JSON strings. :func:`lightgbm_grid` builds that list from the
learner's current settings and a few overrides, each point checked by the typed config (a typo or an
out-of-range value fails here, naming the key, rather than in a Spark job mid-search)::

    grid = (ParamGridBuilder()
            .addGrid(learner.lightgbmParams, lightgbm_grid(learner, num_leaves=[7, 15], learning_rate=[0.05, 0.1]))
            .build())
"""

from __future__ import annotations

import itertools
import json
from typing import Iterable, List

from ..config import config_from_dict, to_dict
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


__all__ = ["lightgbm_grid"]
