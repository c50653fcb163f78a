"""End to end on synthetic data: seconds and peak driver memory per pipeline stage.

    python benchmarks/end_to_end.py --rows 1000000 [--driver-memory 1g] [--master local[2]]
        [--iterations 100] [--bootstrap 100] [--distribution auto] [--output /tmp/uplift_bench_e2e]

Runs every stage of ``uplift_spark.pipelines.run.STAGE_ORDER`` on one run id, exactly as
``uplift-spark run`` would, with ~20 features (16 numeric + 4 categorical) and 3 treatment arms. A
background thread samples the RSS of this Python driver, of the JVM (driver + local executor) and of
the JVM's Python workers; peaks are reported per stage. Run it at two sizes (e.g. 200k and 1M) to show
the driver does not grow with rows. Also counts the Parquet files of every Delta table written.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import shutil

import yaml

from _common import MemorySampler, Timer, lightgbm_config, print_table, synthetic_config, write_result, ROOT


def build_config(rows: int, output: str, master: str, driver_memory: str, iterations: int, bootstrap: int,
                 shuffle_partitions: int, partitions: int, executor_memory: str = "", distribution: str = "auto"):
    """conf/smoke.yaml scaled up: same contract, bigger data, 20 features, budgets proportional to rows."""
    from uplift_spark.config import config_from_dict, to_dict
    from uplift_spark.datasets import synthetic_data_config

    with open(os.path.join(ROOT, "conf", "smoke.yaml"), "r", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh.read().replace("${UPLIFT_OUTPUT:-./uplift_output}", output))
    syn = synthetic_config(rows, partitions=partitions)
    raw["run"]["output_root"] = output
    raw["run"]["name"] = "bench_e2e"
    conf = {"spark.ui.enabled": "false"}
    if executor_memory:  # local-cluster / cluster masters: executors are separate JVMs
        conf["spark.executor.memory"] = executor_memory
    raw["spark"].update(master=master, driver_memory=driver_memory, shuffle_partitions=shuffle_partitions,
                        conf=conf)
    raw["synthetic"] = to_dict(syn)
    raw["data"] = {k: v for k, v in to_dict(synthetic_data_config(syn)).items()}
    raw["model"]["lightgbm"] = to_dict(lightgbm_config(iterations))
    raw["model"]["outcomes"] = ["conversion"]
    raw["model"]["distribution"] = distribution
    raw["evaluation"]["bootstrap_replicates"] = bootstrap
    raw["evaluation"]["curve_points"] = 101
    raw["policy"]["budget"] = 0.15 * rows
    raw["policy"]["arms"]["discount"]["capacity"] = max(1, rows // 10)
    return config_from_dict(raw)


def delta_files(path: str) -> dict:
    if not path or not os.path.isdir(path):
        return {}
    files = glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)
    size = sum(os.path.getsize(f) for f in files)
    return {"parquet_files": len(files), "mb": round(size / 2 ** 20, 1),
            "commits": len(glob.glob(os.path.join(path, "_delta_log", "*.json")))}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--executor-memory", default="", help="e.g. 3g with --master 'local-cluster[2,1,4096]'")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--distribution", default="auto", help="model.distribution: auto, distributed or per_task")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--stages", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--output", default="/tmp/uplift_bench_e2e")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    parser.add_argument("--run-id", default="", help="run id to use (default: a new one)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the output folder of an earlier --keep run (with --run-id and --stages)")
    args = parser.parse_args(argv)

    sampler = MemorySampler().start()
    output = os.path.join(args.output, f"rows_{args.rows}")
    if not args.resume:
        shutil.rmtree(output, ignore_errors=True)
    elif not args.run_id:
        parser.error("--resume needs the --run-id of the kept run")
    cfg = build_config(args.rows, output, args.master, args.driver_memory, args.iterations, args.bootstrap,
                       args.shuffle_partitions, args.partitions, args.executor_memory, args.distribution)

    from uplift_spark.pipelines.context import RunContext, new_run_id
    from uplift_spark.pipelines.run import STAGE_ORDER
    from uplift_spark.session import get_spark

    sampler.mark("session")
    clock = Timer()
    spark = get_spark(cfg.spark)
    session_seconds = clock()
    ctx = RunContext(spark=spark, cfg=cfg, run_id=args.run_id or new_run_id())
    print(f"run id {ctx.run_id}, output {output}", flush=True)
    wanted = [s for s in STAGE_ORDER if not args.stages or s in args.stages.split(",")]
    stages = []
    total = Timer()
    for stage in wanted:
        sampler.mark(stage)
        module = importlib.import_module(f"uplift_spark.pipelines.{stage.replace('-', '_')}")
        clock = Timer()
        module.run(ctx)
        seconds = clock()
        row = {"stage": stage, "seconds": seconds, **sampler.peak(stage)}
        if stage == "train":
            manifest = json.load(open(os.path.join(ctx.model_dir, "manifest.json"), encoding="utf-8"))
            row["detail"] = ", ".join(f"{m['learner']}-learner {m['seconds']}s ({m.get('backend')})"
                                      for m in manifest["models"])
        stages.append(row)
        # a partial result after every stage: a long run that is stopped still leaves its figures
        write_result(f"end_to_end_{args.rows}_partial", {"rows": args.rows, "master": args.master,
                                                         "driver_memory": args.driver_memory, "stages": stages})
        print(f"  {stage:<9} {seconds:8.1f}s  python driver {row['driver_python_mb']:.0f} MB, "
              f"driver JVM {row['jvm_mb']:.0f} MB, executor JVMs {row['executor_jvms_mb']:.0f} MB", flush=True)
    total_seconds = total()
    peaks = sampler.stop()
    tables = {}
    from uplift_spark.io import TABLES

    for name in TABLES:
        if ctx.store.exists(name):
            tables[name] = delta_files(ctx.store.location(name))
    print_table(stages, ["stage", "seconds", "driver_python_mb", "jvm_mb", "executor_jvms_mb", "python_workers_mb",
                         "detail"],
                f"end to end, {args.rows:,} rows, {args.master}, driver memory {args.driver_memory}")
    print_table([{"table": k, **v} for k, v in tables.items()], ["table", "parquet_files", "mb", "commits"],
                "Delta tables")
    all_peak = peaks.get("__all__", {})
    print(f"\ntotal {total_seconds:.1f}s (+ session {session_seconds:.1f}s); peak python driver "
          f"{all_peak.get('driver_python_mb')} MB, peak JVM {all_peak.get('jvm_mb')} MB, "
          f"peak driver python + JVM {all_peak.get('driver_total_mb')} MB")
    result = {"rows": args.rows, "master": args.master, "driver_memory": args.driver_memory,
              "distribution": args.distribution,
              "executor_memory": args.executor_memory,
              "iterations": args.iterations, "bootstrap": args.bootstrap, "session_seconds": session_seconds,
              "total_seconds": total_seconds, "stages": stages, "peaks": all_peak, "tables": tables,
              "features": len(cfg.data.features), "treatment_arms": list(cfg.data.treatment_arms)}
    write_result(f"end_to_end_{args.rows}_{args.master.replace('[', '').replace(']', '').replace(',', '_')}"
                 + ("" if args.distribution == "auto" else f"_{args.distribution}"), result)
    spark.stop()
    if not args.keep:
        shutil.rmtree(output, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
