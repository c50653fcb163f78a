"""What every pipeline stage receives: the session, the typed config, the table store and the run id."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Optional

from ..config import UpliftConfig
from ..errors import DataError
from ..io import TableStore, check_run_id
from ..logs import get_logger

log = get_logger("pipeline")

LATEST = "LATEST"  # the latest run that passed its validation gate
INGESTED = "INGESTED"  # the latest run ingested (validated or not)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclasses.dataclass
class RunContext:
    spark: object
    cfg: UpliftConfig
    run_id: str
    store: TableStore = None

    def __post_init__(self):
        check_run_id(self.run_id)
        if self.store is None:
            self.store = TableStore(self.spark, self.cfg)

    @property
    def model_dir(self) -> str:
        """``<run.model_root>/<run_id>`` (any Hadoop path), else ``<output_root>/models/<run_id>``."""
        if self.cfg.run.model_root:
            from ..io import fs as hfs

            return hfs.join(hfs.normalize(self.cfg.run.model_root), self.run_id)
        return self.store.path_for("models", self.run_id)

    @property
    def report_dir(self) -> str:
        return self.store.path_for("reports", self.run_id)

    def remember(self, pointer: str = LATEST) -> None:
        """Record this run under ``runs/<pointer>``, so later stages run without repeating ``--run-id``.

        ``validate`` moves ``LATEST`` only when the gate passes; ``ingest`` moves ``INGESTED``, which
        only ``validate`` (and ``--skip-validation``) fall back to.
        """
        folder = self.store.path_for("runs")
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{pointer}.{uuid.uuid4().hex[:8]}")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.run_id)
        os.replace(tmp, os.path.join(folder, pointer))  # atomic: a concurrent reader never sees half a name


def latest_run_id(cfg: UpliftConfig, pointer: str = LATEST) -> Optional[str]:
    path = os.path.join(os.path.abspath(os.path.expanduser(cfg.run.output_root)), "runs", pointer)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as fh:
        return fh.read().strip() or None


def resolve_run_id(cfg: UpliftConfig, run_id: Optional[str], fresh: bool, unvalidated: bool = False) -> str:
    """``--run-id`` wins; a run-starting stage gets a new id; a later stage the latest run that passed
    validation, or with ``unvalidated`` (``validate`` itself, ``--skip-validation``) the latest ingested."""
    if run_id:
        return check_run_id(run_id)
    if fresh:
        return new_run_id()
    latest = (latest_run_id(cfg, INGESTED) if unvalidated else None) or latest_run_id(cfg)
    if latest is None:
        ingested = latest_run_id(cfg, INGESTED)
        if ingested:
            raise DataError(f"no validated run under {cfg.run.output_root} (run {ingested!r} was ingested but has "
                            f"not passed 'uplift-spark validate'): validate it, or pass --run-id")
        raise DataError(
            f"no run found under {cfg.run.output_root}: pass --run-id, or run 'uplift-spark ingest' first"
        )
    return latest


class Stopwatch:
    """Elapsed seconds for progress lines."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
