"""Joins of two customer-level tables.

Spark picks a broadcast join when a side's *estimated* size is under
``spark.sql.autoBroadcastJoinThreshold`` (10 MB). For Delta tables the estimate is the compressed Parquet
size: a 1M-customer ``splits`` table is ~5 MB on disk but ~100 MB as a hash relation, which is built on
the driver and copied to every executor. Customer-level tables grow with customers, so they are always
joined with a sort-merge join (the ``merge`` hint): no driver memory, and it spills.
"""

from __future__ import annotations


def join_customers(left, right, on, how: str = "inner"):
    """``left.join(right, on, how)`` that never broadcasts ``right`` (see the module docstring)."""
    return left.join(right.hint("merge"), on=on, how=how)


__all__ = ["join_customers"]
