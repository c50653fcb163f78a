"""Delta table access (names, locations, idempotent per-run writes) and the reader for user-named inputs."""

from .tables import TableStore, TABLES, check_run_id

__all__ = ["TableStore", "TABLES", "check_run_id"]
