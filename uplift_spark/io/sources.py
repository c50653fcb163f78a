"""One reader for every input a user names (``data.path``, ``--population``, ``--batch``,
``--outcomes``): a Delta folder, Parquet, CSV or a metastore table, with the same errors everywhere.

Engine exceptions never reach the user: a missing path, an unreadable file or a value that is not of
its column's type becomes a one-line :class:`DataError` naming the input and the column. Text
columns that must be numeric are cast with ``try_cast`` (null on a bad value, also under ANSI mode)
and checked in one aggregation pass, instead of a FAILFAST read whose error surfaces mid-write as a
Py4J traceback.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional

from ..errors import ConfigError, DataError
from ..schemas import require_columns

FORMATS = ("auto", "delta", "parquet", "csv", "table")
_REMOTE = ("dbfs:", "s3:", "s3a:", "abfss:", "gs:", "wasbs:", "file:")
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal", "byte", "short", "long",
            "integer")
CORRUPT = "_corrupt_record"


def resolve_path(path: Optional[str], config_file: Optional[str] = None, what: str = "data.path") -> str:
    """An existing path: as given (absolute or from the cwd), else next to the config file."""
    if not path:
        raise ConfigError(f"{what}: required for this source")
    if path.startswith(_REMOTE):
        return path
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    tried = [os.path.abspath(expanded)]
    if config_file and not os.path.isabs(expanded):
        beside = os.path.abspath(os.path.join(os.path.dirname(config_file), expanded))
        if os.path.exists(beside):
            return beside
        tried.append(beside)
    raise DataError(f"{what}: file or folder not found: {path!r} (tried {', '.join(tried)})")


def looks_like_path(location: str) -> bool:
    """A table name is ``[catalog.]db.table``; anything with a separator, a scheme or on disk is a path."""
    return (os.path.exists(os.path.expanduser(location)) or "/" in location or os.sep in location
            or location.startswith(_REMOTE) or location.lower().endswith((".csv", ".parquet", ".pq")))


def detect_format(path: str) -> str:
    """Delta if the folder has a ``_delta_log``; CSV for ``.csv`` files or folders of them; else Parquet."""
    if os.path.isdir(os.path.join(path, "_delta_log")):
        return "delta"
    if path.lower().endswith(".csv"):
        return "csv"
    if os.path.isdir(path):
        names = [n for n in os.listdir(path) if not n.startswith((".", "_"))]
        if names and all(n.lower().endswith(".csv") for n in names):
            return "csv"
    return "parquet"


def _parse_ddl(ddl: str) -> dict:
    """``"a INT, b STRING"`` → ``{"a": "int", "b": "string"}`` (flat schemas of simple types only)."""
    out = {}
    for part in ddl.split(","):
        name, _, kind = part.strip().partition(" ")
        out[name.strip("`")] = kind.strip().lower()
    return out


def _engine_errors() -> tuple:
    """Exceptions that come from Spark/the JVM (wrapped into DataError), not from our own code."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (Py4JError, PySparkException)


def _first_line(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    text = str(java) if java is not None else (getattr(exc, "desc", None) or str(exc))
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]


