"""Small files on any Hadoop path (local, ``file://``, ``dbfs:/``, ``s3a://``, ``abfss://``).

Models, manifests and profiles are a handful of small files written by the driver. Python's ``open``
only reaches the driver's local disk, so on a cluster they go through the Hadoop FileSystem API of the
session's JVM (the filesystem and credentials Spark itself uses for the same path). Without an active
Spark session, plain and ``file://`` paths fall back to the local disk, so driver-side tools and tests
work without a JVM.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import uuid
from typing import List

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def has_scheme(path: str) -> bool:
    return bool(_SCHEME.match(path)) and not re.match(r"^[A-Za-z]:[\\/]", path)


def normalize(path: str) -> str:
    """Plain paths become absolute local paths (as before); URIs are kept as given, minus a trailing /."""
    if has_scheme(path):
        return path.rstrip("/") if not path.endswith(":/") else path
    return os.path.abspath(os.path.expanduser(path))


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for local paths and URIs alike (a URI is joined with '/')."""
    if has_scheme(root):
        return posixpath.join(root.rstrip("/"), *parts)
    return os.path.join(root, *parts)


def parent(path: str) -> str:
    path = normalize(path)
    return posixpath.dirname(path) if has_scheme(path) else os.path.dirname(path)


def basename(path: str) -> str:
    return posixpath.basename(normalize(path))


class FileSystem:
    """The few operations models and manifests need; :func:`filesystem` picks the implementation."""

    def exists(self, path: str) -> bool: raise NotImplementedError  # noqa: E704
    def is_dir(self, path: str) -> bool: raise NotImplementedError  # noqa: E704
    def mkdirs(self, path: str) -> None: raise NotImplementedError  # noqa: E704
    def list(self, path: str) -> List[str]: raise NotImplementedError  # noqa: E704
    def read_bytes(self, path: str) -> bytes: raise NotImplementedError  # noqa: E704
    def write_bytes(self, path: str, data: bytes) -> None: raise NotImplementedError  # noqa: E704
    def delete(self, path: str) -> None: raise NotImplementedError  # noqa: E704
    def rename(self, src: str, dst: str) -> None: raise NotImplementedError  # noqa: E704

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def replace_dir(self, tmp: str, dst: str) -> None:
        """Move the finished folder ``tmp`` to ``dst``, replacing an existing ``dst`` (the old folder is
        renamed aside first and deleted last, so a failure never leaves ``dst`` half written)."""
        old = None
        if self.exists(dst):
            old = join(parent(dst), f".old_{basename(dst)}_{uuid.uuid4().hex[:8]}")
            self.rename(dst, old)
        try:
            self.rename(tmp, dst)
        except BaseException:
            if old is not None:
                self.rename(old, dst)
            raise
        if old is not None:
            self.delete(old)

    def replace_file(self, tmp: str, dst: str) -> None:
        if self.exists(dst):
            self.delete(dst)
        self.rename(tmp, dst)


class LocalFileSystem(FileSystem):
    def _p(self, path: str) -> str:
        return path[len("file://"):] if path.startswith("file://") else path[5:] if path.startswith("file:") else path

    def exists(self, path):
        return os.path.exists(self._p(path))

    def is_dir(self, path):
        return os.path.isdir(self._p(path))

    def mkdirs(self, path):
        os.makedirs(self._p(path), exist_ok=True)

    def list(self, path):
        return sorted(os.listdir(self._p(path)))

    def read_bytes(self, path):
        with open(self._p(path), "rb") as fh:
            return fh.read()

    def write_bytes(self, path, data):
        with open(self._p(path), "wb") as fh:
            fh.write(data)

    def delete(self, path):
        p = self._p(path)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)

    def rename(self, src, dst):
        os.replace(self._p(src), self._p(dst))


class HadoopFileSystem(FileSystem):
    """Through ``org.apache.hadoop.fs.FileSystem`` of the session's JVM (py4j)."""

    def __init__(self, spark):
        self.spark = spark
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str):
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        fs = p.getFileSystem(self._conf)
        if fs.getScheme() == "file":
            # the raw local filesystem: no ``.<name>.crc`` sidecar files (our SHA-256 digests cover that)
            try:
                fs = fs.getRaw()
            except Exception:  # noqa: BLE001 - not a checksummed local filesystem
                pass
        return fs, p

    def exists(self, path):
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_dir(self, path):
        fs, p = self._fs(path)
        return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())

    def mkdirs(self, path):
        fs, p = self._fs(path)
        fs.mkdirs(p)

    def list(self, path):
        fs, p = self._fs(path)
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(p))

    def read_bytes(self, path):
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def write_bytes(self, path, data):
        fs, p = self._fs(path)
        stream = fs.create(p, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def delete(self, path):
        fs, p = self._fs(path)
        if fs.exists(p):
            fs.delete(p, True)

    def rename(self, src, dst):
        fs, s = self._fs(src)
        _, d = self._fs(dst)
        if not fs.rename(s, d):
            raise OSError(f"could not rename {src} to {dst}")


def filesystem(path: str, spark=None) -> FileSystem:
    """Hadoop FileSystem of ``spark`` (else of the active session) for ``path``; local disk for plain and
    ``file:`` paths when there is no session."""
    if spark is None:
        try:
            from pyspark.sql import SparkSession

            spark = SparkSession.getActiveSession()
        except ImportError:
            spark = None
    if spark is not None:
        return HadoopFileSystem(spark)
    if has_scheme(path) and not path.startswith("file:"):
        raise OSError(f"{path}: a {path.split(':', 1)[0]}: path needs an active Spark session (Hadoop FileSystem)")
    return LocalFileSystem()


def temp_sibling(path: str, prefix: str = ".tmp_") -> str:
    """A fresh name next to ``path`` (same folder, so the final rename stays on one filesystem)."""
    return join(parent(path), f"{prefix}{basename(path)}_{uuid.uuid4().hex[:8]}")


__all__ = ["FileSystem", "HadoopFileSystem", "LocalFileSystem", "filesystem", "has_scheme", "join", "normalize",
           "parent", "basename", "temp_sibling"]
