"""Typed, frozen configuration read from YAML with ``yaml.safe_load``.

Each YAML section maps to one frozen dataclass. Loading is strict: an unknown key, a wrong type or a
value out of range raises :class:`ConfigError` naming the dotted key (``model.lightgbm.num_leaves``),
because a silently ignored typo in a batch job config costs a whole run.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

import yaml

from .errors import ConfigError



def _empty_mapping():
    return types.MappingProxyType({})


def empty_mapping():
    """A read-only empty mapping default (a new Field each call: dataclasses own their Field objects)."""
    return field(default_factory=_empty_mapping)


def choice(default, *options):
    """A string field restricted to ``options`` (checked on load)."""
    return field(default=default, metadata={"choices": options})


def bounded(default, low=None, high=None):
    """A numeric field restricted to ``[low, high]`` (checked on load)."""
    return field(default=default, metadata={"low": low, "high": high})


# --------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RunConfig:
    """Run-wide settings; ``output_root`` holds every table, model and report of every run."""

    name: str = "uplift"
    output_root: str = "./uplift_output"
    seed: int = 42
    # where models/<run_id>/ go: any Hadoop path (dbfs:/, s3a://, abfss://); "" = <output_root>/models
    model_root: str = ""


@dataclass(frozen=True)
class SparkConfig:
    """How the session is built. ``jars``: auto (provided if present, else local folder, else
    packages), packages (``spark.jars.packages``), local (``spark.jars`` from ``jars_dir``),
    provided (cluster already has Delta and SynapseML: Databricks)."""

    master: str = "local[2]"
    app_name: str = "uplift_spark"
    driver_memory: str = "4g"
    shuffle_partitions: int = bounded(8, 1)
    jars: str = choice("auto", "auto", "packages", "local", "provided")
    jars_dir: str = "~/.cache/uplift_spark/jars"
    log_level: str = "WARN"
    conf: Mapping[str, str] = empty_mapping()


@dataclass(frozen=True)
class TablesConfig:
    """Where tables live: ``path`` mode stores Delta folders under ``<output_root>/tables/<name>``;
    ``metastore`` mode uses ``<database>.<name>`` (e.g. ``main.uplift``) as on Databricks.
    ``names`` overrides single tables (a path, or a full table name in metastore mode)."""

    mode: str = choice("path", "path", "metastore")
    database: Optional[str] = None
    names: Mapping[str, str] = empty_mapping()


@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome column. Binary outcomes are 0/1; continuous ones may carry a valid range."""

    name: str
    type: str = choice("binary", "binary", "continuous")
    min: Optional[float] = None
    max: Optional[float] = None


@dataclass(frozen=True)
class DataConfig:
    """The experiment-log contract (see README): which source to ingest and which column is what."""

    source: str = choice("hillstrom", "hillstrom", "synthetic", "csv", "parquet", "delta", "table")
    path: Optional[str] = None
    customer_id: str = "customer_id"
    arm: str = "arm"
    control_arm: str = "control"
    treatment_arms: Tuple[str, ...] = ()
    assigned_at: Optional[str] = None
    features: Tuple[str, ...] = ()
    categorical_features: Tuple[str, ...] = ()
    feature_observed_at: Mapping[str, str] = empty_mapping()
    feature_snapshot_at: Optional[str] = None
    outcomes: Tuple[OutcomeSpec, ...] = ()
    primary_outcome: Optional[str] = None
    propensity: Optional[str] = None
    allocation: Mapping[str, float] = empty_mapping()
    outcome_like_columns: Tuple[str, ...] = ()
    rename: Mapping[str, str] = empty_mapping()
    # randomization unit above the customer (household, store, region): set for cluster-randomized
    # experiments, so splits, validation and intervals treat whole clusters as the independent units
    cluster: Optional[str] = None

    @property
    def arms(self) -> Tuple[str, ...]:
        return (self.control_arm,) + tuple(self.treatment_arms)

    @property
    def outcome_names(self) -> Tuple[str, ...]:
        return tuple(o.name for o in self.outcomes)

    def outcome(self, name: str) -> OutcomeSpec:
        for spec in self.outcomes:
            if spec.name == name:
                return spec
        raise ConfigError(f"data.outcomes: no outcome named {name!r} (have {list(self.outcome_names)})")

    @property
    def main_outcome(self) -> str:
        return self.primary_outcome or self.outcomes[0].name