def read_input(spark, location: Optional[str], what: str, fmt: str = "auto", config_file: Optional[str] = None,
               schema_ddl: Optional[str] = None, numeric: Iterable[str] = ()):
    """Read ``location`` as a DataFrame, failing with a DataError that names ``what`` and the location.

    ``fmt``: one of :data:`FORMATS` (``auto`` detects path formats, and takes a non-path as a table
    name). ``schema_ddl`` (CSV only) gives the column types: the file is read as text and cast
    with :func:`cast_checked`. ``numeric`` lists columns that must be numeric: text columns among
    them (a CSV with a bad value infers text) are cast and checked, any other type is refused.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"{what}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not location:
        raise ConfigError(f"{what}: a path or table name is required")
    if fmt == "table" or (fmt == "auto" and not looks_like_path(location)):
        return _checked_numeric(_read_table(spark, location, what), numeric, f"{what} {location!r}")
    path = resolve_path(location, config_file, what)
    fmt = detect_format(path) if fmt == "auto" and not path.startswith(_REMOTE) else fmt
    if fmt == "auto":  # remote path: Delta is the lakehouse default
        fmt = "delta"
    where = f"{what} {path!r}"
    if fmt == "delta" and not path.startswith(_REMOTE) and not os.path.isdir(os.path.join(path, "_delta_log")):
        raise DataError(f"{what}: {path} is not a Delta table (no _delta_log folder)")
    try:
        if fmt == "delta":
            df = spark.read.format("delta").load(path)
        elif fmt == "parquet":
            df = spark.read.parquet(path)
        elif schema_ddl:
            return _read_typed_csv(spark, path, schema_ddl, where)
        else:
            df = spark.read.option("header", "true").option("inferSchema", "true").csv(path)
    except _engine_errors() as exc:  # AnalysisException, Py4JJavaError: unreadable file, bad footer, …
        raise DataError(f"{where}: cannot read: {_first_line(exc)}") from None
    return _checked_numeric(df, numeric, where)


def _read_table(spark, name: str, what: str):
    try:
        exists = spark.catalog.tableExists(name)
    except _engine_errors() as exc:  # malformed name
        raise DataError(f"{what}: {name!r} is not a valid table name: {_first_line(exc)}") from None
    if not exists:
        raise DataError(f"{what}: {name!r} is neither an existing path nor a table in the metastore")
    return spark.table(name)


def _read_typed_csv(spark, path: str, schema_ddl: str, where: str):
    """Read the file's columns as text in header order (PERMISSIVE, rows with the wrong field count
    flagged in a corrupt-record column), check the typed columns are there, then cast them."""
    from pyspark.sql.types import StringType, StructField, StructType

    typed = _parse_ddl(schema_ddl)
    try:
        header = spark.read.option("header", "true").csv(path).columns
    except _engine_errors() as exc:
        raise DataError(f"{where}: cannot read: {_first_line(exc)}") from None
    require_columns(header, typed, where)
    text = StructType([StructField(c, StringType()) for c in header] + [StructField(CORRUPT, StringType())])
    raw = (spark.read.option("header", "true").option("mode", "PERMISSIVE")
           .option("columnNameOfCorruptRecord", CORRUPT).schema(text).csv(path))
    return cast_checked(raw, typed, where)


def cast_checked(df, types: Mapping[str, str], where: str):
    """Cast columns to ``types``; a non-empty value that does not parse is a DataError naming the column.

    One aggregation pass counts bad values per column (and malformed rows when the frame carries a
    corrupt-record column); the message shows one offending value, never a customer id.
    """
    from pyspark.sql import functions as F

    casts = {c: F.expr(f"try_cast(`{c}` AS {t})") for c, t in types.items()}
    checks = []
    for c in types:
        raw = F.col(f"`{c}`")
        bad = raw.isNotNull() & (F.trim(raw.cast("string")) != "") & casts[c].isNull()
        checks += [F.sum(F.when(bad, 1).otherwise(0)).alias(f"n{len(checks) // 2}"),
                   F.first(F.when(bad, raw.cast("string")), ignorenulls=True).alias(f"v{len(checks) // 2}")]
    has_corrupt = CORRUPT in df.columns
    if has_corrupt:
        checks.append(F.sum(F.when(F.col(CORRUPT).isNotNull(), 1).otherwise(0)).alias("corrupt"))
    if checks:
        try:
            row = df.agg(*checks).first()
        except _engine_errors() as exc:
            raise DataError(f"{where}: cannot read: {_first_line(exc)}") from None
        if has_corrupt and row["corrupt"]:
            raise DataError(f"{where}: {row['corrupt']} malformed row(s) (wrong number of fields)")
        for i, (c, t) in enumerate(types.items()):
            if row[f"n{i}"]:
                value = str(row[f"v{i}"])[:40]
                raise DataError(f"{where}: column {c!r} has {row[f'n{i}']} value(s) that are not {t} "
                                f"(e.g. {value!r})")
    return df.select(*[casts[c].alias(c) if c in types else F.col(f"`{c}`") for c in df.columns if c != CORRUPT])


def _checked_numeric(df, numeric: Iterable[str], where: str):
    """Text columns that must be numeric are cast (checked); other non-numeric types are refused."""
    dtypes = dict(df.dtypes)
    to_cast = {}
    for c in numeric:
        t = dtypes.get(c)
        if t is None or t.startswith(_NUMERIC) or t == "boolean":
            continue  # missing columns are the caller's contract check
        if t == "string":
            to_cast[c] = "double"
        else:
            raise DataError(f"{where}: column {c!r} has type {t}, expected a number")
    return cast_checked(df, to_cast, where) if to_cast else df
