"""Distributed LightGBM uplift learners (T and X) and helpers to load what ``train`` saved.

Other stages load models through the manifest written by ``pipelines/train.py``::

    from uplift_spark.learners import load_manifest, load_models
    manifest = load_manifest(ctx.model_dir)
    for entry, model in load_models(ctx.model_dir, learner="x", outcome="conversion"):
        scored = model.transform(population)   # adds uplift_<slug(arm)> per treatment arm
"""

from __future__ import annotations

import json
import os
from typing import List, Optional, Tuple

from ..errors import ModelError
from .base import UpliftModel
from .features import FeatureEncoding, fit_encoding
from .persistence import load_uplift_model, save_uplift_model
from .t_learner import TLearner
from .trainers import BarrierTrainer, SynapseMLTrainer, lightgbm_params, make_trainer, resolve_backend
from .x_learner import XLearner

MANIFEST = "manifest.json"
LEARNERS = {"t": TLearner, "x": XLearner}


def learner_class(name: str):
    if name not in LEARNERS:
        raise ModelError(f"unknown learner {name!r} (expected one of {sorted(LEARNERS)})")
    return LEARNERS[name]


def load_manifest(model_dir: str) -> dict:
    """The manifest of a training run: model_version, arms, features and one entry per saved model."""
    path = os.path.join(model_dir, MANIFEST)
    if not os.path.isfile(path):
        raise ModelError(f"no {MANIFEST} in {model_dir}: run the train stage first")
    with open(path, "r", encoding="utf-8") as fh:
        return json.load(fh)


def load_models(model_dir: str, learner: Optional[str] = None,
                outcome: Optional[str] = None) -> List[Tuple[dict, UpliftModel]]:
    """``[(manifest entry, model)]`` for the saved models matching ``learner``/``outcome`` (None = all)."""
    manifest = load_manifest(model_dir)
    out = []
    for entry in manifest["models"]:
        if learner is not None and entry["learner"] != learner:
            continue
        if outcome is not None and entry["outcome"] != outcome:
            continue
        out.append((entry, load_uplift_model(os.path.join(model_dir, entry["path"]))))
    if not out:
        have = [(e["learner"], e["outcome"]) for e in manifest["models"]]
        raise ModelError(f"no saved model for learner={learner!r} outcome={outcome!r} in {model_dir} (have {have})")
    return out


__all__ = [
    "TLearner", "XLearner", "UpliftModel", "FeatureEncoding", "fit_encoding", "load_uplift_model",
    "save_uplift_model", "load_manifest", "load_models", "learner_class", "make_trainer", "resolve_backend",
    "SynapseMLTrainer", "BarrierTrainer", "lightgbm_params", "MANIFEST", "LEARNERS",
]
