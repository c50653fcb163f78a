"""Config accepts exactly the learners and trainer backends that are registered, no hand-kept list."""

import pytest

from uplift_spark.config import config_from_dict, registered_names
from uplift_spark.errors import ConfigError


def test_learner_and_backend_names_come_from_the_registries():
    from uplift_spark.learners import registry
    from uplift_spark.learners.trainers import TRAINERS

    learners, backends = registered_names()
    assert {"t", "x"} <= set(learners) and learners == registry.learner_names()
    assert {"synapseml", "barrier"} <= set(backends) and set(backends) == set(TRAINERS)
    with pytest.raises(ConfigError, match=r"model.backend: 'gpu' is not one of \['auto'"):
        config_from_dict({"model": {"backend": "gpu"}})
    with pytest.raises(ConfigError, match="policy.learner: 'zz'"):
        config_from_dict({"policy": {"learner": "zz"}})

    class Est:
        pass

    class Mod:
        pass

    TRAINERS["fake_backend"] = object
    registry._LEARNERS["zz"] = (Est, Mod)
    try:  # a newly registered name is accepted with no config change
        cfg = config_from_dict({"model": {"learners": ["t", "zz"], "backend": "fake_backend"},
                                "policy": {"learner": "zz"}})
        assert cfg.model.learners == ("t", "zz") and cfg.model.backend == "fake_backend"
    finally:
        del TRAINERS["fake_backend"], registry._LEARNERS["zz"]
    with pytest.raises(ConfigError, match="model.learners: 'zz'"):
        config_from_dict({"model": {"learners": ["zz"]}})


def test_reading_a_config_module_does_not_import_pyspark():
    import subprocess
    import sys

    code = "import sys, uplift_spark.config; sys.exit(any(m.startswith('pyspark') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
