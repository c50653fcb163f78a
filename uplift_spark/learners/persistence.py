"""Save/load an :class:`UpliftModel` as a folder of LightGBM text boosters plus ``metadata.json``.

No pickle: boosters are LightGBM's own text format, everything else is JSON. ``metadata.json`` lists
every file with its SHA-256; loading recomputes them, so a truncated, edited or missing booster fails
with a :class:`ModelError` naming the file instead of scoring a campaign with a broken model.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from typing import Dict

from ..errors import ModelError
from .features import FeatureEncoding

METADATA = "metadata.json"
FORMAT_VERSION = 1


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> Dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("uplift_spark", "pyspark", "lightgbm", "synapse.ml", "numpy", "pandas"):
        try:
            mod = __import__(name, fromlist=["__version__"])
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # noqa: BLE001 - optional packages
            out[name] = "absent"
    return out


def save_uplift_model(model, path: str, overwrite: bool = True) -> str:
    """Write ``model`` to ``path`` (atomically: a temp folder renamed into place)."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path) and not overwrite:
        raise ModelError(f"model folder {path} exists and overwrite is False")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_model_", dir=parent)
    try:
        files = {}
        for key, text in sorted(model.boosters.items()):
            name = f"{key}.txt"
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                fh.write(text)
            files[name] = _sha256(os.path.join(tmp, name))
        meta = {
            "format_version": FORMAT_VERSION,
            "learner": model.learner,
            "outcome": model.outcome,
            "outcome_type": model.outcome_type,
            "control_arm": model.control_arm,
            "treatment_arms": list(model.treatment_arms),
            "uplift_columns": model.uplift_columns,
            "features": list(model.features),
            "encoding": model.encoding.to_json(),
            "propensity": model.propensity,
            "boosters": {key: f"{key}.txt" for key in sorted(model.boosters)},
            "params": model.learner_params,
            "training": model.training,
            "versions": package_versions(),
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        with open(os.path.join(tmp, METADATA), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True, default=str)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_metadata(path: str) -> dict:
    meta_path = os.path.join(path, METADATA)
    if not os.path.isfile(meta_path):
        raise ModelError(f"model folder {path}: {METADATA} is missing")
    try:
        with open(meta_path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as exc:
        raise ModelError(f"model folder {path}: {METADATA} is not valid JSON: {exc}") from None


def load_uplift_model(path: str):
    """Load and verify a saved model; any missing or altered booster file raises ModelError."""
    from .base import UpliftModel

    path = os.path.abspath(os.path.expanduser(path))
    meta = read_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model folder {path}: format_version {meta.get('format_version')!r} "
                         f"is not supported (expected {FORMAT_VERSION})")
    files = meta.get("files", {})
    boosters = {}
    for key, name in meta["boosters"].items():
        file_path = os.path.join(path, name)
        if name not in files:
            raise ModelError(f"model folder {path}: {name} has no checksum in {METADATA}")
        if not os.path.isfile(file_path):
            raise ModelError(f"model folder {path}: booster file {name} is missing")
        if _sha256(file_path) != files[name]:
            raise ModelError(f"model folder {path}: booster file {name} fails its SHA-256 check "
                             "(modified or corrupted)")
        with open(file_path, "r", encoding="utf-8") as fh:
            boosters[key] = fh.read()
    return UpliftModel(
        learner=meta["learner"], outcome=meta["outcome"], outcome_type=meta["outcome_type"],
        control_arm=meta["control_arm"], treatment_arms=meta["treatment_arms"],
        encoding=FeatureEncoding.from_json(meta["encoding"]), boosters=boosters,
        propensity=meta["propensity"], training=meta.get("training"), params=meta.get("params"),
    )


__all__ = ["save_uplift_model", "load_uplift_model", "read_metadata", "package_versions"]