@dataclass(frozen=True)
class SyntheticConfig:
    """A multi-arm RCT with known effects, generated on the executors (``uplift_spark.datasets``)."""

    n_rows: int = bounded(200_000, 1)
    n_numeric: int = bounded(8, 2)
    n_categorical: int = bounded(2, 0)
    control_arm: str = "control"
    treatment_arms: Tuple[str, ...] = ("email_a", "email_b", "discount")
    allocation: Mapping[str, float] = empty_mapping()
    base_rate: float = bounded(0.10, 0.0, 1.0)
    effect_scale: float = bounded(1.0, 0.0)
    harmed_share: float = bounded(0.15, 0.0, 1.0)
    start: str = "2025-01-01"
    months: int = bounded(6, 1)
    drift: bool = False
    drift_features: Tuple[str, ...] = ("x0", "x1")
    drift_strength: float = bounded(1.0, 0.0)
    propensity: str = choice("uniform", "uniform", "covariate")
    partitions: int = bounded(8, 1)
    seed: int = 7
    # mean cluster (household) size; 0/None = customer-randomized. When set, every cluster gets one arm
    # and a shared effect on the outcome (cluster_effect: std of the shared logit shift)
    cluster_size: Optional[float] = bounded(None, 0.0)
    cluster_effect: float = bounded(1.0, 0.0)


@dataclass(frozen=True)
class ValidationConfig:
    """Gate thresholds. SRM fails at ``srm_pvalue``; SMD warns above ``smd_warn``."""

    min_rows_per_arm: int = bounded(100, 1)
    srm_pvalue: float = bounded(0.001, 0.0, 1.0)
    smd_warn: float = bounded(0.1, 0.0)
    smd_fail: Optional[float] = None
    max_null_share: float = bounded(0.5, 0.0, 1.0)
    fail_on_warn: bool = False
    # balance is checked for the most frequent levels only, so a high-cardinality column stays cheap
    max_levels: int = bounded(50, 1)


@dataclass(frozen=True)
class OotConfig:
    """Out-of-time cutoff: exactly one of a date, the last N days, or a fraction of the time range."""

    cutoff: Optional[str] = None
    last_days: Optional[int] = None
    fraction: Optional[float] = None


@dataclass(frozen=True)
class SplitConfig:
    """Customer-level split fractions for the in-time rows (they must sum to 1)."""

    train: float = bounded(0.6, 0.0, 1.0)
    valid: float = bounded(0.2, 0.0, 1.0)
    test: float = bounded(0.2, 0.0, 1.0)
    oot: OotConfig = OotConfig()
    # K cross-fitting folds of the train customers; 0 = none, or 5 when model.learners has r or dr
    n_folds: int = bounded(0, 0)
    seed: int = 2024
    min_rows_per_arm: int = bounded(20, 0)
    continuous_bins: int = bounded(4, 1)
    # hash: per-customer uniform vs fixed thresholds (stable when customers are added, no skew);
    # rank: rank within stratum by hash (exact shares per stratum; new data may move old customers)
    method: str = choice("hash", "hash", "rank")
    # approxQuantile relative error for the continuous-outcome bin edges (0 = exact, costly on big data)
    quantile_error: float = bounded(0.001, 0.0, 0.5)


