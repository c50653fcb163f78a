"""TableStore: idempotent per-run Delta writes, atomic failures, delta-rs readability, time travel."""

from __future__ import annotations


import pandas as pd
import pytest
from pyspark.sql import functions as F

from uplift_spark.config import RunConfig, TablesConfig, UpliftConfig
from uplift_spark.errors import DataError
from uplift_spark.io import TableStore, check_run_id


@pytest.fixture()
def store(spark, tmp_path):
    return TableStore(spark, UpliftConfig(run=RunConfig(output_root=str(tmp_path))))


def _frame(spark, run_id, n=20, batch=None, offset=0.0):
    df = spark.range(n).select(
        F.lit(run_id).alias("run_id"),
        F.format_string("c%03d", "id").alias("customer_id"),
        (F.col("id") * 0.5 + offset).alias("value"),
        F.expr("timestamp'2025-03-01 12:34:56.789' + make_interval(0,0,0,0,0,0, id * 3600)").alias("at"),
    )
    return df.withColumn("batch_id", F.lit(batch)) if batch is not None else df


def _pdf(df) -> pd.DataFrame:
    return df.toPandas().sort_values(list(df.columns)).reset_index(drop=True)


def _version(spark, loc) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, loc).history(1).select("version").first()[0]


def test_rewriting_a_run_replaces_it_and_other_runs_coexist(spark, store):
    store.write(_frame(spark, "r1"), "scores_test", "r1")
    store.write(_frame(spark, "r2", n=5), "scores_test", "r2")
    store.write(_frame(spark, "r1", n=12, offset=100.0), "scores_test", "r1")  # rerun of r1
    counts = {r["run_id"]: r["count"] for r in store.read("scores_test").groupBy("run_id").count().collect()}
    assert counts == {"r1": 12, "r2": 5}
    r1 = store.read("scores_test", run_id="r1")
    assert r1.select("customer_id").distinct().count() == 12
    assert r1.agg(F.min("value")).first()[0] == 100.0  # the new rows, not a mix
    assert _pdf(store.read("scores_test", run_id="r2")).equals(_pdf(_frame(spark, "r2", n=5)))
    assert store.exists("scores_test") and not store.exists("never_written")


def test_keys_replace_only_matching_rows(spark, store):
    store.write(_frame(spark, "r1", n=10, batch="b1"), "drift_test", "r1", keys={"batch_id": "b1"})
    store.write(_frame(spark, "r1", n=7, batch="b2"), "drift_test", "r1", keys={"batch_id": "b2"})
    store.write(_frame(spark, "r2", n=3, batch="b1"), "drift_test", "r2", keys={"batch_id": "b1"})
    store.write(_frame(spark, "r1", n=4, batch="b1", offset=9.0), "drift_test", "r1", keys={"batch_id": "b1"})
    got = {(r["run_id"], r["batch_id"]): r["count"]
           for r in store.read("drift_test").groupBy("run_id", "batch_id").count().collect()}
    assert got == {("r1", "b1"): 4, ("r1", "b2"): 7, ("r2", "b1"): 3}
    assert store.read("drift_test", run_id="r1", batch_id="b1").agg(F.min("value")).first()[0] == 9.0


def test_failing_write_leaves_previous_version_unchanged(spark, store):
    store.write(_frame(spark, "r1"), "atomic_test", "r1")
    loc = store.location("atomic_test")
    before, version = _pdf(store.read("atomic_test")), _version(spark, loc)

    # 1) an ANSI cast failure on one row, midway through the job
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        bad = _frame(spark, "r1", n=50).withColumn(
            "value", F.when(F.col("customer_id") == "c037", F.lit("not a number")).otherwise(
                F.col("value").cast("string")).cast("double"))
        with pytest.raises(Exception) as err:
            store.write(bad, "atomic_test", "r1")
        assert "not a number" in str(err.value) or "CAST" in str(err.value).upper()
    finally:
        spark.conf.set("spark.sql.ansi.enabled", previous)

    # 2) an exception inside a mapInPandas after some batches were produced
    def explode_late(batches):
        for i, pdf in enumerate(batches):
            if i > 0 or (pdf["customer_id"] == "c040").any():
                raise RuntimeError("boom in mapInPandas")
            yield pdf

    boom = _frame(spark, "r1", n=60).repartition(3).mapInPandas(explode_late, _frame(spark, "r1").schema)
    with pytest.raises(Exception, match="boom in mapInPandas"):
        store.write(boom, "atomic_test", "r1")

    assert _version(spark, loc) == version
    assert _pdf(store.read("atomic_test")).equals(before)


