"""The public Hillstrom (MineThatData 2008) e-mail experiment as an experiment log.

The file has no customer id: we derive ``customer_id`` = ``"h" + 1-based row number`` (``h00001``) from
the row's position in the file, computed with per-partition offsets (one small count per partition, no
collect of rows), so the id of a row does not depend on how Spark splits the file.
"""

from __future__ import annotations

import os

from ..errors import DataError
from ..io.sources import read_input

SCHEMA_DDL = (
    "recency INT, history_segment STRING, history DOUBLE, mens INT, womens INT, zip_code STRING, "
    "newbie INT, channel STRING, segment STRING, visit INT, conversion INT, spend DOUBLE"
)
COLUMNS = tuple(part.strip().split(" ")[0] for part in SCHEMA_DDL.split(","))
CONTROL_ARM = "No E-Mail"
TREATMENT_ARMS = ("Mens E-Mail", "Womens E-Mail")


def with_row_number(df, column: str = "_row"):
    """Add the 1-based position of each row in the DataFrame's current order, as a long.

    ``zipWithIndex`` without leaving the JVM: ``monotonically_increasing_id`` is (partition << 33) +
    position, and a small per-partition count turns it into a global position.
    """
    from pyspark.sql import functions as F

    tagged = df.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id())
    counts = sorted(
        (r["_pid"], r["n"]) for r in tagged.groupBy("_pid").agg(F.count(F.lit(1)).alias("n")).collect()
    )
    offsets, running = {}, 0
    for pid, n in counts:
        offsets[pid] = running
        running += n
    if not offsets:
        return df.withColumn(column, F.lit(None).cast("long"))
    offset_expr = F.create_map(*[x for pid, off in offsets.items() for x in (F.lit(pid), F.lit(off))])
    position = offset_expr[F.col("_pid")] + (F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)) + 1
    return tagged.withColumn(column, position.cast("long")).drop("_pid", "_mid")


def load_hillstrom(spark, path: str):
    """Read the Hillstrom CSV: typed columns, ``customer_id`` from the row number, ``segment`` → ``arm``."""
    from pyspark.sql import functions as F

    if not path or not os.path.exists(path):
        raise DataError(f"Hillstrom file not found: {path!r}")
    # Text read + checked casts: a bad value ("abc" in recency) is a DataError naming the column,
    # not a FAILFAST parse error surfacing from the middle of the write.
    raw = read_input(spark, path, "Hillstrom file", fmt="csv", schema_ddl=SCHEMA_DDL).select(*COLUMNS)
    numbered = with_row_number(raw)
    ids = F.format_string("h%05d", F.col("_row"))
    return numbered.select(
        ids.alias("customer_id"), F.col("segment").alias("arm"), *[F.col(c) for c in COLUMNS if c != "segment"]
    )