@dataclass(frozen=True)
class LightGBMConfig:
    """LightGBM parameters shared by both trainers (SynapseML and barrier-mode PyPI ``lightgbm``)."""

    num_leaves: int = bounded(31, 2)
    learning_rate: float = bounded(0.05, 0.0)
    num_iterations: int = bounded(200, 1)
    early_stopping_round: int = bounded(20, 0)
    min_data_in_leaf: int = bounded(50, 1)
    feature_fraction: float = bounded(1.0, 0.0, 1.0)
    bagging_fraction: float = bounded(1.0, 0.0, 1.0)
    bagging_freq: int = bounded(0, 0)
    lambda_l2: float = bounded(0.0, 0.0)
    max_bin: int = bounded(255, 2)
    seed: int = 1
    num_tasks: int = bounded(0, 0)
    # LightGBM threads per executor for SynapseML; 0 = SynapseML's default (executor cores - 1)
    num_threads: int = bounded(0, 0)
    # SynapseML collects validation rows to the driver for early stopping: sample them down to about this
    # many (seeded) so the driver stays flat as customers grow; 0 = use all
    max_validation_rows: int = bounded(200_000, 0)
    timeout_seconds: float = bounded(1200.0, 1.0)
    data_transfer_mode: str = choice("bulk", "bulk", "streaming")
    extra: Mapping[str, Any] = empty_mapping()


# learners the train stage knows (uplift_spark.learners registers the classes under these names);
# the cross-fitted ones read the split's ``fold`` column, so split.n_folds defaults to 5 with them
CROSS_FITTED_LEARNERS = ("r", "dr")
DEFAULT_CROSS_FIT_FOLDS = 5


@dataclass(frozen=True)
class ModelConfig:
    """Which learners to train, for which outcomes, with which trainer backend."""

    learners: Tuple[str, ...] = ("t", "x")
    outcomes: Tuple[str, ...] = ()
    propensity: str = choice("known", "known", "estimate")
    propensity_clip: float = bounded(0.01, 0.0, 0.5)
    # "auto" or a registered trainer backend (learners.trainers.TRAINERS), checked on load
    backend: str = "auto"
    # where each booster trains: per_task = PyPI lightgbm on all of that booster's rows inside ONE Spark
    # task (independent boosters side by side); distributed = data-parallel over tasks (``backend``);
    # auto = per_task when the booster's training rows x features x 8 bytes < per_task_max_bytes
    distribution: str = choice("auto", "auto", "distributed", "per_task")
    # 0 = derived: a quarter of one executor's memory (spark.executor.memory; spark.driver.memory on a
    # local[...] master) divided by its concurrent tasks (executor cores / spark.task.cpus)
    per_task_max_bytes: int = bounded(0, 0)
    lightgbm: LightGBMConfig = LightGBMConfig()
    # hyperparameter choice per learner on the valid split (validation Qini AUC of the policy outcome):
    # ``tune_grid`` {lightgbm key: [values]} (their product, at most MAX_TUNE_POINTS points) or, when
    # empty, the first ``tune_points`` of the built-in grid sized to the data (learners/tuning.py)
    tune: bool = True
    tune_grid: Mapping[str, Tuple[Any, ...]] = empty_mapping()
    tune_points: int = bounded(6, 1, 6)
    # uplift importance: rows of train (seeded sample, bounded) a surrogate LightGBM regressor is fitted
    # on per learner, outcome and arm to explain the predicted effect; 0 = not computed
    uplift_importance_rows: int = bounded(20_000, 0)


@dataclass(frozen=True)
class EvaluationConfig:
    """Curves, metrics, bootstrap and calibration settings."""

    splits: Tuple[str, ...] = ("valid", "test", "oot")
    curve_points: int = bounded(101, 2)
    top_k_percents: Tuple[float, ...] = (10.0, 20.0, 30.0, 50.0)
    bootstrap_replicates: int = bounded(100, 0)
    bootstrap_seed: int = 11
    ci_level: float = bounded(0.95, 0.0, 1.0)
    n_deciles: int = bounded(10, 2)
    # score-range segments of the exact scan (one task each); None = spark.sql.shuffle.partitions
    n_segments: Optional[int] = bounded(None, 1)


