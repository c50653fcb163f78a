"""One place that maps a learner name (``"t"``, ``"x"``, later ``"s"``, ``"r"``, ``"dr"``) to its
Estimator and Model classes. Each learner module registers itself on import
(``register_learner("t", TLearner, TLearnerModel)``); config checks, the train stage and model loading
all look names up here, so adding a learner touches no other module's switch.
"""

from __future__ import annotations

from typing import Dict, Tuple, Type

from ..errors import ModelError

_LEARNERS: Dict[str, Tuple[type, type]] = {}


def register_learner(name: str, estimator_cls: type, model_cls: type) -> None:
    """Register ``name``; re-registering the same classes is a no-op, other classes are refused."""
    have = _LEARNERS.get(name)
    if have is not None and have != (estimator_cls, model_cls):
        raise ModelError(f"learner {name!r} is already registered to {have[0].__name__}/{have[1].__name__}")
    estimator_cls.learner = name
    model_cls.learner = name
    _LEARNERS[name] = (estimator_cls, model_cls)


def learner_names() -> Tuple[str, ...]:
    return tuple(sorted(_LEARNERS))


def _entry(name: str) -> Tuple[type, type]:
    if name not in _LEARNERS:
        raise ModelError(f"unknown learner {name!r} (expected one of {list(learner_names())})")
    return _LEARNERS[name]


def learner_class(name: str) -> Type:
    """The Estimator class of learner ``name``."""
    return _entry(name)[0]


def model_class(name: str) -> Type:
    """The Model class of learner ``name``."""
    return _entry(name)[1]


def registered() -> Dict[str, Tuple[type, type]]:
    """A copy of ``{name: (Estimator class, Model class)}``."""
    return dict(_LEARNERS)


__all__ = ["register_learner", "learner_class", "model_class", "learner_names", "registered"]
