"""Shared helpers of the benchmark scripts: memory sampling, the benchmark config, tables and JSON.

Benchmarks are scripts, not tests: they print a table and write ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from typing import Dict, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


class MemorySampler:
    """Peak RSS of this Python driver, its JVM and the JVM's Python workers, sampled in a thread.

    In local mode the JVM is driver and executor at once, so it is reported apart from the Python
    driver: the Python driver is what a ``collect()`` of row-level data would grow. Under
    ``local-cluster[...]`` the executors are separate JVMs (``executor_jvms_mb``, all summed) and
    ``jvm_mb`` is the driver JVM alone (with the in-process master and workers). ``mark(label)``
    starts a new interval so peaks can be read per stage.
    """

    def __init__(self, interval: float = 0.2):
        import psutil

        self.interval = interval
        self.me = psutil.Process()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.label = "start"
        self.peaks: Dict[str, Dict[str, float]] = {}
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> Dict[str, float]:
        import psutil

        py = jvm = executors = workers = 0
        try:
            py = self.me.memory_info().rss
            for child in self.me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                    cmd = child.cmdline()
                    name = " ".join(cmd[:3])
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if "java" in name and any("CoarseGrainedExecutorBackend" in c for c in cmd):
                    executors += rss  # local-cluster / standalone executors: not the driver
                elif "java" in name:
                    jvm += rss
                elif "python" in name:
                    workers += rss
        except psutil.NoSuchProcess:
            pass
        mb = 1024.0 * 1024.0
        return {"driver_python_mb": py / mb, "jvm_mb": jvm / mb, "executor_jvms_mb": executors / mb,
                "python_workers_mb": workers / mb, "driver_total_mb": (py + jvm) / mb}

    def _loop(self) -> None:
        while not self._stop.is_set():
            s = self._sample()
            with self._lock:
                for label in (self.label, "__all__"):
                    peak = self.peaks.setdefault(label, {k: 0.0 for k in s})
                    for k, v in s.items():
                        peak[k] = max(peak[k], v)
            self._stop.wait(self.interval)

    def start(self) -> "MemorySampler":
        self._thread.start()
        return self

    def mark(self, label: str) -> None:
        with self._lock:
            self.label = label

    def stop(self) -> Dict[str, Dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return {k: {m: round(v, 1) for m, v in p.items()} for k, p in self.peaks.items()}

    def peak(self, label: str = "__all__") -> Dict[str, float]:
        with self._lock:
            return {k: round(v, 1) for k, v in self.peaks.get(label, {}).items()}


def machine() -> dict:
    """What the figures were measured on (so nobody compares them with a laptop silently)."""
    import lightgbm
    import numpy
    import pandas
    import psutil
    import pyspark

    info = {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "lightgbm": lightgbm.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    try:
        import sklift

        info["sklift"] = sklift.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        from importlib.metadata import version

        info["delta_spark"] = version("delta-spark")
        info["synapseml"] = version("synapseml")
    except Exception:  # noqa: BLE001
        pass
    return info


def synthetic_config(rows: int, n_numeric: int = 16, n_categorical: int = 4, partitions: int = 8, seed: int = 7):
    """~20 features, 3 treatment arms + control, the harmed segment and drift of the default generator."""
    from uplift_spark.config import SyntheticConfig

    return SyntheticConfig(n_rows=rows, n_numeric=n_numeric, n_categorical=n_categorical, partitions=partitions,
                           seed=seed, drift=True)


def lightgbm_config(iterations: int = 100, **overrides):
    """One LightGBM parameter set used by every benchmark (Spark and single-process alike)."""
    from uplift_spark.config import LightGBMConfig

    base = dict(num_iterations=iterations, learning_rate=0.1, num_leaves=31, min_data_in_leaf=100,
                early_stopping_round=15, seed=1)
    base.update(overrides)
    return LightGBMConfig(**base)


def spark_session(master: str = "local[2]", driver_memory: str = "1g", shuffle_partitions: int = 8,
                  extra: Optional[dict] = None):
    from uplift_spark.config import SparkConfig
    from uplift_spark.session import get_spark

    conf = {"spark.ui.enabled": "false"}
    conf.update(extra or {})
    return get_spark(SparkConfig(master=master, driver_memory=driver_memory, shuffle_partitions=shuffle_partitions,
                                 conf=conf))


def hash_split(df, seed: int, id_col: str = "customer_id"):
    """Customer-level 60/20/20 split from a seeded hash (what the benchmarks share, independent of
    the split stage so learner timings do not include it)."""
    from pyspark.sql import functions as F

    u = F.pmod(F.xxhash64(F.lit(seed), F.col(id_col)), F.lit(1000)) / 1000.0
    return (df.withColumn("split", F.when(u < 0.6, "train").when(u < 0.8, "valid").otherwise("test"))
            .withColumn("is_valid", F.col("split") == "valid"))


def print_table(rows: Sequence[dict], columns: Sequence[str], title: str = "") -> None:
    if title:
        print(f"\n{title}")
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns} if rows else {}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def write_result(name: str, payload: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    payload = dict(payload, machine=machine(), finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
    print(f"\nresults written to {path}")
    return path


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 2)


__all__ = ["MemorySampler", "machine", "synthetic_config", "lightgbm_config", "spark_session", "hash_split",
           "print_table", "write_result", "Timer", "RESULTS", "ROOT"]