@dataclass(frozen=True)
class ReportConfig:
    """The marketer-facing HTML report."""

    title: str = "Uplift model report"
    top_segments: int = bounded(5, 1)
    # which slice the headline plots show (None: the primary outcome, "test" if present, all learners)
    outcome: Optional[str] = None
    split: Optional[str] = None
    learners: Tuple[str, ...] = ()
    # the "top k%" quoted in the summary sentence (the nearest uplift_at_<k> metric is used)
    summary_top_percent: float = bounded(20.0, 0.0, 100.0)
    # segments: how many of the strongest features to slice, in how many quantile bins, min rows per side
    segment_features: int = bounded(3, 1)
    segment_bins: int = bounded(5, 2)
    segment_max_categories: int = bounded(12, 2)
    segment_min_rows: int = bounded(30, 1)
    # long tables (validation checks, decisions) are cut to this many rows in the HTML
    max_table_rows: int = bounded(200, 10)


@dataclass(frozen=True)
class CostModel:
    """Expected cost from a second outcome model: ``face`` × the predicted probability of ``outcome``
    under the arm (e.g. a coupon's face value × its chance of being redeemed)."""

    face: float
    outcome: str


@dataclass(frozen=True)
class ArmEconomics:
    """Money per arm: value of one unit of outcome, cost per contact, max contacts, eligibility SQL.

    ``cost`` is a number, a population column or Spark SQL expression (``0.1 * basket_value``), or
    ``{face: 10.0, outcome: redeemed}`` (a :class:`CostModel`); ``channel`` is what frequency caps count.
    """

    benefit: float = 1.0
    cost: Any = 0.0
    capacity: Optional[int] = None
    eligibility: Optional[str] = None
    channel: Optional[str] = None

    @property
    def constant_cost(self) -> Optional[float]:
        """The cost when it is the same for every customer, else None."""
        return float(self.cost) if isinstance(self.cost, (int, float)) and not isinstance(self.cost, bool) else None


@dataclass(frozen=True)
class FairnessConfig:
    """Coverage across the groups of a population column: every group's treated share within
    ``max_treated_share_gap`` of the overall share, and per-group min/max shares of the contacts."""

    group: Optional[str] = None
    max_treated_share_gap: Optional[float] = bounded(None, 0.0, 1.0)
    min_share: Mapping[str, float] = empty_mapping()
    max_share: Mapping[str, float] = empty_mapping()


@dataclass(frozen=True)
class GuardrailConfig:
    """A second outcome the campaign must not hurt: per customer (``max_uplift``: never treat a
    customer whose predicted uplift of ``outcome`` is above it) and/or in total (``min_total_uplift``)."""

    outcome: str
    max_uplift: Optional[float] = None
    min_total_uplift: Optional[float] = None


@dataclass(frozen=True)
class FrequencyRule:
    """At most ``max_contacts`` contacts in the last ``window_days`` (on ``channel``, or any channel)."""

    max_contacts: int = bounded(3, 0)
    window_days: int = bounded(30, 1)
    channel: Optional[str] = None


@dataclass(frozen=True)
class RiskConfig:
    """Penalty = ``weight`` × predicted uplift of a harmful ``outcome`` (e.g. unsubscribe)."""

    outcome: Optional[str] = None
    weight: float = bounded(0.0, 0.0)


