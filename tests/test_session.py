"""The embedded engine really has Delta and SynapseML LightGBM."""

from uplift_spark.config import SparkConfig
from uplift_spark.session import engine_status, session_conf
from uplift_spark.versions import DELTA_JAR, SYNAPSEML_LIGHTGBM_JAR


def test_engine_has_delta_and_synapseml(spark):
    status = engine_status(spark)
    assert status["spark"].startswith("3.5")
    assert status["delta"] is True
    assert status["synapseml_lightgbm"] is True


def test_delta_roundtrip_and_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(5).write.format("delta").save(path)
    spark.range(10).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 10
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 5


def test_tiny_synapseml_lightgbm_fit(spark):
    from pyspark.ml.feature import VectorAssembler
    from synapse.ml.lightgbm import LightGBMClassifier

    df = spark.range(400).selectExpr("cast(id % 2 as double) as label", "cast(id % 2 as double) * 2 + rand(3) as x")
    data = VectorAssembler(inputCols=["x"], outputCol="features").transform(df)
    model = LightGBMClassifier(numIterations=5, verbosity=-1, minDataInLeaf=5).fit(data)
    preds = model.transform(data).selectExpr("avg(abs(prediction - label)) as err").first()["err"]
    assert preds < 0.05


def test_jar_modes():
    packages = session_conf(SparkConfig(jars="packages"))
    assert packages["spark.jars.packages"] == f"{DELTA_JAR},{SYNAPSEML_LIGHTGBM_JAR}"
    provided = session_conf(SparkConfig(jars="provided"))
    assert "spark.jars.packages" not in provided and "spark.jars" not in provided
    assert provided["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
