"""``uplift-spark publish``: make a run's decisions the ones in force for its campaign.

A CRM wants "the decisions in force", not a run id to filter by. Publishing run R of campaign C:

1. MERGEs R's contacts into ``contact_history`` keyed on (run_id, customer_id): contacts with their arm
   and channel, holdout customers as ``holdout`` (not contacted). Matched rows are rewritten only when
   they differ and R's rows absent from its decisions are deleted, so publishing R again changes nothing.
2. MERGEs R's decisions into ``decisions_current`` keyed on (campaign_id, customer_id), a table with
   Change Data Feed on: a row is updated only when its action changes (so the feed carries real changes
   only, and unchanged rows keep the run and time that set them), C's customers absent from R are
   deleted (``whenNotMatchedBySource``), so republishing an older run rolls the campaign back to it.
3. Records the publication (run, time, the ``decisions_current`` version, row counts) in ``publications``
   when it changed something or R was not the campaign's latest publication.

Every check (validation gate, decisions present for the run and campaign, unique customers) runs before
the first write, so a bad publication writes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..errors import DataError
from ..logs import get_logger
from ..policy.frequency import contact_rows
from ..schemas import conform, ddl
from .context import RunContext

log = get_logger("publish")

CDF = {"delta.enableChangeDataFeed": "true"}
_CONTACT_FIELDS = ("campaign_id", "channel", "action", "contacted_at", "contact_date")


def _sql(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _schema(ctx: RunContext, table: str):
    return ctx.spark.createDataFrame([], ddl(table)).schema


def load_decisions(ctx: RunContext, campaign_id: str):
    """The run's decisions for the campaign, checked (one aggregation pass) before anything is written."""
    from pyspark.sql import functions as F

    decisions = ctx.store.read_run("decisions", ctx.run_id)
    stats = decisions.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("campaign_id") == F.lit(campaign_id), 1).otherwise(0)).alias("campaign_rows"),
        F.count_distinct(F.when(F.col("campaign_id") == F.lit(campaign_id), F.col("customer_id"))).alias("customers"),
        F.sum(F.when(F.col("customer_id").isNull(), 1).otherwise(0)).alias("null_ids"),
        F.first("campaign_id", ignorenulls=True).alias("other"),
    ).collect()[0]
    if not stats["campaign_rows"]:
        raise DataError(f"publish: run {ctx.run_id!r} has no decisions for campaign {campaign_id!r} "
                        f"(its decisions are for {stats['other']!r}); set policy.campaign_id or rerun decide")
    if stats["null_ids"]:
        raise DataError(f"publish: run {ctx.run_id!r} has {stats['null_ids']} decisions with a null customer_id")
    if stats["customers"] != stats["campaign_rows"]:
        raise DataError(f"publish: run {ctx.run_id!r} has {stats['campaign_rows'] - stats['customers']} duplicate "
                        f"customer_id rows in decisions for campaign {campaign_id!r}")
    return decisions.where(F.col("campaign_id") == F.lit(campaign_id)), int(stats["customers"])


def pending_changes(target, source, keys, compare) -> int:
    """Rows a MERGE would insert, delete or update (``compare`` columns differ): one full outer join.

    A MERGE that would change nothing is skipped: Delta would still rewrite the files it touched, and a
    commit without change-data files reads in the change feed as every row deleted and re-inserted.
    """
    from pyspark.sql import functions as F

    t = target.select(*keys, *[F.col(c).alias(f"t_{c}") for c in compare], F.lit(True).alias("t_in"))
    s = source.select(*keys, *[F.col(c).alias(f"s_{c}") for c in compare], F.lit(True).alias("s_in"))
    j = t.join(s, list(keys), "full_outer")
    same = F.lit(True)
    for c in compare:
        same = same & F.col(f"t_{c}").eqNullSafe(F.col(f"s_{c}"))
    changed = F.col("t_in").isNull() | F.col("s_in").isNull() | ~same
    return int(j.where(changed).count())


def _unchanged(ctx: RunContext, name: str) -> dict:
    return {"version": ctx.store.version(name), "inserted": 0, "updated": 0, "deleted": 0}