@dataclass(frozen=True)
class PolicyConfig:
    """Decision policy: value model, constraints and the measurement buckets."""

    campaign_id: str = "campaign"
    policy: str = choice("budget", "budget", "top_k", "threshold")
    outcome: Optional[str] = None
    arms: Mapping[str, ArmEconomics] = empty_mapping()
    budget: Optional[float] = None
    top_k: Optional[int] = None
    min_value: float = 0.0
    risk: RiskConfig = RiskConfig()
    holdout_share: float = bounded(0.05, 0.0, 1.0)
    explore_share: float = bounded(0.05, 0.0, 1.0)
    salt: str = "uplift"
    population: Optional[str] = None
    bisection_iterations: int = bounded(40, 5)
    # which saved learner scores the population: "auto" = the learner with the best validation Qini AUC
    # of the policy outcome, chosen at train time and recorded in the manifest (one of model.learners)
    learner: str = "auto"
    # multiplier values evaluated per aggregation pass (one pass narrows a search by grid_points - 1)
    grid_points: int = bounded(128, 8)
    # policy rows (seeded hash sample, bounded) searched on the driver to bracket the multipliers before
    # the exact full passes; a population this small is solved on the driver outright; 0 = full passes only
    search_sample_rows: int = bounded(50_000, 0)
    # stop the multiplier search once (dual bound − allocation value) / dual bound is below this
    dual_gap_tol: float = bounded(1e-4, 0.0, 0.5)
    # business rules: customers tied at the dual point (at most this many, brought to the driver) are
    # decided by an integer program (scipy milp, at most exact_seconds) over what the others leave
    exact_rows: int = bounded(5000, 0)
    exact_seconds: float = bounded(5.0, 0.1)
    # business rules: fairness/coverage across groups, guardrail outcomes, contact-frequency caps
    fairness: FairnessConfig = FairnessConfig()
    guardrails: Tuple[GuardrailConfig, ...] = ()
    frequency: Tuple[FrequencyRule, ...] = ()
    # held-out calibration of predicted uplift (decisions.expected_*_calibrated): randomized split of the
    # run's predictions it is fitted on (never the split evaluate-policy judges the policy on), and bins
    calibration_split: str = "valid"
    calibration_bins: int = bounded(10, 2)
    # decide on calibrated values (uplift mapped through the held-out calibration) instead of predictions
    calibrated: bool = False
    # the "now" of frequency-cap windows (ISO timestamp, UTC; null = the time decide runs): a fixed value
    # makes a rerun or a test see the same contacts
    as_of: Optional[str] = None


@dataclass(frozen=True)
class PublishConfig:
    """``uplift-spark publish``: a run's decisions into ``decisions_current`` (Change Data Feed on) for the
    CRM, its contacts into ``contact_history`` (what frequency caps count); ``enabled`` adds the stage to
    ``uplift-spark run``."""

    enabled: bool = False
    contact_history: bool = True


@dataclass(frozen=True)
class PolicyEvaluationConfig:
    """Held-out value of the configured policy against baselines (``uplift-spark evaluate-policy``)."""

    # held-out splits with randomized assignment to evaluate on (those present are used)
    splits: Tuple[str, ...] = ("test", "oot")
    ci_level: float = bounded(0.95, 0.5, 0.999)
    # spends per customer on the cost-curve grid (0 .. the spend where every positive-reward arm is given)
    curve_points: int = bounded(21, 2)
    # salt of the tie-break hash ordering customers with equal value per cost on the curves
    seed: int = 17
    # column of the experiment log holding clusters (e.g. household): cluster-robust SEs when set
    cluster: Optional[str] = None


@dataclass(frozen=True)
class MonitoringConfig:
    """Drift thresholds and the batches to compare with the training reference."""

    psi_warn: float = bounded(0.1, 0.0)
    psi_alert: float = bounded(0.25, 0.0)
    bins: int = bounded(10, 2)
    max_categories: int = bounded(20, 1)
    mean_shift_warn: float = bounded(0.5, 0.0)
    batch: Optional[str] = None
    batch_id: Optional[str] = None
    outcomes: Optional[str] = None
    # |mean shift| of predicted uplift (reference std units) that alerts, not only warns
    mean_shift_alert: float = bounded(1.0, 0.0)
    # smoothing for empty bins in PSI: shares are floored at epsilon so log(0) never occurs
    psi_epsilon: float = bounded(1e-4, 1e-12, 0.1)
    # approxQuantile relative error for reference bin edges (0 = exact, costly on big data)
    quantile_error: float = bounded(0.001, 0.0, 0.1)
    # category names kept in the profile to tell "unseen" from "rare" categories
    max_known_categories: int = bounded(1000, 1)
    # absolute increase in null share / unseen-category share of a feature that warns
    null_share_warn: float = bounded(0.05, 0.0, 1.0)
    unseen_share_warn: float = bounded(0.05, 0.0, 1.0)
    # absolute change in the share of customers with negative predicted uplift that warns
    negative_share_warn: float = bounded(0.1, 0.0, 1.0)
    # absolute change of any action's share (policy mix) that warns
    action_share_warn: float = bounded(0.1, 0.0, 1.0)
    # realized uplift: customers without an outcome row count as 0 ("zero") or are dropped ("drop")
    missing_outcome: str = choice("zero", "zero", "drop")
    # realized uplift: only outcomes within this many days after decided_at count (None: any time after)
    outcome_window_days: Optional[int] = None
    # confidence level of the realized-uplift interval (Welch t)
    ci_level: float = bounded(0.95, 0.5, 0.999)
    # fewer treated or holdout customers than this per action: realized uplift is reported, not judged
    min_group_size: int = bounded(30, 2)
    # realized uplift: the outcome feed's event-time column (outcomes before decided_at are ignored)
    outcome_time_column: str = "outcome_at"


