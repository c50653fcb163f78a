"""Config loading is strict: every mistake names its key, every shipped config loads."""

import glob
import os

import pytest

from uplift_spark.config import UpliftConfig, config_from_dict, load_config, to_dict
from uplift_spark.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "conf", "*.yaml"))))
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert isinstance(cfg, UpliftConfig)
    assert cfg.data.treatment_arms, path
    assert cfg.data.control_arm not in cfg.data.treatment_arms


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"dat": {}}, "unknown config key dat"),
        ({"model": {"lightgbm": {"num_leaves": "many"}}}, "model.lightgbm.num_leaves: expected an integer"),
        ({"model": {"lightgbm": {"num_leaves": 1}}}, "model.lightgbm.num_leaves: 1 is below the minimum 2"),
        ({"model": {"learners": ["t", "q"]}}, "model.learners: 'q'"),
        ({"data": {"outcomes": [{"name": "y", "type": "count"}]}}, "data.outcomes[0].type: 'count' is not one of"),
        ({"data": {"features": "x"}}, "data.features: expected a list"),
        ({"split": {"train": 0.5}}, "train + valid + test must be 1.0"),
        ({"split": {"oot": {"cutoff": "2025-01-01", "fraction": 0.2}}}, "set only one of"),
        ({"data": {"treatment_arms": ["a"], "control_arm": "a"}}, "control arm 'a' is listed"),
        ({"policy": {"holdout_share": 0.6, "explore_share": 0.5}}, "holdout_share + explore_share"),
        ({"tables": {"mode": "metastore"}}, "tables.database: required"),
        ({"spark": {"jars": "maven"}}, "spark.jars: 'maven' is not one of"),
        ({"run": {"seed": True}}, "run.seed: expected an integer"),
    ],
)
def test_bad_config_names_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert message in str(err.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("run: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(str(evil))


def test_env_expansion_and_output_override(tmp_path, monkeypatch):
    conf = tmp_path / "c.yaml"
    conf.write_text("run:\n  output_root: ${UPLIFT_TEST_OUT:-/default}\n  seed: 3\n")
    assert load_config(str(conf)).run.output_root == "/default"
    monkeypatch.setenv("UPLIFT_TEST_OUT", "/from/env")
    assert load_config(str(conf)).run.output_root == "/from/env"
    assert load_config(str(conf), output_root="/cli").run.output_root == "/cli"


def test_config_is_frozen_and_serializable():
    cfg = config_from_dict({"data": {"allocation": {"control": 0.5}}})
    with pytest.raises(Exception):
        cfg.run.seed = 1  # frozen dataclass
    with pytest.raises(TypeError):
        cfg.data.allocation["x"] = 1.0  # read-only mapping
    plain = to_dict(cfg)
    assert plain["data"]["allocation"] == {"control": 0.5}
    assert config_from_dict({k: v for k, v in plain.items() if k != "source_file"}) == cfg
