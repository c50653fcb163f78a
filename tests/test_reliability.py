"""Reliability holes: racing first writes, malformed source values, gates enforced stage by stage,
one source reader for every user-named input, and CLI misuse."""

from __future__ import annotations

import os
import threading

import pytest
from pyspark.sql import functions as F

from uplift_spark.config import RunConfig, UpliftConfig
from uplift_spark.io import TableStore


def _frame(spark, run_id, n):
    return spark.range(n).select(F.lit(run_id).alias("run_id"), F.format_string("c%03d", "id").alias("customer_id"),
                                 (F.col("id") * 0.5).alias("value"))


def test_concurrent_first_writes_into_a_fresh_output_keep_every_run(spark, tmp_path):
    """Three runs start writing the same table of a fresh output at once: all rows of all runs land."""
    store = TableStore(spark, UpliftConfig(run=RunConfig(output_root=str(tmp_path / "fresh"))))
    runs = {"race-a": 11, "race-b": 7, "race-c": 5}
    frames = {run: _frame(spark, run, n) for run, n in runs.items()}
    gate = threading.Barrier(len(runs))
    errors = []

    def writer(run):
        try:
            gate.wait()
            store.write(frames[run], "scores_race", run)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(f"{run}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    threads = [threading.Thread(target=writer, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    got = {r["run_id"]: r["count"] for r in store.read("scores_race").groupBy("run_id").count().collect()}
    assert got == runs


class ProtocolChangedException(Exception):
    """Stands in for delta.exceptions.ProtocolChangedException (matched by name, as PySpark converts it)."""


def test_commit_retry_is_bounded_and_names_the_table():
    from uplift_spark.errors import ConcurrentWriteError
    from uplift_spark.io.tables import with_commit_retry

    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ProtocolChangedException("The protocol version of the Delta table has been changed")
        return "ok"

    assert with_commit_retry(flaky, "scores", "r1", attempts=4, backoff=0.1, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.15 and 0.1 <= sleeps[1] <= 0.3  # exponential with +-50% jitter

    def always():
        raise ProtocolChangedException("multiple writers are writing to an empty directory")

    with pytest.raises(ConcurrentWriteError, match="table 'scores'.*after 3 attempts") as err:
        with_commit_retry(always, "scores", "r1", attempts=3, backoff=0.0, sleep=sleeps.append)
    assert err.value.exit_code == 10

    def broken():
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):  # anything else is not retried
        with_commit_retry(broken, "scores", "r1", attempts=3, backoff=0.0, sleep=sleeps.append)


HILLSTROM_HEADER = ("recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,"
                    "conversion,spend")


def _hillstrom_rows(n=12):
    arms = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
    return [f"{1 + i % 12},2) $100 - $200,{100 + i}.5,1,0,Urban,{i % 2},Web,{arms[i % 3]},{i % 2},0,0"
            for i in range(n)]


def test_bad_value_in_hillstrom_source_exits_4_with_one_line_naming_the_column(spark, tmp_path, capsys):
    from uplift_spark.cli import main

    rows = _hillstrom_rows()
    rows[5] = "abc" + rows[5][rows[5].index(","):]  # "abc" in recency
    csv = tmp_path / "hillstrom_bad.csv"
    csv.write_text("\n".join([HILLSTROM_HEADER] + rows) + "\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(f"data:\n  source: hillstrom\n  path: {csv}\n"
                    "  control_arm: No E-Mail\n  treatment_arms: [Mens E-Mail, Womens E-Mail]\n")
    out = tmp_path / "out"
    code = main(["ingest", "--conf-file", str(conf), "--output", str(out), "--run-id", "bad-h"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4
    assert len(err) == 1 and "recency" in err[0] and "abc" in err[0] and str(csv) in err[0], err
    assert not (out / "tables" / "experiment_log").exists()


def test_typed_csv_reader_flags_short_rows_and_keeps_good_files(spark, tmp_path):
    from uplift_spark.datasets import load_hillstrom
    from uplift_spark.errors import DataError

    good = tmp_path / "good.csv"
    good.write_text("\n".join([HILLSTROM_HEADER] + _hillstrom_rows()) + "\n")
    df = load_hillstrom(spark, str(good))
    assert dict(df.dtypes)["recency"] == "int" and dict(df.dtypes)["history"] == "double"
    assert sorted(r["recency"] for r in df.collect()) == sorted(1 + i % 12 for i in range(12))
    short = tmp_path / "short.csv"
    rows = _hillstrom_rows()
    rows[3] = rows[3].rsplit(",", 2)[0]  # two fields missing
    short.write_text("\n".join([HILLSTROM_HEADER] + rows) + "\n")
    with pytest.raises(DataError, match="1 malformed row"):
        load_hillstrom(spark, str(short))


def _experiment_csv(path, arms, n_per_arm=30):
    lines = ["cid,grp,x,y"]
    for a, arm in enumerate(arms):
        for i in range(n_per_arm):
            lines.append(f"{arm[:2]}{i:03d},{arm},{(i * 7 + a) % 10 / 10},{(i + a) % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _gate_conf(tmp_path, csv):
    conf = tmp_path / f"{csv.stem}.yaml"
    conf.write_text(f"data:\n  source: csv\n  path: {csv}\n  customer_id: cid\n  arm: grp\n"
                    "  control_arm: control\n  treatment_arms: [t]\n  features: [x]\n"
                    "  outcomes: [{name: y}]\nvalidation:\n  min_rows_per_arm: 5\n"
                    "split:\n  min_rows_per_arm: 1\n")  # so the split itself would succeed on this small log
    return conf


def test_stages_after_a_failed_gate_are_refused_and_latest_stays_on_passed_runs(spark, tmp_path, capsys):
    from uplift_spark.cli import main
    from uplift_spark.config import load_config
    from uplift_spark.pipelines.context import INGESTED, latest_run_id

    out = str(tmp_path / "out")
    bad = _gate_conf(tmp_path, _experiment_csv(tmp_path / "bad.csv", ["control", "t", "SMS"]))
    cfg = load_config(str(bad), output_root=out)
    assert main(["ingest", "--conf-file", str(bad), "--output", out, "--run-id", "bad"]) == 0
    assert latest_run_id(cfg, INGESTED) == "bad" and latest_run_id(cfg) is None
    assert main(["validate", "--conf-file", str(bad), "--output", out]) == 5  # the ingested run; unknown arm SMS
    assert latest_run_id(cfg) is None  # a rejected run never becomes the latest
    capsys.readouterr()
    assert main(["split", "--conf-file", str(bad), "--output", out]) == 4  # no validated run to default to
    assert "has not passed 'uplift-spark validate'" in capsys.readouterr().err
    for stage in ("split", "train", "score"):
        assert main([stage, "--conf-file", str(bad), "--output", out, "--run-id", "bad"]) == 5
        err = capsys.readouterr().err
        assert "failed its validation gate" in err and "unknown_arms" in err and "--skip-validation" in err, err
    assert main(["run", "--conf-file", str(bad), "--output", out, "--run-id", "bad", "--stages", "split"]) == 5
    assert main(["split", "--conf-file", str(bad), "--output", out, "--run-id", "never"]) == 5
    assert "has not been validated" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(out, "tables", "splits"))
    assert not os.path.exists(os.path.join(out, "tables", "split_summary"))


def test_one_reader_for_every_user_named_input(spark, tmp_path):
    """--batch/--outcomes/--population take Delta, Parquet, CSV or a table, with the same DataErrors."""
    from uplift_spark.config import DataConfig, OutcomeSpec
    from uplift_spark.errors import DataError
    from uplift_spark.pipelines.context import RunContext
    from uplift_spark.pipelines.monitor import _read_source
    from uplift_spark.pipelines.score import load_population

    cfg = UpliftConfig(data=DataConfig(source="csv", path="x.csv", control_arm="control", treatment_arms=("t",),
                                       features=("x", "seg"), categorical_features=("seg",),
                                       outcomes=(OutcomeSpec("y"),))).with_output(str(tmp_path / "out"))
    ctx = RunContext(spark, cfg, "r1")
    frame = spark.createDataFrame([("a", 1.5, "p", 1), ("b", 2.5, "q", 0)], "customer_id string, x double, seg string, y int")
    frame.write.parquet(str(tmp_path / "batch.parquet"))
    frame.write.format("delta").save(str(tmp_path / "batch_delta"))
    frame.toPandas().to_csv(tmp_path / "batch.csv", index=False)
    for name in ("batch.parquet", "batch_delta", "batch.csv"):
        got = _read_source(ctx, str(tmp_path / name), "monitor --batch")
        assert sorted((r["customer_id"], r["x"]) for r in got.collect()) == [("a", 1.5), ("b", 2.5)], name
        pop = load_population(ctx, str(tmp_path / name))
        assert sorted(r["x"] for r in pop.collect()) == [1.5, 2.5]
    (tmp_path / "bad.csv").write_text("customer_id,x,seg,y\na,1.5,p,1\nb,oops,q,0\n")
    with pytest.raises(DataError, match=r"population '.*bad.csv': column 'x' has 1 value\(s\) that are not double"):
        load_population(ctx, str(tmp_path / "bad.csv"))
    with pytest.raises(DataError, match="monitor --batch: file or folder not found"):
        _read_source(ctx, str(tmp_path / "nowhere.parquet"), "monitor --batch")
    with pytest.raises(DataError, match="neither an existing path nor a table"):
        load_population(ctx, "no_such_db.no_such_table")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="population '.*junk.parquet': cannot read"):
        load_population(ctx, str(tmp_path / "junk.parquet")).collect()


def test_cli_misuse_exits_64_with_the_subcommand_usage_before_the_jvm(monkeypatch, capsys):
    import uplift_spark.session as session
    from uplift_spark.cli import USAGE_EXIT, main

    def no_jvm(*_a, **_k):
        raise AssertionError("the JVM must not start for a command-line error")

    monkeypatch.setattr(session, "get_spark", no_jvm)
    assert USAGE_EXIT not in (2, 3, 4, 5, 6, 7, 8, 9, 10)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--conf-file", "conf/smoke.yaml", "--frobnicate"])
    assert exit_.value.code == USAGE_EXIT
    err = capsys.readouterr().err
    assert "usage: uplift-spark run" in err and "--frobnicate" in err
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--conf-file", "conf/smoke.yaml", "--stages", "ingest,trian"])
    assert exit_.value.code == USAGE_EXIT
    assert "unknown stage 'trian'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["split"])  # --conf-file missing
    assert exit_.value.code == USAGE_EXIT