@dataclass(frozen=True)
class MlflowConfig:
    """Optional MLflow tracking (params, metrics, report and model folder as artifacts)."""

    enabled: bool = False
    experiment: str = "uplift_spark"
    tracking_uri: Optional[str] = None


@dataclass(frozen=True)
class UpliftConfig:
    """The whole configuration of one pipeline."""

    run: RunConfig = RunConfig()
    spark: SparkConfig = SparkConfig()
    tables: TablesConfig = TablesConfig()
    data: DataConfig = DataConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    validation: ValidationConfig = ValidationConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    policy: PolicyConfig = PolicyConfig()
    policy_evaluation: PolicyEvaluationConfig = PolicyEvaluationConfig()
    publish: PublishConfig = PublishConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    mlflow: MlflowConfig = MlflowConfig()
    source_file: Optional[str] = field(default=None, compare=False)

    def replace(self, **sections) -> "UpliftConfig":
        return dataclasses.replace(self, **sections)

    def with_output(self, output_root: str) -> "UpliftConfig":
        return self.replace(run=dataclasses.replace(self.run, output_root=output_root))


# --------------------------------------------------------------------------------------------- loading


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(value, tp, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(tp, value, key)
    if origin in (tuple, Tuple):
        if isinstance(value, Mapping) and args and dataclasses.is_dataclass(args[0]):
            value = [value]  # one rule written as a mapping: a list of one
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        vtype = args[1] if len(args) == 2 else Any
        return types.MappingProxyType({str(k): _convert(v, vtype, f"{key}.{k}") for k, v in value.items()})
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _check_field(f: dataclasses.Field, value, key: str):
    meta = f.metadata
    if "choices" in meta and value is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {list(meta['choices'])}")
    low, high = meta.get("low"), meta.get("high")
    if value is not None and low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low}")
    if value is not None and high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high}")


def _build(cls, raw: Mapping, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source_file"}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key {where}{unknown[0]!s} (allowed under {prefix or 'the top level'}: "
            f"{', '.join(sorted(known))})"
        )
    kwargs = {}
    for name, f in known.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in raw:
            value = _convert(raw[name], hints[name], key)
            _check_field(f, value, key)
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key {key}")
    return cls(**kwargs)


