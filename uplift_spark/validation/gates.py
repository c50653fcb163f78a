"""Turn the aggregated profile into pass/warn/fail rows; everything here runs on small numbers."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

from ..config import DataConfig, ValidationConfig
from .contract import propensity_columns
from .profile import Profile
from .results import FAIL, PASS, WARN, CheckResult, status_above


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def id_checks(p: Profile, data: DataConfig) -> List[CheckResult]:
    nulls = int(p.total("id_null"))
    out = [CheckResult(
        "customer_id_nulls", FAIL if nulls else PASS,
        f"{nulls} row(s) have a null {data.customer_id!r}" if nulls else f"no null {data.customer_id!r}",
        column=data.customer_id, metric=nulls, threshold=0,
    )]
    dup = p.duplicate_rows
    out.append(CheckResult(
        "customer_id_duplicates", FAIL if dup else PASS,
        (f"{p.duplicate_ids} {data.customer_id!r} value(s) appear more than once ({dup} extra row(s)); "
         "each customer must have one assignment") if dup else f"every {data.customer_id!r} is unique",
        column=data.customer_id, metric=dup, threshold=0,
    ))
    return out


def arm_checks(p: Profile, data: DataConfig, cfg: ValidationConfig) -> List[CheckResult]:
    out = []
    known = set(data.arms)
    unknown = {a: prof.rows for a, prof in p.arms.items() if a not in known}
    for arm, rows in sorted(unknown.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        label = "a null arm" if arm is None else f"arm {arm!r}"
        out.append(CheckResult(
            "unknown_arms", FAIL, f"{rows} row(s) have {label}, not one of the configured arms {list(data.arms)}",
            arm=arm, column=data.arm, metric=rows, threshold=0,
        ))
    if not unknown:
        out.append(CheckResult("unknown_arms", PASS, f"all arms are in {list(data.arms)}", column=data.arm,
                               metric=0, threshold=0))
    present = [a for a, prof in p.arms.items() if prof.rows > 0]
    if len(present) <= 1:
        only = present[0] if present else None
        out.append(CheckResult(
            "arm_coverage", FAIL,
            f"all {p.rows} rows are in one arm ({only!r}): no comparison is possible",
            column=data.arm, metric=len(present), threshold=2,
        ))
    else:
        out.append(CheckResult("arm_coverage", PASS, f"{len(present)} arms have rows", column=data.arm,
                               metric=len(present), threshold=2))
    for arm in data.arms:
        rows = p.arms[arm].rows if arm in p.arms else 0
        ok = rows >= cfg.min_rows_per_arm
        out.append(CheckResult(
            "arm_rows", PASS if ok else FAIL,
            f"arm {arm!r} has {rows} row(s)" + ("" if ok else f", fewer than min_rows_per_arm={cfg.min_rows_per_arm}"),
            arm=arm, column=data.arm, metric=rows, threshold=cfg.min_rows_per_arm,
        ))
    return out


def expected_shares(p: Profile, data: DataConfig) -> Tuple[Dict[str, float], str]:
    """Expected assignment shares: known propensities, else the configured allocation, else equal."""
    arms = list(data.arms)
    props = propensity_columns(data)
    if props and all(f"prop:{a}" in v.values for v in p.arms.values() for a in arms) and not p.total("prop_bad"):
        sums = {a: sum(prof.get(f"prop:{a}") for arm, prof in p.arms.items() if arm in arms) for a in arms}
        total = sum(sums.values())
        if total > 0:
            return {a: sums[a] / total for a in arms}, "the known propensities"
    if data.allocation and all(data.allocation.get(a, 0) > 0 for a in arms):
        total = sum(data.allocation[a] for a in arms)
        return {a: data.allocation[a] / total for a in arms}, "data.allocation"
    return {a: 1.0 / len(arms) for a in arms}, "equal shares"


def srm_check(p: Profile, data: DataConfig, cfg: ValidationConfig) -> List[CheckResult]:
    """Sample-ratio mismatch: Pearson chi-square of per-arm counts against the expected shares."""
    from scipy.stats import chisquare

    arms = list(data.arms)
    observed = [p.arms[a].rows if a in p.arms else 0 for a in arms]
    n = sum(observed)
    if n == 0 or len(arms) < 2:
        return [CheckResult("srm", FAIL, "no rows in the configured arms: cannot test the sample ratio",
                            column=data.arm, metric=0.0, threshold=cfg.srm_pvalue)]
    shares, source = expected_shares(p, data)
    expected = [shares[a] * n for a in arms]
    pvalue = float(chisquare(observed, f_exp=expected).pvalue)
    detail = ", ".join(f"{a}: {o / n:.4f} vs {shares[a]:.4f}" for a, o in zip(arms, observed))
    failed = pvalue < cfg.srm_pvalue
    return [CheckResult(
        "srm", FAIL if failed else PASS,
        f"chi-square p={pvalue:.3g} {'<' if failed else '>='} {cfg.srm_pvalue} against {source} "
        f"(observed vs expected share: {detail})",
        column=data.arm, metric=pvalue, threshold=cfg.srm_pvalue,
    )]


def _smd(m_t: float, v_t: float, m_c: float, v_c: float) -> float:
    pooled = math.sqrt(max((v_t + v_c) / 2.0, 0.0))
    diff = m_t - m_c
    if pooled < 1e-12:
        return 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    return diff / pooled


def balance_checks(p: Profile, data: DataConfig, cfg: ValidationConfig) -> List[CheckResult]:
    """Standardized mean difference of every feature (and categorical level) per treatment vs control."""
    out = []
    control = p.arms.get(data.control_arm)
    if control is None or control.rows < 2:
        return out
    weighted = bool(propensity_columns(data)) and "prop_bad" in control.values
    how = "IPW-weighted " if weighted else ""
    categorical = set(data.categorical_features)

    def moments(prof, feat):
        sw = prof.get(f"sw:{feat}")
        if sw <= 0:
            return None
        mean = prof.get(f"swx:{feat}") / sw
        return mean, max(prof.get(f"swx2:{feat}") / sw - mean * mean, 0.0)

    def add(arm, column, smd, what):
        status = status_above(abs(smd), cfg.smd_warn, cfg.smd_fail)
        limit = cfg.smd_fail if status == FAIL else cfg.smd_warn
        msg = f"{how}standardized mean difference of {what} ({arm!r} vs {data.control_arm!r}) is {smd:+.3f}"
        if status != PASS:
            msg += f", above {limit}"
        out.append(CheckResult("balance", status, msg, arm=arm, column=column, metric=abs(smd),
                               threshold=cfg.smd_warn))

    for arm in data.treatment_arms:
        treated = p.arms.get(arm)
        if treated is None or treated.rows < 2:
            continue
        for feat in data.features:
            if feat in categorical or f"sw:{feat}" not in control.values:
                continue
            mt, mc = moments(treated, feat), moments(control, feat)
            if mt is None or mc is None:
                continue
            add(arm, feat, _smd(mt[0], mt[1], mc[0], mc[1]), f"{feat!r}")
        feats_levels = sorted({(f, lvl) for (_, f, lvl) in p.levels})
        for feat, level in feats_levels:
            shares = []
            for prof_arm, prof in ((arm, treated), (data.control_arm, control)):
                total = prof.get("sw")
                w = p.levels.get((prof_arm, feat, level), (0, 0.0))[1]
                shares.append(w / total if total > 0 else 0.0)
            pt, pc = shares
            add(arm, f"{feat}={level}", _smd(pt, pt * (1 - pt), pc, pc * (1 - pc)), f"{feat!r} = {level!r}")
    return out


def leakage_checks(p: Profile, data: DataConfig, usable: set) -> List[CheckResult]:
    """Features observed at/after assignment, and outcome-like columns used as features."""
    out = []
    timed = []
    if data.feature_snapshot_at:
        timed.append((data.feature_snapshot_at, "all features (snapshot column "
                      f"{data.feature_snapshot_at!r})", data.feature_snapshot_at))
    for feat, col in data.feature_observed_at.items():
        timed.append((feat, f"feature {feat!r} (observed-at column {col!r})", col))
    for column, what, col in timed:
        key = f"late:{col}"
        if key not in next(iter(p.arms.values())).values:
            if not data.assigned_at or data.assigned_at not in usable:
                out.append(CheckResult("leakage_time", WARN,
                                       f"{what}: cannot check, no usable data.assigned_at column",
                                       column=column))
            continue
        late = int(p.total(key))
        out.append(CheckResult(
            "leakage_time", FAIL if late else PASS,
            f"{what} is observed at or after {data.assigned_at!r} on {late} row(s): it may carry the treatment's effect"
            if late else f"{what} is observed before {data.assigned_at!r} on every row",
            column=column, metric=late, threshold=0,
        ))
    suspects = set(data.outcome_like_columns) | set(data.outcome_names) | {data.customer_id, data.arm}
    if data.assigned_at:
        suspects.add(data.assigned_at)
    leaked = [f for f in data.features if f in suspects or f.startswith("true_uplift_")]
    for feat in leaked:
        out.append(CheckResult(
            "leakage_columns", FAIL,
            f"feature {feat!r} is an outcome, outcome-like, id or assignment column: it must not be a feature",
            column=feat, metric=1, threshold=0,
        ))
    if not leaked:
        out.append(CheckResult("leakage_columns", PASS, "no outcome-like column is used as a feature",
                               metric=0, threshold=0))
    return out


def outcome_checks(p: Profile, data: DataConfig, cfg: ValidationConfig) -> List[CheckResult]:
    out = []
    n = max(p.rows, 1)
    first = next(iter(p.arms.values())).values
    for spec in data.outcomes:
        if f"null:{spec.name}" not in first:
            continue
        if spec.type == "binary":
            bad = int(p.total(f"bad:{spec.name}"))
            rule = "outside {0, 1}"
        else:
            bad = int(p.total(f"low:{spec.name}") + p.total(f"high:{spec.name}"))
            rule = f"outside [{spec.min if spec.min is not None else '-inf'}, {spec.max if spec.max is not None else 'inf'}]"
        out.append(CheckResult(
            "outcome_range", FAIL if bad else PASS,
            f"{spec.type} outcome {spec.name!r} has {bad} value(s) {rule}" if bad
            else f"{spec.type} outcome {spec.name!r} is within range",
            column=spec.name, metric=bad, threshold=0,
        ))
        share = p.total(f"null:{spec.name}") / n
        status = FAIL if share > cfg.max_null_share else (WARN if share > 0 else PASS)
        out.append(CheckResult(
            "outcome_nulls", status, f"outcome {spec.name!r} is null on {share:.2%} of rows"
            + (f" (max_null_share={cfg.max_null_share})" if status == FAIL else ""),
            column=spec.name, metric=share, threshold=cfg.max_null_share,
        ))
    for feat in data.features:
        if f"null:{feat}" not in first:
            continue
        share = p.total(f"null:{feat}") / n
        status = WARN if share > cfg.max_null_share else PASS
        out.append(CheckResult(
            "feature_nulls", status, f"feature {feat!r} is null on {share:.2%} of rows"
            + (f", above max_null_share={cfg.max_null_share}" if status == WARN else ""),
            column=feat, metric=share, threshold=cfg.max_null_share,
        ))
    return out


def propensity_checks(p: Profile, data: DataConfig) -> List[CheckResult]:
    first = next(iter(p.arms.values())).values
    if "prop_bad" not in first:
        return []
    bad = int(p.total("prop_bad"))
    err = max((prof.get("prop_sum_err") for prof in p.arms.values()), default=0.0)
    col = f"{data.propensity}_*"
    return [
        CheckResult("propensity_range", FAIL if bad else PASS,
                    f"{bad} row(s) have a null, zero or >1 propensity for their own arm" if bad
                    else "every row's own-arm propensity is in (0, 1]", column=col, metric=bad, threshold=0),
        CheckResult("propensity_sum", WARN if err > 1e-6 else PASS,
                    f"propensities across arms sum to 1 within {_fmt(err)}", column=col, metric=err,
                    threshold=1e-6),
    ]
