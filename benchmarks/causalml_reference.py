"""causalml's BaseTClassifier / BaseXClassifier with LightGBM on the rows of ``training_vs_lightgbm.py``.

    python benchmarks/training_vs_lightgbm.py --rows 1000000 --warmup --keep      # project env
    python -m venv /tmp/cml && /tmp/cml/bin/pip install causalml lightgbm pyarrow pandas scikit-uplift
    /tmp/cml/bin/python benchmarks/causalml_reference.py --workdir /tmp/uplift_bench_train

causalml needs numpy 2.x, which the project does not use (it pins numpy < 2 for PySpark 3.5 / SynapseML),
so this script runs in its own virtualenv and imports nothing from ``uplift_spark``: it reads the
Parquet log the Spark benchmark kept (same rows, same 60/20/20 split), fits on the ``train`` rows with
the benchmark's LightGBM parameters (``_common.lightgbm_config``: 100 trees, no early stopping, since
causalml has no validation set), with categories as integer codes, and X-learner propensities
e = p_k / (p_k + p_0) from the logged assignment probabilities. Prints wall time and test Qini AUC per
arm (sklift) and writes ``results/causalml_reference_<rows>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROL, ARMS = "control", ["email_a", "email_b", "discount"]


def lgb_params(threads: int) -> dict:
    # the benchmark's common parameters (_common.lightgbm_config), in the scikit-learn API's names
    return dict(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=100, random_state=1,
                n_jobs=threads, verbose=-1)


def features(pdf: pd.DataFrame) -> np.ndarray:
    cols = []
    names = [c for c in pdf.columns if c[:1] in "xc" and c[1:].isdigit()]
    for c in sorted(names, key=lambda c: (c[0] == "c", int(c[1:]))):
        col = pdf[c]
        numeric = pd.api.types.is_numeric_dtype(col)
        cols.append(col.astype(np.float64).to_numpy() if numeric
                    else col.astype("category").cat.codes.astype(np.float64).to_numpy())
    return np.column_stack(cols)


def qini(test: pd.DataFrame, uplift: dict) -> dict:
    from sklift.metrics import qini_auc_score

    out = {}
    for arm, u in uplift.items():
        mask = test.arm.isin([arm, CONTROL]).to_numpy()
        out[arm] = round(float(qini_auc_score(test.conversion.to_numpy()[mask], np.asarray(u)[mask],
                                              (test.arm.to_numpy()[mask] == arm).astype(int))), 5)
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/uplift_bench_train")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    from importlib.metadata import version

    from causalml.inference.meta import BaseTClassifier, BaseXClassifier
    from lightgbm import LGBMClassifier, LGBMRegressor

    pdf = pd.read_parquet(os.path.join(args.workdir, "log"))
    pdf = pdf[pdf.arm.isin([CONTROL, *ARMS])]
    train = pdf[pdf.split == "train"].reset_index(drop=True)
    test = pdf[pdf.split == "test"].reset_index(drop=True)
    x_train, x_test = features(train), features(test)
    result = {"rows": int(len(pdf)), "train_rows": int(len(train)), "test_rows": int(len(test)),
              "threads": args.threads, "causalml": version("causalml"), "lightgbm": version("lightgbm"),
              "learners": {}}

    def prop(frame: pd.DataFrame) -> dict:
        p0 = frame["propensity_control"].to_numpy(np.float64)
        return {a: frame[f"propensity_{a}"].to_numpy(np.float64) / (frame[f"propensity_{a}"].to_numpy(np.float64) + p0)
                for a in ARMS}

    learners = {
        "t": BaseTClassifier(learner=LGBMClassifier(**lgb_params(args.threads)), control_name=CONTROL),
        "x": BaseXClassifier(outcome_learner=LGBMClassifier(**lgb_params(args.threads)),
                             effect_learner=LGBMRegressor(**lgb_params(args.threads)), control_name=CONTROL),
    }
    for name, model in learners.items():
        start = time.perf_counter()
        if name == "x":
            model.fit(x_train, treatment=train.arm.to_numpy(), y=train.conversion.to_numpy(), p=prop(train))
            tau = model.predict(x_test, p=prop(test))
        else:
            model.fit(x_train, treatment=train.arm.to_numpy(), y=train.conversion.to_numpy())
            tau = model.predict(x_test)
        seconds = time.perf_counter() - start
        groups = list(model.t_groups)
        uplift = {a: tau[:, groups.index(a)] for a in ARMS}
        result["learners"][name] = {"seconds": round(seconds, 2), "qini": qini(test, uplift)}
        print(f"causalml {name}-learner: fit + predict {seconds:.1f}s, test Qini AUC {result['learners'][name]['qini']}",
              flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"causalml_reference_{result['rows']}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
