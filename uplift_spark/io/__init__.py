"""Delta table access: names, locations, idempotent per-run writes."""

from .tables import TableStore, TABLES, check_run_id

__all__ = ["TableStore", "TABLES", "check_run_id"]
