"""Table catalog and idempotent Delta writes.

Every output table carries ``run_id`` and every write replaces exactly that run's rows in one Delta
commit (``replaceWhere``), so a rerun never duplicates rows and a failed run leaves the previous
version readable. Tables live as Delta folders under ``<output_root>/tables`` or, in metastore mode,
as ``<database>.<name>``.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..config import UpliftConfig
from ..errors import ConcurrentWriteError, DataError
from ..logs import get_logger

log = get_logger("io")

TABLES = (
    "experiment_log", "validation_report", "splits", "split_summary", "predictions",
    "feature_importance", "uplift_importance", "uplift_curves", "uplift_metrics", "uplift_by_decile", "scores", "decisions",
    "decision_summary", "policy_evaluation", "policy_curves", "drift_features", "drift_scores", "drift_policy", "realized_uplift",
    "monitoring_alerts", "contact_history", "decisions_current", "publications",
)

# Tables a publication MERGEs into (facts shared with the CRM across runs): a later failed gate of a
# run does not remove its rows, since the CRM may already have acted on them.
PUBLISHED = ("contact_history", "decisions_current", "publications")

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_run_id(run_id: str, what: str = "run id") -> str:
    """Run and batch ids go into Delta predicates and folder names: keep them to a safe alphabet."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise DataError(f"invalid {what} {run_id!r}: use letters, digits, '_', '.', '-' (max 128)")
    return run_id


# Delta's optimistic-concurrency failures: another writer committed first. Retrying re-reads the new
# snapshot, so the retried write sees the table as existing and replaces only this run's rows.
CONFLICTS = (
    "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException", "ConcurrentWriteException", "MetadataChangedException",
    "ProtocolChangedException", "DeltaConcurrentModificationException", "DELTA_CONCURRENT_",
    "DELTA_PROTOCOL_CHANGED", "DELTA_METADATA_CHANGED",
)
COMMIT_ATTEMPTS = 6
BACKOFF_SECONDS = 0.5


