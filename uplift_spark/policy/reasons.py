"""``decisions.reason``: one phrase per customer saying why it got its action.

Both solvers (the budget/capacity one in ``decide`` and the business-rules one in ``rules``) word a
chosen action, a holdout and an exploration draw the same way; only the reasons a policy customer gets
nothing differ (the rules solver knows more exclusions), so those are passed in.
"""

from __future__ import annotations

from .buckets import EXPLORE, HOLDOUT

NONE = "none"  # the do-nothing action


def reason_column(unchosen, explore_unchosen):
    """The reason column over the solvers' assignment frame (bucket, action, best_arm, policy_value,
    binding): ``unchosen`` for a policy customer with no action, ``explore_unchosen`` for an exploration
    customer with none."""
    from pyspark.sql import functions as F

    c = F.col
    chosen = (F.when(c("action") == c("best_arm"),
                     F.format_string("best value %.2f via %s", c("policy_value"), c("action")))
              .otherwise(F.format_string("value %.2f via %s (best %s limited by %s)", c("policy_value"), c("action"),
                                         c("best_arm"), c("binding"))))
    return (F.when(c("bucket") == HOLDOUT, F.lit("holdout"))
            .when(c("bucket") == EXPLORE,
                  F.when(c("action") != NONE, F.concat(F.lit("explore via "), c("action"))).otherwise(explore_unchosen))
            .when(c("action") != NONE, chosen)
            .otherwise(unchosen))
