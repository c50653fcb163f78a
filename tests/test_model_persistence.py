"""Models and learners as pyspark.ml citizens: MLWritable/MLReadable through the Hadoop FileSystem API,
SHA-256 over every file (metadata included), the run manifest pinning each folder, format 1 still read,
typed Params and an acyclic learners package.

Boosters are trained with PyPI lightgbm on NumPy (fast, independent of the Spark trainers, which
tests/test_learners.py covers); Spark does the saving, loading and scoring.
"""

import ast
import hashlib
import json
import os
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest

from uplift_spark.errors import ModelError

ARMS = ["email_a", "email_b"]
FEATURES = ["x0", "x1"]


def _booster(x, y, seed):
    import lightgbm as lgb

    params = {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "verbosity": -1, "seed": seed,
              "deterministic": True}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=5).model_to_string()


@pytest.fixture(scope="module")
def models():
    from uplift_spark.learners import FeatureEncoding, TLearnerModel, XLearnerModel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    keys = ["control", "email_a", "email_b"]
    mu = {k: _booster(x, x[:, 0] * (i + 1) + rng.normal(size=300), i) for i, k in enumerate(keys)}
    enc = FeatureEncoding(features=tuple(FEATURES))
    common = dict(outcome="conversion", outcome_type="continuous", control_arm="control", treatment_arms=ARMS,
                  encoding=enc, training={"backend": "test"}, params={"outcomeCol": "conversion"})
    t = TLearnerModel(boosters={f"mu_{k}": v for k, v in mu.items()}, propensity={"mode": "constant"}, **common)
    tau = {f"tau{s}_{a}": _booster(x, x[:, 1] * (j + 2) + rng.normal(size=300), 10 + j)
           for j, (s, a) in enumerate((s, a) for s in "01" for a in ARMS)}
    prop = {"mode": "constant", "clip": 0.01, "constant": {"email_a": 0.25, "email_b": 0.4}, "columns": {},
            "control_column": None}
    xm = XLearnerModel(boosters=dict({f"mu_{k}": v for k, v in mu.items()}, **tau), propensity=prop, **common)
    return {"t": t, "x": xm}


@pytest.fixture(scope="module")
def population(spark):
    rng = np.random.default_rng(5)
    pdf = pd.DataFrame({"customer_id": np.arange(200), "x0": rng.normal(size=200), "x1": rng.normal(size=200)})
    return spark.createDataFrame(pdf)


def _scores(model, df):
    cols = list(model.uplift_columns.values())
    return model.transform(df).select("customer_id", *cols).toPandas().sort_values("customer_id")[cols].to_numpy()


def test_save_to_file_uri_and_plain_path_scores_identically(spark, models, population, tmp_path):
    from uplift_spark.learners import TLearnerModel, UpliftModel, XLearnerModel

    for name, cls in (("t", TLearnerModel), ("x", XLearnerModel)):
        model = models[name]
        before = _scores(model, population)
        plain = str(tmp_path / f"{name}_plain")
        uri = "file://" + str(tmp_path / f"{name}_uri")
        model.write().save(plain)
        model.write().overwrite().save(uri)
        model.write().overwrite().save(uri)  # overwrite replaces a complete folder
        with pytest.raises(ModelError, match="exists"):
            model.write().save(plain)
        assert sorted(os.listdir(tmp_path / f"{name}_uri")) == sorted(
            ["_digest.json", "metadata.json"] + [f"{k}.txt" for k in model.boosters])
        for loaded in (cls.load(plain), UpliftModel.load(uri)):
            assert type(loaded) is cls and loaded.uid == model.uid
            assert loaded.boosters == model.boosters and loaded.getOutcomeCol() == "conversion"
            after = _scores(loaded, population)
            assert np.max(np.abs(after - before)) == 0.0
        x = population.select(*FEATURES).toPandas().to_numpy()
        ref = model.predict_arrays(x)
        np.testing.assert_array_equal(before[:, 0], ref[ARMS[0]])
    with pytest.raises(ModelError, match="x'-learner model.*not a TLearnerModel"):
        TLearnerModel.load(str(tmp_path / "x_plain"))


def _append(path, text):
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def _swap_booster_names(path):
    meta_file = path / "metadata.json"
    meta_file.write_text(meta_file.read_text().replace('"mu_email_a.txt"', '"mu_email_b.txt"'))


TAMPERING = [
    ("metadata.json", _swap_booster_names),
    ("mu_email_a.txt", lambda path: _append(path / "mu_email_a.txt", "\n# tampered\n")),
    ("mu_email_b.txt.*missing", lambda path: (path / "mu_email_b.txt").unlink()),
    ("unexpected file notes.txt", lambda path: (path / "notes.txt").write_text("hello")),
    ("metadata.json.*missing", lambda path: (path / "metadata.json").unlink()),
]