def registered_names() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(learner names, trainer backend names) as registered by the learners package.

    Read from the registries rather than listed here, so a learner or backend that registers itself
    is accepted without touching the config. Imported on first validation, not at import time:
    the learners package needs pyspark, and reading a config must not.
    """
    from .learners import registry
    from .learners.trainers import TRAINERS

    return registry.learner_names(), tuple(sorted(TRAINERS))


def _validate(cfg: UpliftConfig) -> None:
    s = cfg.split
    if abs(s.train + s.valid + s.test - 1.0) > 1e-9:
        raise ConfigError(f"split: train + valid + test must be 1.0, got {s.train + s.valid + s.test:.4f}")
    set_oot = [k for k in ("cutoff", "last_days", "fraction") if getattr(s.oot, k) is not None]
    if len(set_oot) > 1:
        raise ConfigError(f"split.oot: set only one of cutoff, last_days, fraction (got {set_oot})")
    if s.oot.fraction is not None and not 0.0 < s.oot.fraction < 1.0:
        raise ConfigError(f"split.oot.fraction: {s.oot.fraction!r} must be between 0 and 1")
    d = cfg.data
    if d.control_arm in d.treatment_arms:
        raise ConfigError(f"data.treatment_arms: the control arm {d.control_arm!r} is listed as a treatment")
    if len(set(d.treatment_arms)) != len(d.treatment_arms):
        raise ConfigError(f"data.treatment_arms: duplicate arm in {list(d.treatment_arms)}")
    overlap = set(d.features) & (set(d.outcome_names) | {d.customer_id, d.arm})
    if overlap:
        raise ConfigError(f"data.features: {sorted(overlap)[0]!r} is an id, arm or outcome column")
    unknown_cat = set(d.categorical_features) - set(d.features)
    if unknown_cat:
        raise ConfigError(f"data.categorical_features: {sorted(unknown_cat)[0]!r} is not in data.features")
    if d.primary_outcome is not None and d.primary_outcome not in d.outcome_names:
        raise ConfigError(f"data.primary_outcome: {d.primary_outcome!r} is not in data.outcomes")
    for name in cfg.model.outcomes:
        if d.outcomes and name not in d.outcome_names:
            raise ConfigError(f"model.outcomes: {name!r} is not in data.outcomes")
    learners, backends = registered_names()
    for learner in cfg.model.learners:
        if learner not in learners:
            raise ConfigError(f"model.learners: {learner!r} is not one of {list(learners)}")
    if cfg.policy.learner != "auto" and cfg.policy.learner not in learners:
        raise ConfigError(f"policy.learner: {cfg.policy.learner!r} is not one of {['auto', *learners]}")
    if cfg.model.backend != "auto" and cfg.model.backend not in backends:
        raise ConfigError(f"model.backend: {cfg.model.backend!r} is not one of {['auto', *backends]}")
    crossfit = [name for name in cfg.model.learners if name in CROSS_FITTED_LEARNERS]
    if crossfit and s.n_folds == 1:
        raise ConfigError(f"split.n_folds: 1 fold cannot cross-fit the {crossfit[0]!r} learner (use 0 for "
                          f"the default {DEFAULT_CROSS_FIT_FOLDS}, or >= 2)")
    if crossfit and s.n_folds == 0:
        # the cross-fitted learners read the split's folds: K defaults to 5 when one is configured
        object.__setattr__(cfg, "split", dataclasses.replace(s, n_folds=DEFAULT_CROSS_FIT_FOLDS))
    _validate_tuning(cfg)
    if d.allocation:
        missing = set(d.allocation) - set(d.arms)
        if missing and d.treatment_arms:
            raise ConfigError(f"data.allocation: {sorted(missing)[0]!r} is not an arm")
    p = cfg.policy
    if p.holdout_share + p.explore_share >= 1.0:
        raise ConfigError("policy: holdout_share + explore_share must be below 1")
    if d.treatment_arms:
        for arm in p.arms:
            if arm not in d.treatment_arms:
                raise ConfigError(f"policy.arms: {arm!r} is not a treatment arm {list(d.treatment_arms)}")
    _validate_rules(p)
    if cfg.monitoring.psi_warn > cfg.monitoring.psi_alert:
        raise ConfigError("monitoring: psi_warn must not exceed psi_alert")
    if cfg.tables.mode == "metastore" and not cfg.tables.database:
        raise ConfigError("tables.database: required when tables.mode is metastore (e.g. main.uplift)")


MAX_TUNE_POINTS = 6


def _validate_tuning(cfg: "UpliftConfig") -> None:
    """``model.tune_grid`` shape and size, ``policy.learner`` against the trained learners (the grid's
    values are checked by the LightGBM config when the train stage builds it)."""
    m = cfg.model
    points = 1
    for key, values in m.tune_grid.items():
        if key not in {f.name for f in dataclasses.fields(LightGBMConfig)}:
            raise ConfigError(f"model.tune_grid: {key!r} is not a model.lightgbm key")
        if not values:
            raise ConfigError(f"model.tune_grid.{key}: no values given")
        points *= len(values)
    if points > MAX_TUNE_POINTS:
        raise ConfigError(f"model.tune_grid: {points} points; at most {MAX_TUNE_POINTS} (the grid is the "
                          f"product of the lists)")
    if m.tune and cfg.split.valid <= 0.0:
        raise ConfigError("model.tune: needs a valid split (split.valid is 0); set model.tune: false")
    learner = cfg.policy.learner
    if learner != "auto" and learner not in m.learners:
        raise ConfigError(f"policy.learner: {learner!r} is not 'auto' or one of model.learners {list(m.learners)}")


def parse_cost(value, key: str):
    """A number ≥ 0, a non-empty column/SQL expression, or ``{face, outcome}`` → :class:`CostModel`."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, a column/SQL expression or {{face, outcome}}, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{key}: {value!r} is below the minimum 0")
        return float(value)
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"{key}: empty cost expression")
        return value.strip()
    if isinstance(value, CostModel):
        return value
    if isinstance(value, Mapping):
        model = _build(CostModel, value, key)
        if model.face < 0:
            raise ConfigError(f"{key}.face: {model.face!r} is below the minimum 0")
        if not model.outcome.strip():
            raise ConfigError(f"{key}.outcome: empty outcome name")
        return model
    raise ConfigError(f"{key}: expected a number, a column/SQL expression or {{face, outcome}}, got {value!r}")


