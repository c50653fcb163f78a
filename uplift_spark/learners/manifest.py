"""The run's model manifest: how score, predict, decide and monitor find (and trust) the saved models.

``<model_dir>/manifest.json`` = {model_version, run_id, created_at, control_arm, treatment_arms,
features, categorical_features, primary_outcome, models: [{learner, outcome, outcome_type, path,
backend, seconds, strategy: {booster: per_task|distributed}, digest_sha256}], manifest_sha256}. ``digest_sha256`` pins each model folder's
``_digest.json`` (which covers every file of the folder, metadata included); ``manifest_sha256`` is
the SHA-256 of the manifest's other keys as canonical JSON, so an edited manifest is refused too.
Paths may be any Hadoop path (:mod:`uplift_spark.io.fs`).
"""

from __future__ import annotations

import hashlib
import json
from typing import List, Mapping, Optional, Tuple

from ..errors import ModelError
from ..io import fs as hfs
from ..logs import get_logger
from .models import UpliftModel, load_uplift_model

log = get_logger("learners.manifest")

MANIFEST = "manifest.json"
_SELF = "manifest_sha256"


def _canonical_sha(manifest: Mapping) -> str:
    body = {k: v for k, v in manifest.items() if k != _SELF}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(model_dir: str, manifest: Mapping, spark=None) -> str:
    """Write ``<model_dir>/manifest.json`` with its own checksum (temp file then rename); returns the path."""
    model_dir = hfs.normalize(model_dir)
    fs = hfs.filesystem(model_dir, spark)
    fs.mkdirs(model_dir)
    body = dict(manifest)
    body[_SELF] = _canonical_sha(body)
    path = hfs.join(model_dir, MANIFEST)
    tmp = hfs.join(model_dir, MANIFEST + ".tmp")
    fs.write_text(tmp, json.dumps(body, indent=2, sort_keys=True, default=str))
    fs.replace_file(tmp, path)
    return path


def load_manifest(model_dir: str, spark=None) -> dict:
    """The manifest of a training run, its checksum verified (ModelError when edited or absent)."""
    model_dir = hfs.normalize(model_dir)
    fs = hfs.filesystem(model_dir, spark)
    path = hfs.join(model_dir, MANIFEST)
    if not fs.exists(path):
        raise ModelError(f"no {MANIFEST} in {model_dir}: run the train stage first")
    try:
        manifest = json.loads(fs.read_text(path))
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    want = manifest.pop(_SELF, None)
    if want is None:
        if any(e.get("digest_sha256") for e in manifest.get("models", [])):
            raise ModelError(f"{path}: {_SELF} is missing (modified manifest)")
        log.warning("%s has no %s (written before manifests were checksummed)", path, _SELF)
    elif _canonical_sha(manifest) != want:
        raise ModelError(f"{path} fails its SHA-256 check (modified or corrupted): rerun the train stage")
    return manifest


def model_path(model_dir: str, entry: Mapping) -> str:
    """Folder of a manifest entry (its ``path`` is relative to the model dir unless absolute/a URI)."""
    path = entry["path"]
    if hfs.has_scheme(path) or path.startswith("/"):
        return path
    return hfs.join(hfs.normalize(model_dir), path)


def load_entry(model_dir: str, entry: Mapping) -> UpliftModel:
    """The model of one manifest entry, its folder pinned by the entry's ``digest_sha256``."""
    return load_uplift_model(model_path(model_dir, entry), expected_digest=entry.get("digest_sha256"))


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
        out.append((entry, load_entry(model_dir, entry)))
    if not out:
        have = [(e["learner"], e["outcome"]) for e in manifest["models"]]
        raise ModelError(f"no saved model for learner={learner!r} outcome={outcome!r} in {model_dir} (have {have})")
    return out


__all__ = ["MANIFEST", "write_manifest", "load_manifest", "load_models", "load_entry", "model_path"]