def test_tampered_folder_is_refused_naming_the_file(spark, models, tmp_path):
    from uplift_spark.learners import UpliftModel

    saved = tmp_path / "saved"
    models["t"].write().save(str(saved))
    for expected, tamper in TAMPERING:
        victim = tmp_path / "victim"
        shutil.rmtree(victim, ignore_errors=True)
        shutil.copytree(saved, victim)
        tamper(victim)
        with pytest.raises(ModelError, match=expected):
            UpliftModel.load(str(victim))
    # metadata edited AND its digest entry recomputed: the run's manifest pin still refuses it
    victim = tmp_path / "victim"
    shutil.rmtree(victim)
    shutil.copytree(saved, victim)
    pin = hashlib.sha256((saved / "_digest.json").read_bytes()).hexdigest()
    meta = (victim / "metadata.json").read_text().replace('"mu_email_a.txt"', '"mu_email_b.txt"')
    (victim / "metadata.json").write_text(meta)
    digest = json.loads((victim / "_digest.json").read_text())
    digest["files"]["metadata.json"] = hashlib.sha256(meta.encode()).hexdigest()
    (victim / "_digest.json").write_text(json.dumps(digest))
    from uplift_spark.learners import load_uplift_model

    with pytest.raises(ModelError, match="_digest.json fails the SHA-256 recorded in the run's manifest"):
        load_uplift_model(str(victim), expected_digest=pin)


def test_manifest_pins_model_folders_and_itself(spark, models, tmp_path):
    from uplift_spark.learners import load_manifest, load_models, write_manifest
    from uplift_spark.learners.persistence import digest_sha256

    root = tmp_path / "models" / "run1"
    models["t"].write().save(str(root / "t" / "conversion"))
    entry = {"learner": "t", "outcome": "conversion", "path": "t/conversion",
             "digest_sha256": digest_sha256(str(root / "t" / "conversion"))}
    write_manifest("file://" + str(root), {"run_id": "run1", "treatment_arms": ARMS, "models": [entry]})
    assert load_manifest(str(root))["models"] == [entry]
    (loaded_entry, model), = load_models(str(root), learner="t")
    assert model.boosters == models["t"].boosters
    # a complete, self-consistent folder of another model put in its place is refused by the pin
    models["x"].write().overwrite().save(str(root / "t" / "conversion"))
    with pytest.raises(ModelError, match="_digest.json fails the SHA-256 recorded in the run's manifest"):
        load_models(str(root), learner="t")
    # an edited manifest is refused
    text = (root / "manifest.json").read_text()
    (root / "manifest.json").write_text(text.replace('"t/conversion"', '"x/conversion"'))
    with pytest.raises(ModelError, match="manifest.json fails its SHA-256 check"):
        load_manifest(str(root))


def test_estimator_save_load_round_trips_params(spark, tmp_path):
    from uplift_spark.config import LightGBMConfig
    from uplift_spark.learners import TLearner, UpliftModel, XLearner

    est = XLearner(outcomeCol="revenue", outcomeType="continuous", treatmentArms=ARMS, featureCols=FEATURES,
                   propensity="estimate", propensityClip=0.05, lightgbm=LightGBMConfig(num_leaves=7, seed=9))
    est.write().save("file://" + str(tmp_path / "est"))
    back = XLearner.load(str(tmp_path / "est"))
    assert type(back) is XLearner and back.uid == est.uid
    assert {p.name: v for p, v in back.extractParamMap().items()} == \
        {p.name: v for p, v in est.extractParamMap().items()}
    assert back.isSet(back.propensityClip) and not back.isSet(back.armCol)
    assert back.getLightGBMConfig().num_leaves == 7 and back.getPropensityClip() == 0.05
    with pytest.raises(ModelError, match="XLearner, not a TLearner"):
        TLearner.load(str(tmp_path / "est"))
    with pytest.raises(ModelError, match="not a fitted model"):
        UpliftModel.load(str(tmp_path / "est"))


