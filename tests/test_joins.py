"""Customer-level joins never become broadcast joins, however small the planner thinks a table is."""


def _plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


def test_join_customers_is_sort_merge_even_for_tiny_delta_tables(spark, tmp_path):
    from uplift_spark.joins import join_customers

    log = spark.range(2000).selectExpr("cast(id as string) as customer_id", "id % 7 as x")
    splits = spark.range(2000).selectExpr("cast(id as string) as customer_id",
                                          "if(id % 5 = 0, 'test', 'train') as split")
    log.write.format("delta").save(str(tmp_path / "log"))
    splits.write.format("delta").save(str(tmp_path / "splits"))
    left = spark.read.format("delta").load(str(tmp_path / "log"))
    right = spark.read.format("delta").load(str(tmp_path / "splits"))

    # control: with the same tables Spark's own choice is a broadcast (the size estimate is a few KB)
    assert "BroadcastHashJoin" in _plan(left.join(right, "customer_id", "left"))

    joined = join_customers(left, right, "customer_id", "left")
    plan = _plan(joined)
    assert "SortMergeJoin" in plan and "Broadcast" not in plan
    assert joined.count() == 2000 and joined.where("split = 'test'").count() == 400

    keyed = right.selectExpr("customer_id as cid", "split")  # a join condition instead of a column name
    cond = join_customers(left, keyed, left["customer_id"] == keyed["cid"], "inner")
    assert "Broadcast" not in _plan(cond) and cond.count() == 2000
