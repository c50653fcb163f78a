"""Distributed LightGBM uplift learners as pyspark.ml citizens, and helpers to load what ``train`` saved.

Each learner is an Estimator/Model pair registered in :mod:`.registry` (``t``: :class:`TLearner` /
:class:`TLearnerModel`, ``x``: :class:`XLearner` / :class:`XLearnerModel`, ``s``, ``r`` and ``dr``:
:class:`SLearner`, :class:`RLearner`, :class:`DRLearner` and their Models); models share the base
:class:`UpliftModel`. Both sides save and load on any Hadoop path::

    model = TLearner(outcomeCol="conversion", treatmentArms=["email"], featureCols=[...]).fit(df)
    model.write().overwrite().save("abfss://.../t/conversion")
    model = TLearnerModel.load("abfss://.../t/conversion")   # or UpliftModel.load: any learner

Other stages load models through the run's manifest (:mod:`.manifest`)::

    from uplift_spark.learners import load_manifest, load_models
    for entry, model in load_models(ctx.model_dir, learner="x", outcome="conversion"):
        scored = model.transform(population)   # adds uplift_<slug(arm)> per treatment arm
"""

from __future__ import annotations

from .base import UpliftLearner
from .features import FeatureEncoding, fit_encoding
from .manifest import MANIFEST, load_entry, load_manifest, load_models, write_manifest
from .models import UpliftModel, load_uplift_model, save_uplift_model
from .params import UpliftParams
from .registry import learner_class, learner_names, model_class, register_learner, registered
from .t_learner import TLearner, TLearnerModel
from .trainers import BarrierTrainer, SynapseMLTrainer, lightgbm_params, make_trainer, register_trainer, resolve_backend
from .x_learner import XLearner, XLearnerModel
from .s_learner import SLearner, SLearnerModel
from .r_learner import RLearner, RLearnerModel
from .dr_learner import DRLearner, DRLearnerModel

# name -> Estimator class, kept for callers of the former module-level dict
LEARNERS = {name: pair[0] for name, pair in registered().items()}

__all__ = [
    "TLearner", "TLearnerModel", "XLearner", "XLearnerModel", "SLearner", "SLearnerModel", "RLearner",
    "RLearnerModel", "DRLearner", "DRLearnerModel", "UpliftLearner", "UpliftModel", "UpliftParams",
    "FeatureEncoding", "fit_encoding", "load_uplift_model", "save_uplift_model", "load_manifest", "load_models",
    "load_entry", "write_manifest", "learner_class", "model_class", "learner_names", "register_learner",
    "make_trainer", "register_trainer", "resolve_backend", "SynapseMLTrainer", "BarrierTrainer", "lightgbm_params",
    "MANIFEST", "LEARNERS",
]
