"""Run every gate over an experiment log: a schema pass on the driver, then three aggregation passes."""

from __future__ import annotations

from typing import List

from ..config import DataConfig, ValidationConfig
from . import gates
from .clusters import cluster_checks, cluster_profile
from .contract import contract_problems, required_columns
from .profile import profile
from .results import FAIL, PASS, CheckResult


def schema_checks(df, data: DataConfig) -> List[CheckResult]:
    problems = dict(contract_problems(df.schema, data))
    out = []
    for col, _, role in required_columns(data):
        if col in problems:
            out.append(CheckResult("schema", FAIL, problems[col], column=col))
        else:
            out.append(CheckResult("schema", PASS, f"{role} column {col!r} is present and typed", column=col))
    return out


def run_checks(df, data: DataConfig, cfg: ValidationConfig) -> List[CheckResult]:
    """All gates' results for ``df`` (the experiment log of one run), in a stable order."""
    results = schema_checks(df, data)
    bad = {r.column for r in results if r.status == FAIL}
    usable = {c for c in df.columns if c not in bad}
    if data.arm not in usable:
        return results
    prof = profile(df, data, usable, max_levels=cfg.max_levels)
    if prof.rows == 0:
        results.append(CheckResult("row_count", FAIL, "the experiment log has no rows", metric=0, threshold=1))
        return results
    results.append(CheckResult("row_count", PASS, f"{prof.rows} rows", metric=prof.rows, threshold=1))
    if data.customer_id in usable:
        results += gates.id_checks(prof, data)
    results += gates.arm_checks(prof, data, cfg)
    clustered = data.cluster is not None
    if clustered and data.cluster not in usable:
        results.append(CheckResult("cluster_arms", FAIL, f"data.cluster: column {data.cluster!r} is not in the "
                                   "experiment log", column=data.cluster))
    elif clustered:
        # cluster-randomized: the sample ratio is judged on clusters (cluster_checks), not on customers
        shares, source = gates.expected_shares(prof, data)
        results += cluster_checks(cluster_profile(df, data, usable), data, cfg, shares, source)
    else:
        results += gates.srm_check(prof, data, cfg)
    results += gates.propensity_checks(prof, data)
    results += gates.balance_checks(prof, data, cfg)
    results += gates.leakage_checks(prof, data, usable)
    results += gates.outcome_checks(prof, data, cfg)
    return results
