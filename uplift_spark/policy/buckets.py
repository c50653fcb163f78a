"""Holdout / exploration / policy buckets from a salted hash of the customer id.

The hash (``xxhash64`` of salt and id) depends on nothing but the id and ``policy.salt``: the same
customer lands in the same bucket on every rerun and under any partitioning, and a new campaign gets
fresh buckets by changing the salt. Holdout is ``u < holdout_share``, explore the next
``explore_share``: disjoint by construction. Separate salts drive the explore arm and tie-breaking so
they are independent of the bucket draw.
"""

from __future__ import annotations

from typing import Sequence

from ..config import PolicyConfig
from .eligibility import eligible_column

HOLDOUT, EXPLORE, POLICY = "holdout", "explore", "policy"
_SCALE = 1 << 40


def unit_hash(id_col: str, salt: str):
    """A uniform [0, 1) number per id, stable across runs, engines and partitionings."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(salt), F.col(id_col).cast("string"))
    return F.pmod(h, F.lit(_SCALE)).cast("double") / float(_SCALE)


def assign_buckets(df, policy_cfg: PolicyConfig, arms: Sequence[str], id_col: str = "customer_id"):
    """Add ``bucket``, ``explore_arm`` (a random eligible arm, null when none) and ``tie_u``.

    Needs the ``eligible_<arm>`` flags (see :func:`add_eligibility`).
    """
    from pyspark.sql import functions as F

    salt = policy_cfg.salt
    u = unit_hash(id_col, salt + "#bucket")
    h, e = float(policy_cfg.holdout_share), float(policy_cfg.explore_share)
    bucket = F.when(u < F.lit(h), F.lit(HOLDOUT)).when(u < F.lit(h + e), F.lit(EXPLORE)).otherwise(F.lit(POLICY))
    options = F.filter(
        F.array(*[F.when(F.col(eligible_column(a)), F.lit(a)) for a in arms]), lambda x: x.isNotNull())
    pick = (F.floor(unit_hash(id_col, salt + "#explore") * F.size(options)) + 1).cast("int")
    explore_arm = F.when(F.size(options) > 0, F.element_at(options, pick))
    return (df.withColumn("bucket", bucket)
              .withColumn("explore_arm", explore_arm.cast("string"))
              .withColumn("tie_u", unit_hash(id_col, salt + "#tie")))
