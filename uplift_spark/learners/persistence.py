"""The on-disk format of saved learners and models: a folder of text files, every byte covered by SHA-256.

No pickle: boosters are LightGBM's own text format, everything else is JSON. Format version 2::

    <folder>/<booster>.txt     LightGBM model text, one per booster
    <folder>/metadata.json     what the model is (class, learner, arms, encoding, params, ...)
    <folder>/_digest.json      {"format_version": 2, "files": {name: sha256}} for EVERY other file

The digest covers ``metadata.json`` too, so an edited arm-to-booster mapping is refused like an edited
booster; the SHA-256 of ``_digest.json`` itself goes into the run's manifest
(:mod:`uplift_spark.learners.manifest`), so the whole folder is pinned by the run. Loading reads every
file once, checks it against the digest and refuses missing, altered or unexpected files with a
:class:`ModelError` naming the file — before anything is scored or written.

Writes go to a temporary sibling folder renamed into place, through the Hadoop FileSystem API
(:mod:`uplift_spark.io.fs`), so a model path may be local, ``file://``, ``dbfs:/``, ``s3a://`` or
``abfss://``. Version-1 folders (``metadata.json`` listing booster checksums only) still load, with a
warning that their metadata is not covered.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from typing import Dict, Mapping, Optional, Tuple

from pyspark.ml.util import MLReader, MLWriter

from ..errors import ModelError
from ..io import fs as hfs
from ..logs import get_logger

log = get_logger("learners.persistence")

METADATA = "metadata.json"
DIGEST = "_digest.json"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_versions() -> Dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("uplift_spark", "pyspark", "lightgbm", "synapse.ml", "numpy", "pandas"):
        try:
            mod = __import__(name, fromlist=["__version__"])
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # noqa: BLE001 - optional packages
            out[name] = "absent"
    return out


def write_folder(path: str, meta: Mapping, texts: Mapping[str, str], overwrite: bool, spark=None) -> str:
    """Write ``texts`` ({file name: text}), ``metadata.json`` and ``_digest.json`` to ``path``.

    Returns the SHA-256 of ``_digest.json`` (what a manifest records to pin the folder).
    """
    path = hfs.normalize(path)
    fs = hfs.filesystem(path, spark)
    if fs.exists(path) and not overwrite:
        raise ModelError(f"model folder {path} exists: use write().overwrite().save(path)")
    if METADATA in texts or DIGEST in texts:
        raise ModelError(f"{METADATA} and {DIGEST} are reserved file names")
    meta = dict(meta, format_version=FORMAT_VERSION,
                saved_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    payload = {name: text.encode("utf-8") for name, text in texts.items()}
    payload[METADATA] = json.dumps(meta, indent=2, sort_keys=True, default=str).encode("utf-8")
    digest = json.dumps({"format_version": FORMAT_VERSION, "algorithm": "sha256",
                         "files": {n: sha256_bytes(b) for n, b in sorted(payload.items())}},
                        indent=2, sort_keys=True).encode("utf-8")
    fs.mkdirs(hfs.parent(path))
    tmp = hfs.temp_sibling(path)
    try:
        fs.mkdirs(tmp)
        for name, data in sorted(payload.items()):
            fs.write_bytes(hfs.join(tmp, name), data)
        fs.write_bytes(hfs.join(tmp, DIGEST), digest)
        fs.replace_dir(tmp, path)
    except BaseException:
        try:
            fs.delete(tmp)
        except Exception:  # noqa: BLE001 - cleaning up must not mask the real error
            pass
        raise
    return sha256_bytes(digest)


def digest_sha256(path: str, spark=None) -> str:
    """SHA-256 of a saved folder's ``_digest.json`` (what the run's manifest records)."""
    path = hfs.normalize(path)
    fs = hfs.filesystem(path, spark)
    name = hfs.join(path, DIGEST)
    if not fs.exists(name):
        raise ModelError(f"model folder {path}: {DIGEST} is missing")
    return sha256_bytes(fs.read_bytes(name))


def _parse_json(path: str, name: str, data: bytes) -> dict:
    try:
        out = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise ModelError(f"model folder {path}: {name} is not valid JSON: {exc}") from None
    if not isinstance(out, dict):
        raise ModelError(f"model folder {path}: {name} is not a JSON object")
    return out


def read_folder(path: str, expected_digest: Optional[str] = None, spark=None) -> Tuple[dict, Dict[str, str]]:
    """``(metadata, {file name: text})`` of a saved folder, every file verified first.

    ``expected_digest`` (from the run's manifest) must match the SHA-256 of ``_digest.json``.
    """
    path = hfs.normalize(path)
    fs = hfs.filesystem(path, spark)
    if not fs.is_dir(path):
        raise ModelError(f"model folder {path} does not exist")
    present = set(fs.list(path))
    if DIGEST not in present:
        if expected_digest:
            raise ModelError(f"model folder {path}: {DIGEST} is missing (the run's manifest pins one)")
        return _read_v1(path, fs, present)
    digest_bytes = fs.read_bytes(hfs.join(path, DIGEST))
    if expected_digest and sha256_bytes(digest_bytes) != expected_digest:
        raise ModelError(f"model folder {path}: {DIGEST} fails the SHA-256 recorded in the run's manifest "
                         "(modified or replaced)")
    digest = _parse_json(path, DIGEST, digest_bytes)
    if digest.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model folder {path}: format_version {digest.get('format_version')!r} is not supported "
                         f"(this version reads {list(READABLE_VERSIONS)})")
    listed = dict(digest.get("files") or {})
    if METADATA not in listed:
        raise ModelError(f"model folder {path}: {DIGEST} does not cover {METADATA}")
    extra = sorted(present - set(listed) - {DIGEST})
    if extra:
        raise ModelError(f"model folder {path}: unexpected file {extra[0]} (not in {DIGEST})")
    blobs: Dict[str, bytes] = {}
    for name, want in sorted(listed.items()):
        if name not in present:
            raise ModelError(f"model folder {path}: file {name} is missing")
        try:
            data = fs.read_bytes(hfs.join(path, name))
        except Exception as exc:  # noqa: BLE001 - an unreadable file is a broken model
            raise ModelError(f"model folder {path}: file {name} cannot be read ({type(exc).__name__})") from None
        if sha256_bytes(data) != want:
            raise ModelError(f"model folder {path}: file {name} fails its SHA-256 check (modified or corrupted)")
        blobs[name] = data
    meta = _parse_json(path, METADATA, blobs.pop(METADATA))
    if meta.get("format_version") != digest.get("format_version"):
        raise ModelError(f"model folder {path}: {METADATA} format_version {meta.get('format_version')!r} "
                         f"differs from {DIGEST}'s {digest.get('format_version')!r}")
    return meta, {name: data.decode("utf-8") for name, data in blobs.items()}


def _read_v1(path: str, fs, present) -> Tuple[dict, Dict[str, str]]:
    """Format 1: ``metadata.json`` lists booster checksums; metadata itself is not covered."""
    if METADATA not in present:
        raise ModelError(f"model folder {path}: {METADATA} is missing")
    meta = _parse_json(path, METADATA, fs.read_bytes(hfs.join(path, METADATA)))
    version = meta.get("format_version")
    if version != 1:
        raise ModelError(f"model folder {path}: format_version {version!r} without {DIGEST} is not supported "
                         f"(this version reads {list(READABLE_VERSIONS)})")
    files = meta.get("files") or {}
    texts: Dict[str, str] = {}
    for name in (meta.get("boosters") or {}).values():
        if name not in files:
            raise ModelError(f"model folder {path}: {name} has no checksum in {METADATA}")
        if name not in present:
            raise ModelError(f"model folder {path}: booster file {name} is missing")
        data = fs.read_bytes(hfs.join(path, name))
        if sha256_bytes(data) != files[name]:
            raise ModelError(f"model folder {path}: booster file {name} fails its SHA-256 check "
                             "(modified or corrupted)")
        texts[name] = data.decode("utf-8")
    log.warning("model folder %s has format_version 1: its %s is not covered by a checksum; "
                "re-save it to get format_version %d", path, METADATA, FORMAT_VERSION)
    return meta, texts


class FolderWriter(MLWriter):
    """``instance.write()``: ``overwrite()`` replaces an existing folder only once the new one is
    complete (pyspark's default deletes it first), so a failed save never loses the old model."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        self.saveImpl(path)

    def saveImpl(self, path: str) -> None:
        self.instance._save_folder(path, overwrite=self.shouldOverwrite)


class FolderReader(MLReader):
    """``cls.read()``: verifies the folder, then builds the instance with ``cls._from_folder``."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        meta, texts = read_folder(path)
        return self.cls._from_folder(hfs.normalize(path), meta, texts)


__all__ = ["FolderWriter", "FolderReader", "write_folder", "read_folder", "digest_sha256", "sha256_bytes",
           "package_versions", "METADATA", "DIGEST", "FORMAT_VERSION", "READABLE_VERSIONS"]