def test_delta_rs_reads_every_table_identically(spark, store, tmp_path):
    from deltalake import DeltaTable

    store.write(_frame(spark, "r1"), "rs_test", "r1")
    store.write(_frame(spark, "r2", n=7, offset=3.0), "rs_test", "r2")
    store.write(_frame(spark, "r1", n=9, batch="b1"), "rs_keys", "r1", keys={"batch_id": "b1"})
    for name in ("rs_test", "rs_keys"):
        spark_pdf = _pdf(store.read(name))
        rs = DeltaTable(store.location(name)).to_pandas()
        rs["at"] = pd.to_datetime(rs["at"], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        rs = rs[spark_pdf.columns].sort_values(list(spark_pdf.columns)).reset_index(drop=True)
        spark_pdf["at"] = spark_pdf["at"].astype("datetime64[ns]")
        pd.testing.assert_frame_equal(rs, spark_pdf, check_dtype=False)
        # the timestamp survives to the millisecond, in UTC (the session time zone)
        assert rs["at"].min() == pd.Timestamp("2025-03-01 12:34:56.789")


def test_time_travel_to_previous_version(spark, store):
    store.write(_frame(spark, "r1", n=8), "tt_test", "r1")
    loc = store.location("tt_test")
    v0 = _version(spark, loc)
    first = _pdf(store.read("tt_test"))
    store.write(_frame(spark, "r1", n=3, offset=50.0), "tt_test", "r1")
    assert _version(spark, loc) == v0 + 1  # one commit per write
    old = spark.read.format("delta").option("versionAsOf", v0).load(loc)
    assert _pdf(old).equals(first)
    assert store.read("tt_test").count() == 3


def test_schema_evolves_by_adding_columns(spark, store):
    store.write(_frame(spark, "r1", n=4), "evolve_test", "r1")
    store.write(_frame(spark, "r2", n=2).withColumn("extra", F.lit("x")), "evolve_test", "r2")
    rows = store.read("evolve_test").groupBy("run_id").agg(F.count("extra").alias("n")).collect()
    assert {r["run_id"]: r["n"] for r in rows} == {"r1": 0, "r2": 2}


@pytest.mark.parametrize("bad", ["", "../etc", "a b", "x' OR '1'='1", "-leading", "a/b", "é", "x" * 129, None, 42])
def test_invalid_run_ids_are_rejected(spark, store, bad):
    with pytest.raises(DataError, match="invalid run id"):
        check_run_id(bad)
    with pytest.raises(DataError, match="invalid run id"):
        store.write(_frame(spark, "ok"), "never_test", bad)
    assert not store.exists("never_test")


def test_valid_ids_and_clear_read_errors(spark, store):
    for ok in ("r1", "20250101T000000-abc123", "a.b-c_d", "x" * 128):
        assert check_run_id(ok) == ok
    with pytest.raises(DataError, match="table 'missing' not found"):
        store.read("missing")
    with pytest.raises(DataError, match="has no run_id column"):
        store.write(spark.range(3), "no_run_test", "r1")
    store.write(_frame(spark, "r1", n=2), "read_test", "r1")
    with pytest.raises(DataError, match="table 'read_test' has no rows for run 'r9'"):
        store.read_run("read_test", "r9")
    assert store.read_run("read_test", "r1").count() == 2


def test_locations_follow_config(spark, tmp_path):
    cfg = UpliftConfig(run=RunConfig(output_root=str(tmp_path)),
                       tables=TablesConfig(names={"scores": str(tmp_path / "elsewhere" / "s")}))
    store = TableStore(spark, cfg)
    assert store.location("splits") == str(tmp_path / "tables" / "splits")
    assert store.location("scores") == str(tmp_path / "elsewhere" / "s")
    meta = TableStore(spark, UpliftConfig(tables=TablesConfig(mode="metastore", database="main.uplift")))
    assert meta.location("splits") == "main.uplift.splits"


def test_first_write_refuses_rows_of_another_run(spark, store):
    """Creating a table checks run_id like Delta's replaceWhere does later: nothing is written."""
    df = spark.createDataFrame([("r1", 1), ("r2", 2)], "run_id string, v int")
    with pytest.raises(Exception, match="row with run_id r2"):
        store.write(df, "guarded", "r1")
    assert not store.exists("guarded")


def test_require_columns_names_the_first_missing_column_and_the_stage():
    from uplift_spark.errors import PolicyError
    from uplift_spark.schemas import require_columns

    require_columns(["a", "b"], ["b", None, "a"], "stage")  # present and unconfigured (None) pass
    with pytest.raises(DataError, match=r"^scored batch: missing column 'c' \(have \['a', 'b'\]\)$"):
        require_columns(["b", "a"], ["a", "c", "d"], "scored batch")
    with pytest.raises(PolicyError, match="policy: missing column 'x'"):
        require_columns(type("Frame", (), {"columns": ["y"]})(), ["x"], "policy", PolicyError)