def is_commit_conflict(exc: BaseException) -> bool:
    """True for Delta's concurrent-modification errors, whether PySpark converted them or not."""
    seen = 0
    while exc is not None and seen < 5:
        if any(name in type(exc).__name__ for name in CONFLICTS):
            return True
        java = getattr(exc, "java_exception", None)
        text = str(java) if java is not None else str(exc).split("\n\tat ", 1)[0]
        if any(name in text for name in CONFLICTS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def with_commit_retry(action: Callable[[], object], name: str, run_id: str,
                      attempts: int = COMMIT_ATTEMPTS, backoff: float = BACKOFF_SECONDS,
                      sleep: Callable[[float], None] = time.sleep):
    """Run ``action`` (one Delta commit), retrying Delta commit conflicts with jittered backoff.

    The jitter is seeded by table and run, so concurrent runs spread out while one run's schedule
    stays reproducible; a conflict that outlasts ``attempts`` becomes a ConcurrentWriteError.
    """
    rng = random.Random(f"{name}:{run_id}")
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            if attempt == attempts:
                java = getattr(exc, "java_exception", None)
                first = (str(java if java is not None else exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise ConcurrentWriteError(
                    f"table {name!r}: concurrent writers kept conflicting for run {run_id!r} after "
                    f"{attempts} attempts ({first}); rerun this run id") from None
            delay = backoff * (2 ** (attempt - 1)) * (0.5 + rng.random())
            log.info("table %s: commit conflict for run %s (attempt %d/%d), retrying in %.2fs",
                     name, run_id, attempt, attempts, delay)
            sleep(delay)
    return None  # pragma: no cover - the loop returns or raises


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class TableStore:
    """Where each table lives and how to read/write it; only pipelines use this."""

    def __init__(self, spark, cfg: UpliftConfig):
        self.spark = spark
        self.cfg = cfg
        self.root = os.path.abspath(os.path.expanduser(cfg.run.output_root))

    # ---------------------------------------------------------------- locations
    @property
    def metastore(self) -> bool:
        return self.cfg.tables.mode == "metastore"

    def location(self, name: str) -> str:
        override = self.cfg.tables.names.get(name)
        if self.metastore:
            return override or f"{self.cfg.tables.database}.{name}"
        if override:
            return os.path.abspath(os.path.expanduser(override))
        return os.path.join(self.root, "tables", name)

    def path_for(self, *parts: str) -> str:
        """A folder under the output root (models, reports)."""
        return os.path.join(self.root, *parts)

    def exists(self, name: str) -> bool:
        loc = self.location(name)
        if self.metastore:
            return self.spark.catalog.tableExists(loc)
        log_dir = os.path.join(loc, "_delta_log")
        # A failed first write can leave an empty _delta_log behind: a table exists once it has a commit.
        return os.path.isdir(log_dir) and any(n.endswith((".json", ".checkpoint.parquet")) for n in os.listdir(log_dir))

    # ---------------------------------------------------------------- reads
    def read(self, name: str, run_id: Optional[str] = None, **filters):
        """Read a table, optionally only one run's rows and equality filters (e.g. ``batch_id``)."""
        if not self.exists(name):
            raise DataError(f"table {name!r} not found at {self.location(name)}: run the stage that writes it first")
        reader = self.spark.read.format("delta")
        df = reader.table(self.location(name)) if self.metastore else reader.load(self.location(name))
        if run_id is not None:
            df = df.where(df["run_id"] == run_id)
        for col, value in filters.items():
            df = df.where(df[col] == value)
        return df

    def read_run(self, name: str, run_id: str):
        """One run's rows, failing clearly when the run never wrote this table."""
        df = self.read(name, run_id=run_id)
        if df.limit(1).count() == 0:
            raise DataError(f"table {name!r} has no rows for run {run_id!r}: run the stage that writes it first")
        return df

    # ---------------------------------------------------------------- writes
    def write(self, df, name: str, run_id: str, keys: Optional[Mapping[str, str]] = None,
              partition_by: Sequence[str] = ("run_id",)) -> str:
        """Replace this run's rows (and, with ``keys``, only the rows matching them) in one commit."""
        check_run_id(run_id)
        if "run_id" not in df.columns:
            raise DataError(f"writing {name!r}: DataFrame has no run_id column")
        keys = dict(keys or {})
        predicate = " AND ".join(
            [f"run_id = {_sql_literal(run_id)}"] + [f"`{k}` = {_sql_literal(v)}" for k, v in keys.items()]
        )
        loc = self.location(name)

        def commit():
            writer = self._writer(df, name, run_id, predicate, partition_by)
            if self.metastore:
                writer.saveAsTable(loc)
            else:
                writer.save(loc)

        with_commit_retry(commit, name, run_id)
        log.info("wrote %s (%s)", name, predicate.replace("`", ""))
        return loc

    def _writer(self, df, name: str, run_id: str, predicate: str, partition_by: Sequence[str]):
        """The Delta writer for this attempt: replace the run's rows, or create the table by appending.

        The first write appends rather than overwrites: if another run created the table between our
        existence check and our commit, an overwrite would silently drop that run's rows, while an
        append either conflicts (and the retry takes the replaceWhere branch) or adds only ours.
        """
        if self.exists(name):
            return (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
                    .option("mergeSchema", "true"))
        # Delta checks replaceWhere on later writes; on the first write we check rows ourselves
        # (inside the same job, no extra pass) so a stray run_id can never enter the table.
        from pyspark.sql import functions as F

        guarded = df.withColumn("run_id", F.when(F.col("run_id") == F.lit(run_id), F.col("run_id")).otherwise(
            F.raise_error(F.concat(F.lit(f"writing {name!r} for run {run_id!r}: row with run_id "),
                                   F.coalesce(F.col("run_id"), F.lit("null"))))))
        writer = guarded.select(*df.columns).write.format("delta").mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        return writer

    def delta_table(self, name: str):
        from delta.tables import DeltaTable

        loc = self.location(name)
        return DeltaTable.forName(self.spark, loc) if self.metastore else DeltaTable.forPath(self.spark, loc)

    def ensure(self, name: str, schema, partition_by: Sequence[str] = (),
               properties: Optional[Mapping[str, str]] = None) -> None:
        """Create ``name`` empty with ``schema`` (a StructType), partitions and table properties unless it
        exists (a table that MERGEs write into must exist first; properties such as Change Data Feed are
        set at creation, so the very first version already records changes)."""
        from delta.tables import DeltaTable

        if self.exists(name):
            return
        loc = self.location(name)
        builder = DeltaTable.createIfNotExists(self.spark)
        builder = builder.tableName(loc) if self.metastore else builder.location(loc)
        builder = builder.addColumns(schema)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        with_commit_retry(builder.execute, name, "create")
        log.info("created %s", name)

    def merge(self, name: str, build: Callable[[object], object], run_id: str) -> dict:
        """One Delta MERGE into ``name``: ``build(delta_table)`` returns the configured merge builder.

        Returns the commit's ``version`` and row counts (``inserted``, ``updated``, ``deleted``) from the
        table history, or ``version`` unchanged and zero counts when the MERGE committed nothing.
        """
        check_run_id(run_id)

        def commit():
            before = self.version(name)
            build(self.delta_table(name)).execute()
            return before

        before = with_commit_retry(commit, name, run_id)
        last = self.delta_table(name).history(1).select("version", "operation", "operationMetrics").collect()[0]
        if last["version"] == before or last["operation"] != "MERGE":
            return {"version": int(before), "inserted": 0, "updated": 0, "deleted": 0}
        metrics = last["operationMetrics"] or {}
        counts = {k: int(metrics.get(f"numTargetRows{k.capitalize()}", 0) or 0)
                  for k in ("inserted", "updated", "deleted")}
        log.info("merged %s for run %s: %s", name, run_id, counts)
        return dict(counts, version=int(last["version"]))

    def version(self, name: str) -> int:
        """The latest commit version of a Delta table."""
        return int(self.delta_table(name).history(1).select("version").collect()[0][0])

    def delete_run(self, names: Iterable[str], run_id: str) -> None:
        """Remove a run's rows (used when a gate fails after an earlier attempt wrote them)."""
        from delta.tables import DeltaTable

        check_run_id(run_id)
        for name in names:
            if not self.exists(name):
                continue
            loc = self.location(name)
            table = DeltaTable.forName(self.spark, loc) if self.metastore else DeltaTable.forPath(self.spark, loc)
            with_commit_retry(lambda: table.delete(f"run_id = {_sql_literal(run_id)}"), name, run_id)