def publish_contacts(ctx: RunContext, decisions) -> dict:
    """One MERGE of the run's contacts into ``contact_history`` (idempotent per run)."""
    from pyspark.sql import functions as F

    name = "contact_history"
    rows = conform(contact_rows(decisions, ctx.cfg.policy), name)
    ctx.store.ensure(name, _schema(ctx, name), partition_by=("contact_date",))
    mine = ctx.store.read(name).where(F.col("run_id") == F.lit(ctx.run_id))
    if pending_changes(mine, rows, ("run_id", "customer_id"), _CONTACT_FIELDS) == 0:
        return _unchanged(ctx, name)
    differs = "NOT (" + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in _CONTACT_FIELDS) + ")"
    return ctx.store.merge(name, lambda t: (
        t.alias("t").merge(rows.alias("s"), "t.run_id = s.run_id AND t.customer_id = s.customer_id")
         .whenMatchedUpdateAll(condition=differs)
         .whenNotMatchedInsertAll()
         .whenNotMatchedBySourceDelete(condition=f"t.run_id = {_sql(ctx.run_id)}")), ctx.run_id)


def publish_current(ctx: RunContext, decisions, campaign_id: str, published_at: datetime) -> dict:
    """One MERGE of the run's decisions into ``decisions_current`` (Change Data Feed on)."""
    from pyspark.sql import functions as F

    name = "decisions_current"
    rows = conform(decisions.withColumn("published_at", F.lit(published_at).cast("timestamp")), name)
    ctx.store.ensure(name, _schema(ctx, name), partition_by=("campaign_id",), properties=CDF)
    in_force = ctx.store.read(name).where(F.col("campaign_id") == F.lit(campaign_id))
    if pending_changes(in_force, rows, ("campaign_id", "customer_id"), ("action",)) == 0:
        return _unchanged(ctx, name)
    return ctx.store.merge(name, lambda t: (
        t.alias("t").merge(rows.alias("s"), "t.campaign_id = s.campaign_id AND t.customer_id = s.customer_id")
         .whenMatchedUpdateAll(condition="NOT (t.action <=> s.action)")
         .whenNotMatchedInsertAll()
         .whenNotMatchedBySourceDelete(condition=f"t.campaign_id = {_sql(campaign_id)}")), ctx.run_id)


def record_publication(ctx: RunContext, campaign_id: str, published_at: datetime, current: dict,
                       contacts: dict, customers: int) -> bool:
    """Log the publication unless it is a repeat that changed nothing; returns whether a row was added."""
    from pyspark.sql import functions as F

    name = "publications"
    ctx.store.ensure(name, _schema(ctx, name))
    changed = sum(current[k] for k in ("inserted", "updated", "deleted")) > 0
    latest = (ctx.store.read(name).where(F.col("campaign_id") == F.lit(campaign_id))
              .orderBy(F.col("table_version").desc(), F.col("published_at").desc()).select("run_id").limit(1).collect())
    if not changed and latest and latest[0]["run_id"] == ctx.run_id:
        return False
    row = [(campaign_id, ctx.run_id, published_at, int(current["version"]), int(customers),
            int(contacts.get("inserted", 0) + contacts.get("updated", 0)), int(current["inserted"]),
            int(current["updated"]), int(current["deleted"]))]
    df = conform(ctx.spark.createDataFrame(row, ddl(name)), name)
    ctx.store.merge(name, lambda t: (
        t.alias("t").merge(df.alias("s"), "t.campaign_id = s.campaign_id AND t.run_id = s.run_id "
                                          "AND t.table_version = s.table_version").whenNotMatchedInsertAll()), ctx.run_id)
    return True


def run(ctx: RunContext, skip_validation: bool = False, **_) -> dict:
    from .gates import require_validated

    cfg = ctx.cfg
    campaign_id = cfg.policy.campaign_id
    if not skip_validation:
        require_validated(ctx)
    decisions, customers = load_decisions(ctx, campaign_id)
    published_at = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    contacts = {"inserted": 0, "updated": 0, "deleted": 0}
    if cfg.publish.contact_history:
        contacts = publish_contacts(ctx, decisions)
    current = publish_current(ctx, decisions, campaign_id, published_at)
    logged = record_publication(ctx, campaign_id, published_at, current, contacts, customers)
    out = {
        "campaign_id": campaign_id, "customers": customers, "published_at": published_at.isoformat(),
        "decisions_current_version": current["version"],
        "changed": {k: current[k] for k in ("inserted", "updated", "deleted")},
        "contact_history": {k: contacts[k] for k in ("inserted", "updated", "deleted")},
        "logged": logged, "table": ctx.store.location("decisions_current"),
    }
    log.info("published run %s for campaign %s: decisions_current v%d (%d inserted, %d updated, %d deleted); "
             "contact_history %d inserted, %d updated, %d deleted", ctx.run_id, campaign_id, current["version"],
             current["inserted"], current["updated"], current["deleted"], contacts["inserted"],
             contacts["updated"], contacts["deleted"])
    return out
