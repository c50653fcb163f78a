"""Contact history, frequency caps and publishing for the CRM (decisions_current with Change Data Feed).

Decisions frames are built directly (no model): what is checked is the Delta plumbing (MERGE keys,
update conditions, deletes by source, the change feed, idempotency) and that a capped customer is
never chosen, against expectations written from the rules in the test.
"""

import dataclasses
import datetime

import pandas as pd
import pytest

from uplift_spark.config import ArmEconomics, FrequencyRule, PolicyConfig, config_from_dict
from uplift_spark.errors import DataError, PolicyError, ValidationFailed
from uplift_spark.policy import decide
from uplift_spark.policy.decide import check_constraints

DECIDED = datetime.datetime(2024, 6, 1, 9, 30, 0)
ARMS = {"mail_a": {"channel": "email", "cost": 1.0}, "text": {"channel": "sms", "cost": 1.0}}


def _ctx(spark, out, run_id, campaign="spring", publish=None):
    from uplift_spark.pipelines.context import RunContext

    cfg = config_from_dict({"policy": {"campaign_id": campaign, "arms": ARMS},
                            "publish": publish or {}}).with_output(str(out))
    return RunContext(spark=spark, cfg=cfg, run_id=run_id)


def _write_decisions(ctx, actions, campaign="spring", holdout=()):
    """One decisions row per customer: ``actions`` maps customer → action (value = a per-run marker)."""
    from pyspark.sql import functions as F

    from uplift_spark.schemas import conform

    rows = [(ctx.run_id, campaign, cid, act, float(len(ctx.run_id) + i), 0.01, "holdout" if cid in holdout else "policy",
             act, "test", DECIDED) for i, (cid, act) in enumerate(sorted(actions.items()))]
    df = ctx.spark.createDataFrame(rows, "run_id string, campaign_id string, customer_id string, action string, "
                                         "expected_value double, expected_uplift double, bucket string, "
                                         "policy_action string, reason string, decided_at timestamp")
    df = df.withColumn("expected_uplift_calibrated", F.lit(None).cast("double")) \
           .withColumn("expected_value_calibrated", F.lit(None).cast("double"))
    ctx.store.write(conform(df, "decisions"), "decisions", ctx.run_id)


def _current(ctx, campaign="spring"):
    df = ctx.store.read("decisions_current").where(f"campaign_id = '{campaign}'").toPandas()
    assert not df.customer_id.duplicated().any()
    return dict(zip(df.customer_id, df.action)), df


def _changes(ctx, start, end):
    cdf = (ctx.spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", start)
           .option("endingVersion", end).load(ctx.store.location("decisions_current")).toPandas())
    return {kind: set(cdf.customer_id[cdf._change_type == kind]) for kind in
            ("insert", "update_preimage", "update_postimage", "delete")}


def _history(ctx):
    return (ctx.store.read("contact_history").toPandas()
            .sort_values(["run_id", "customer_id"]).reset_index(drop=True))


def test_publish_run_then_another_then_rollback(spark, tmp_path):
    from deltalake import DeltaTable

    from uplift_spark.pipelines import publish

    a = {f"c{i:02d}": ("mail_a" if i % 3 == 0 else "text" if i % 3 == 1 else "none") for i in range(20)}
    b = dict(a)
    b.update({"c00": "text", "c04": "none", "c05": "mail_a"})  # action changes
    del b["c18"], b["c19"]  # not in run B
    b.update({"c20": "text", "c21": "none"})  # new in run B
    ctx_a, ctx_b = _ctx(spark, tmp_path, "run-a"), _ctx(spark, tmp_path, "run-b")
    _write_decisions(ctx_a, a, holdout={"c02", "c11"})
    _write_decisions(ctx_b, b)
    other = _ctx(spark, tmp_path, "run-o", campaign="autumn")  # another campaign's rows must survive
    _write_decisions(other, {"c00": "mail_a", "c99": "text"}, campaign="autumn")
    publish.run(other, skip_validation=True)

    first = publish.run(ctx_a, skip_validation=True)
    assert first["changed"] == {"inserted": 20, "updated": 0, "deleted": 0}
    history = _history(ctx_a)
    again = publish.run(ctx_a, skip_validation=True)  # the same run twice: nothing changes
    assert again["changed"] == {"inserted": 0, "updated": 0, "deleted": 0} and not again["logged"]
    assert again["decisions_current_version"] == first["decisions_current_version"]  # no empty commit
    assert again["contact_history"] == {"inserted": 0, "updated": 0, "deleted": 0}
    pd.testing.assert_frame_equal(_history(ctx_a), history)
    mine = history[history.run_id == "run-a"]
    contacted = {c for c, act in a.items() if act != "none"}
    assert set(mine.customer_id) == contacted | {"c02", "c11"}  # contacts + holdout, no other "none"
    assert set(mine.customer_id[mine.action == "holdout"]) == {"c02", "c11"}
    assert mine.channel[mine.action == "holdout"].isna().all()
    assert (mine.channel[mine.action == "mail_a"] == "email").all() and (mine.channel[mine.action == "text"] == "sms").all()
    assert (mine.contacted_at == pd.Timestamp(DECIDED)).all()

    current, _ = _current(ctx_a)
    assert current == a
    second = publish.run(ctx_b, skip_validation=True)
    current, rows = _current(ctx_b)
    assert current == b  # one row per (campaign, customer), B's actions
    assert set(rows.run_id[rows.customer_id.isin(["c00", "c04", "c05", "c20"])]) == {"run-b"}
    assert set(rows.run_id[rows.customer_id == "c01"]) == {"run-a"}  # unchanged row: not rewritten
    changes = _changes(ctx_b, first["decisions_current_version"] + 1, second["decisions_current_version"])
    changed = {c for c in a.keys() & b.keys() if a[c] != b[c]}
    assert changes["update_postimage"] == changes["update_preimage"] == changed == {"c00", "c04", "c05"}
    assert changes["insert"] == {"c20", "c21"} and changes["delete"] == {"c18", "c19"}
    assert second["changed"] == {"inserted": 2, "updated": 3, "deleted": 2}

    back = publish.run(ctx_a, skip_validation=True)  # republishing the older run rolls back
    current, _ = _current(ctx_a)
    assert current == a
    changes = _changes(ctx_a, second["decisions_current_version"] + 1, back["decisions_current_version"])
    assert changes["update_postimage"] == changed and changes["insert"] == {"c18", "c19"}
    assert changes["delete"] == {"c20", "c21"}
    assert _current(other, "autumn")[0] == {"c00": "mail_a", "c99": "text"}

    log = ctx_a.store.read("publications").where("campaign_id = 'spring'").orderBy("table_version").toPandas()
    assert list(log.run_id) == ["run-a", "run-b", "run-a"]
    assert list(log.table_version) == [first["decisions_current_version"], second["decisions_current_version"],
                                       back["decisions_current_version"]]
    # a CRM reading with delta-rs sees the same tables
    crm = DeltaTable(ctx_a.store.location("decisions_current")).to_pandas()
    crm = crm[crm.campaign_id == "spring"]
    assert dict(zip(crm.customer_id, crm.action)) == a
    assert DeltaTable(ctx_a.store.location("decisions_current")).metadata().configuration.get(
        "delta.enableChangeDataFeed") == "true"
    import pyarrow as pa

    feed = pa.table(DeltaTable(ctx_a.store.location("decisions_current")).load_cdf(
        starting_version=first["decisions_current_version"] + 1,
        ending_version=second["decisions_current_version"])).to_pandas()
    assert set(feed.customer_id[feed._change_type == "update_postimage"]) == changed
    assert len(feed) == 2 * len(changed) + 4  # pre+post images, 2 inserts, 2 deletes: nothing else
    contacts = DeltaTable(ctx_a.store.location("contact_history")).to_pandas()
    assert len(contacts) == len(_history(ctx_a)) and set(contacts.run_id) == {"run-a", "run-b", "run-o"}


def test_publish_refuses_missing_decisions_and_unvalidated_runs(spark, tmp_path):
    from uplift_spark.pipelines import publish

    ctx = _ctx(spark, tmp_path, "run-x")
    with pytest.raises(DataError, match="decisions"):
        publish.run(ctx, skip_validation=True)
    _write_decisions(ctx, {"c1": "text"}, campaign="other")
    with pytest.raises(DataError, match="no decisions for campaign 'spring'"):
        publish.run(ctx, skip_validation=True)
    with pytest.raises(ValidationFailed, match="has not been validated"):
        publish.run(ctx)
    for name in ("decisions_current", "contact_history", "publications"):
        assert not ctx.store.exists(name), name


# ------------------------------------------------------------------------------------ frequency caps

AS_OF = datetime.datetime(2024, 6, 30, 12, 0, 0)


def _contacts(spark, rows):
    """contact_history rows from (customer, channel, action, days before AS_OF, run_id)."""
    from uplift_spark.schemas import conform

    data = [(c, "camp", ch, act, AS_OF - datetime.timedelta(days=d), run, (AS_OF - datetime.timedelta(days=d)).date())
            for c, ch, act, d, run in rows]
    df = spark.createDataFrame(data, "customer_id string, campaign_id string, channel string, action string, "
                                     "contacted_at timestamp, run_id string, contact_date date")
    return conform(df, "contact_history")


def _freq_policy(**kw):
    arms = {"mail_a": ArmEconomics(benefit=10.0, cost=1.0, channel="email"),
            "text": ArmEconomics(benefit=10.0, cost=1.0, channel="sms")}
    return PolicyConfig(policy="threshold", holdout_share=0.0, explore_share=0.0, arms=arms,
                        frequency=(FrequencyRule(max_contacts=3, window_days=30, channel="email"),), **kw)


def test_frequency_caps_keep_customers_at_their_cap_out(spark):
    from uplift_spark.policy.frequency import capped_flags

    hist = []
    for d in (1, 10, 29):
        hist += [("at_cap", "email", "mail_a", d, "r1"), ("at_cap_email_only", "email", "mail_a", d, "r1"),
                 ("sms_contacts", "sms", "text", d, "r1"), ("holdouts", None, "holdout", d, "r1"),
                 ("this_run", "email", "mail_a", d, "now")]
    for d in (1, 31, 45):  # two of three fell out of the window
        hist.append(("expired", "email", "mail_a", d, "r1"))
    for d in (1, 2, -1):  # one is after as_of: not yet a contact for this run
        hist.append(("future", "email", "mail_a", d, "r1"))
    history = _contacts(spark, hist)
    p = _freq_policy()
    flags = capped_flags(history, p, ["mail_a", "text"], AS_OF, exclude_run_id="now").toPandas()
    assert set(flags.customer_id) == {"at_cap", "at_cap_email_only"}
    assert flags.capped_mail_a.all() and not flags.capped_text.any()
    # an any-channel rule counts every contact (not holdouts) and blocks every arm
    p_any = dataclasses.replace(p, frequency=(FrequencyRule(max_contacts=3, window_days=30),))
    flags_any = capped_flags(history, p_any, ["mail_a", "text"], AS_OF, exclude_run_id="now").toPandas()
    assert set(flags_any.customer_id) == {"at_cap", "at_cap_email_only", "sms_contacts"}
    assert flags_any.capped_text.all()

    # decide: everyone prefers mail_a; the capped customers fall back to text, or to nothing (reason
    # frequency_cap) when text is not allowed for them; the expired/future/this-run ones get mail_a
    ids = ["at_cap", "at_cap_email_only", "sms_contacts", "holdouts", "this_run", "expired", "future", "fresh"]
    wide = pd.DataFrame({"customer_id": ids, "uplift_mail_a": 0.5, "uplift_text": 0.3,
                         "eligible_text": [True, False, True, True, True, True, True, True]})
    wide = spark.createDataFrame(wide).join(
        capped_flags(history, p, ["mail_a", "text"], AS_OF, exclude_run_id="now"), "customer_id", "left")
    dec, _ = decide(wide, p, ["mail_a", "text"])
    got = dec.toPandas().set_index("customer_id")
    assert got.action["at_cap"] == "text"
    assert got.action["at_cap_email_only"] == "none" and got.reason["at_cap_email_only"] == "frequency_cap"
    for cid in ("sms_contacts", "holdouts", "this_run", "expired", "future", "fresh"):
        assert got.action[cid] == "mail_a", cid
    assert (got.reason != "frequency_cap").sum() == len(ids) - 1


def test_frequency_config_checks():
    p = _freq_policy()
    check_constraints(p, ["mail_a", "text"])  # frequency is enforced now: no refusal
    no_channel = PolicyConfig(policy="threshold", arms={"mail_a": ArmEconomics(channel="email"), "text": ArmEconomics()},
                              frequency=(FrequencyRule(channel="email"),))
    with pytest.raises(PolicyError, match=r"policy.arms.text.channel: required"):
        check_constraints(no_channel, ["mail_a", "text"])
    cfg = config_from_dict({"policy": {"as_of": "2024-06-30T14:00:00+02:00"}, "publish": {"enabled": True}})
    from uplift_spark.policy.frequency import as_of_time

    assert as_of_time(cfg.policy.as_of) == datetime.datetime(2024, 6, 30, 12, 0, 0)
    assert cfg.publish.enabled and cfg.publish.contact_history