def _write_format_1(model, path):
    """The layout the format-1 writer produced: boosters + metadata.json listing their SHA-256."""
    path.mkdir()
    files = {}
    for key, text in sorted(model.boosters.items()):
        (path / f"{key}.txt").write_text(text, encoding="utf-8")
        files[f"{key}.txt"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    meta = {"format_version": 1, "learner": model.learner, "outcome": model.outcome,
            "outcome_type": model.outcome_type, "control_arm": model.control_arm,
            "treatment_arms": model.treatment_arms, "uplift_columns": model.uplift_columns,
            "features": model.features, "encoding": model.encoding.to_json(), "propensity": model.propensity,
            "boosters": {k: f"{k}.txt" for k in sorted(model.boosters)}, "params": model.learner_params,
            "training": model.training, "versions": {}, "saved_at": "2026-01-01T00:00:00+00:00", "files": files}
    (path / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def test_format_1_folder_loads_and_unknown_version_is_named(spark, models, population, tmp_path):
    from uplift_spark.learners import UpliftModel, XLearnerModel

    old = tmp_path / "v1"
    _write_format_1(models["x"], old)
    loaded = UpliftModel.load(str(old))
    assert type(loaded) is XLearnerModel
    assert np.max(np.abs(_scores(loaded, population) - _scores(models["x"], population))) == 0.0
    _append(old / "tau0_email_a.txt", "# edited\n")
    with pytest.raises(ModelError, match="tau0_email_a.txt fails its SHA-256"):
        UpliftModel.load(str(old))
    future = tmp_path / "v9"
    _write_format_1(models["t"], future)
    meta = json.loads((future / "metadata.json").read_text())
    (future / "metadata.json").write_text(json.dumps(dict(meta, format_version=9)))
    with pytest.raises(ModelError, match="format_version 9"):
        UpliftModel.load(str(future))


def test_params_have_typed_accessors_declared_on_the_class():
    import inspect

    from uplift_spark.learners import TLearner, XLearnerModel
    from uplift_spark.learners.params import UpliftParams

    for name in UpliftParams.PARAM_NAMES:
        cap = name[0].upper() + name[1:]
        getter = inspect.getattr_static(UpliftParams, f"get{cap}")
        setter = inspect.getattr_static(UpliftParams, f"set{cap}")
        # declared in the class body (an IDE sees it), typed, not attached at runtime
        assert getter.__qualname__ in (f"UpliftModelParams.get{cap}", f"UpliftParams.get{cap}")
        assert inspect.signature(getter).return_annotation != inspect.Signature.empty
        assert "value" in inspect.signature(setter).parameters
    est = TLearner().setTreatmentArms(["a", "b"]).setPropensityClip(0.2)
    assert est.getTreatmentArms() == ["a", "b"] and est.getPropensityClip() == 0.2
    assert XLearnerModel().getArmCol() == "arm"


def _relative_imports(path: pathlib.Path, package: str):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                yield f"{package}.{node.module.split('.')[0]}"
            else:
                for alias in node.names:
                    yield f"{package}.{alias.name}"


def test_learners_package_has_no_import_cycle():
    """Every relative import inside uplift_spark/learners (module level or deferred) forms a DAG."""
    import uplift_spark.learners as pkg

    root = pathlib.Path(pkg.__file__).parent
    mods = {p.stem: p for p in root.glob("*.py") if p.stem != "__init__"}
    graph = {m: {d.split(".")[-1] for d in _relative_imports(p, "learners")} & set(mods) for m, p in mods.items()}
    state = {}

    def visit(m, trail):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join(trail + [m])}"
        state[m] = "open"
        for d in sorted(graph[m]):
            visit(d, trail + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])
    assert "persistence" not in graph["base"] or "base" not in graph["persistence"]


def test_s_r_dr_models_round_trip_and_score_identically(spark, population, tmp_path):
    """The S/R/DR Model classes save and load like T/X (inherited), with their own boosters and spec."""
    import lightgbm as lgb

    from uplift_spark.learners import (DRLearnerModel, FeatureEncoding, RLearnerModel, SLearnerModel,
                                       UpliftModel)

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    arm = rng.integers(0, 3, 300).astype(float)
    s_text = lgb.train({"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "verbosity": -1},
                       lgb.Dataset(np.column_stack([x, arm]), x[:, 0] * arm + rng.normal(size=300),
                                   categorical_feature=[2]), 5).model_to_string()
    tau = {f"tau_{a}": _booster(x, x[:, 1] * (i + 1) + rng.normal(size=300), 20 + i) for i, a in enumerate(ARMS)}
    common = dict(outcome="conversion", outcome_type="continuous", control_arm="control", treatment_arms=ARMS,
                  encoding=FeatureEncoding(features=tuple(FEATURES)), params={"outcomeCol": "conversion"})
    cross = {"cross_fitting": {"folds": [0, 1, 2, 3, 4], "fold_col": "fold"}}
    built = {
        "s": SLearnerModel(boosters={"s_pooled": s_text}, propensity={"mode": "unused"}, training={}, **common),
        "r": RLearnerModel(boosters=tau, propensity={"mode": "cross_fitted"}, training=cross, **common),
        "dr": DRLearnerModel(boosters=tau, propensity={"mode": "cross_fitted"}, training=cross, **common),
    }
    for name, model in built.items():
        before = _scores(model, population)
        path = str(tmp_path / name)
        model.write().save(path)
        assert sorted(os.listdir(path)) == sorted(["_digest.json", "metadata.json"] + [f"{k}.txt" for k in model.boosters])
        loaded = UpliftModel.load(path)
        assert type(loaded) is type(model) and loaded.learner == name and loaded.training == model.training
        assert np.max(np.abs(_scores(loaded, population) - before)) == 0.0
        ref = model.predict_arrays(population.select(*FEATURES).toPandas().to_numpy())
        np.testing.assert_allclose(before[:, 1], ref[ARMS[1]], atol=1e-12)
    np.testing.assert_array_equal(_scores(built["r"], population), _scores(built["dr"], population))
    with pytest.raises(ModelError, match="'r'-learner model.*not a DRLearnerModel"):
        DRLearnerModel.load(str(tmp_path / "r"))