def _validate_rules(p: "PolicyConfig") -> None:
    """Costs, fairness, guardrails and frequency rules: shapes and ranges (feasibility is the solver's)."""
    for arm, econ in p.arms.items():
        object.__setattr__(econ, "cost", parse_cost(econ.cost, f"policy.arms.{arm}.cost"))
    f = p.fairness
    if (f.max_treated_share_gap is not None or f.min_share or f.max_share) and not f.group:
        raise ConfigError("policy.fairness.group: required with max_treated_share_gap, min_share or max_share")
    for name, shares in (("min_share", f.min_share), ("max_share", f.max_share)):
        for g, v in shares.items():
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"policy.fairness.{name}.{g}: {v!r} must be between 0 and 1")
    for g, lo in f.min_share.items():
        if g in f.max_share and f.max_share[g] < lo:
            raise ConfigError(f"policy.fairness: min_share.{g} {lo} is above max_share.{g} {f.max_share[g]}")
    if sum(f.min_share.values()) > 1.0 + 1e-12:
        raise ConfigError(f"policy.fairness.min_share: the shares sum to {sum(f.min_share.values()):.3f} > 1")
    for i, g in enumerate(p.guardrails):
        if g.max_uplift is None and g.min_total_uplift is None:
            raise ConfigError(f"policy.guardrails[{i}]: set max_uplift and/or min_total_uplift for {g.outcome!r}")
    if p.as_of is not None:
        parse_timestamp(p.as_of, "policy.as_of")


def parse_timestamp(value: str, key: str) -> datetime.datetime:
    """An ISO date or timestamp as naive UTC (Spark's session time zone is UTC); offsets are converted."""
    try:
        ts = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an ISO date/timestamp (e.g. 2024-05-31T00:00:00)") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return ts


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(text: str) -> str:
    """``${VAR}`` / ``${VAR:-default}`` in the YAML, so one file serves laptop and cluster."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)


def config_from_dict(raw: Mapping, source_file: Optional[str] = None) -> UpliftConfig:
    """Build and validate a config from a plain mapping (what ``yaml.safe_load`` returns)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source_file or 'config'}: the top level must be a mapping of sections")
    cfg = _build(UpliftConfig, raw)
    cfg = dataclasses.replace(cfg, source_file=source_file)
    _validate(cfg)
    return cfg


def load_config(path: str, output_root: Optional[str] = None) -> UpliftConfig:
    """Read ``path`` with ``yaml.safe_load``; ``output_root`` overrides ``run.output_root``.

    A relative ``data.path`` is resolved against the current directory first, then the config's folder.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, "r", encoding="utf-8") as fh:
        text = _expand_env(fh.read())
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    try:
        cfg = config_from_dict(raw, source_file=os.path.abspath(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if output_root:
        cfg = cfg.with_output(output_root)
    return cfg


def to_dict(obj) -> Any:
    """Plain-data view of a config (for JSON metadata, MLflow params and reports)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj
