"""``uplift-spark <stage> --conf-file conf/x.yaml [--output DIR] [--run-id ID]``.

The same entry points serve people (console script) and schedulers (``jobs/*.py`` under
``spark-submit``). Exit code 0 on success; a project error exits with its class's code and a one-line
message naming the problem, so a scheduler can tell a data problem from an engine failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import List, Optional

from .errors import UpliftSparkError

# argparse misuse (unknown flag, missing value) exits with this code: distinct from every project
# error (ConfigError is 2), so a scheduler can tell a wrong command line from a wrong config.
USAGE_EXIT = 64  # EX_USAGE in sysexits.h

# Stages that need a run which passed ``validate`` (mirrors pipelines.gates.AFTER_VALIDATE, kept here so
# the command line is checked before any pipeline module or the JVM is loaded).
GATED = ("split", "train", "predict", "evaluate", "score", "decide", "evaluate-policy", "monitor", "report",
         "publish")

# stage name → (pipelines module, starts a new run when no --run-id is given, help)
STAGES = {
    "ingest": ("ingest", True, "load the experiment source into the experiment_log Delta table"),
    "validate": ("validate", False, "run the data gates; write validation_report; fail on a failed gate"),
    "split": ("split", False, "out-of-time + stratified customer-level split into splits, split_summary"),
    "train": ("train", False, "fit T/X learners per outcome on the train split; save under models/<run>"),
    "predict": ("predict", False, "write predictions (long: customer × arm) for every split"),
    "evaluate": ("evaluate", False, "Qini/uplift curves, AUUC, bootstrap CIs, decile calibration"),
    "report": ("report", False, "write the HTML report and PNG plots"),
    "score": ("score", False, "score a population with the saved model into the scores table"),
    "decide": ("decide", False, "choose one action per customer under budget/capacity; decisions table"),
    "publish": ("publish", False, "MERGE a run's decisions into decisions_current (CDF) and contact_history"),
    "evaluate-policy": ("evaluate_policy", False,
                        "held-out policy value with CIs vs baselines at equal spend; cost curves"),
    "monitor": ("monitor", False, "feature/score/policy drift, realized uplift, alerts"),
    "run": ("run", True, "the whole pipeline end to end, stopping at the first failed gate"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with its own exit code for usage errors."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="uplift-spark", description="uplift_spark: uplift modeling for multi-arm experiments on Spark + Delta")
    sub = parser.add_subparsers(dest="stage", required=True, parser_class=_Parser)
    parser.subcommands = {}
    for name, (_, _, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text)
        parser.subcommands[name] = p
        p.add_argument("--conf-file", required=True, help="YAML config (see conf/)")
        p.add_argument("--output", default=None, help="output root; overrides run.output_root")
        p.add_argument("--run-id", default=None, help="run id; the same id reruns idempotently")
        p.add_argument("--master", default=None, help="Spark master; overrides spark.master")
        if name in ("ingest", "run"):
            p.add_argument("--data", default=None, help="input file/folder; overrides data.path")
        if name == "run":
            p.add_argument("--stages", default=None,
                           help="comma-separated subset to (re)run, e.g. evaluate,report (default: all)")
        if name in GATED or name == "run":
            p.add_argument("--skip-validation", action="store_true",
                           help="experts: run even if this run failed (or never ran) its validation gate")
        if name in ("score", "decide", "evaluate-policy", "run"):
            p.add_argument("--population", default=None, help="population table/path to score")
        if name in ("decide", "run"):
            p.add_argument("--as-of", default=None,
                           help="end of frequency-cap windows (ISO timestamp, UTC); overrides policy.as_of")
        if name in ("monitor", "run"):
            p.add_argument("--batch", default=None, help="new batch (Delta path/table) to compare")
            p.add_argument("--batch-id", default=None, help="batch id (default: derived from the run)")
            p.add_argument("--outcomes", default=None, help="campaign outcomes (customer_id, outcome…)")
    jars = sub.add_parser("install-jars", help="fetch the pinned Delta + SynapseML JARs with Maven")
    jars.add_argument("--jars-dir", default=None, help="target folder (default: spark.jars_dir)")
    jars.add_argument("--conf-file", default=None)
    sargs = sub.add_parser("submit-args", help="print spark-submit flags (JARs, Delta) for jobs/*.py")
    sargs.add_argument("--conf-file", default=None)
    check = sub.add_parser("check", help="start Spark and report Delta / SynapseML availability")
    check.add_argument("--conf-file", default=None)
    check.add_argument("--master", default=None)
    return parser


def _load(args):
    import dataclasses

    from .config import UpliftConfig, load_config

    cfg = load_config(args.conf_file, output_root=getattr(args, "output", None)) if args.conf_file else UpliftConfig()
    if getattr(args, "master", None):
        cfg = cfg.replace(spark=dataclasses.replace(cfg.spark, master=args.master))
    if getattr(args, "data", None):
        cfg = cfg.replace(data=dataclasses.replace(cfg.data, path=args.data))
    return cfg


def _print_summary(stage: str, summary) -> None:
    print(f"[uplift-spark] {stage} done: " + json.dumps(summary, default=str, sort_keys=True))


def _parse(argv: Optional[List[str]]):
    """Parse; an unknown flag is reported with the usage of its subcommand, not the top-level one."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    sub = getattr(parser, "subcommands", {}).get(getattr(args, "stage", None))
    if extra:
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "stages", None):
        from .pipelines.run import STAGE_ORDER

        args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [s for s in args.stages if s not in STAGE_ORDER]
        if unknown or not args.stages:
            sub.error(f"--stages: unknown stage {(unknown or [''])[0]!r}; stages are {', '.join(STAGE_ORDER)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    try:
        if args.stage == "install-jars":
            from .session import install_jars

            cfg = _load(args)
            jars = install_jars(args.jars_dir or cfg.spark.jars_dir)
            print(f"[uplift-spark] {len(jars)} jars in {args.jars_dir or cfg.spark.jars_dir}")
            return 0
        cfg = _load(args)
        if args.stage == "submit-args":
            import shlex

            from .session import submit_args

            print(" ".join(shlex.quote(a) for a in submit_args(cfg.spark)))
            return 0
        from .session import engine_status, get_spark

        spark = get_spark(cfg.spark)
        if args.stage == "check":
            status = engine_status(spark)
            print("[uplift-spark] " + json.dumps(status, sort_keys=True))
            return 0 if status["delta"] else 3
        from .pipelines.context import RunContext, resolve_run_id

        module_name, fresh, _ = STAGES[args.stage]
        skip = bool(getattr(args, "skip_validation", False))
        run_id = resolve_run_id(cfg, args.run_id, fresh, unvalidated=skip or args.stage == "validate")
        ctx = RunContext(spark=spark, cfg=cfg, run_id=run_id)
        if args.stage in GATED and not skip:
            from .pipelines.gates import require_validated

            require_validated(ctx)  # before the stage reads or writes anything
        module = importlib.import_module(f".pipelines.{module_name}", __package__)
        extra = {k: getattr(args, k) for k in ("population", "batch", "batch_id", "outcomes", "as_of")
                 if hasattr(args, k)}
        if getattr(args, "stages", None):
            extra["stages"] = args.stages
        if args.stage in ("run", "publish") and skip:
            extra["skip_validation"] = True
        summary = module.run(ctx, **{k: v for k, v in extra.items() if v is not None})
        if args.stage != "run":  # the runner prints its own readable summary
            _print_summary(args.stage, summary)
        return 0
    except UpliftSparkError as exc:
        print(f"[uplift-spark] {args.stage} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
