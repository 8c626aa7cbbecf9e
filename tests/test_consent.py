"""The consent service: one answer for every consumer, the same in the warehouse and for
one customer, and opt-outs of profiling honoured by features and segments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custintel.core import consent
from custintel.core.consent import Record, decide
from custintel.features.build import events_for, params_for, profiling_allowed
from custintel.features.definitions import customer_features
from custintel.pipeline.project import Project

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
AT = dt.date(2025, 1, 11)


def _frame(rows: list[tuple[str, Record]]) -> ibis.Table:
    frame = pd.DataFrame(
        {
            "customer_id": [c for c, _ in rows],
            "ts": pd.to_datetime([r.ts for _, r in rows], utc=True),
            "channel": [r.channel for _, r in rows],
            "purpose": [r.purpose for _, r in rows],
            "status": [r.status for _, r in rows],
        }
    )
    return ibis.memtable(frame, schema={
        "customer_id": "string", "ts": "timestamp('UTC')", "channel": "string",
        "purpose": "string", "status": "string",
    })  # fmt: skip


records = st.builds(
    Record,
    # whole days around the moment asked, so ties and records after it both occur
    ts=st.integers(0, 14).map(lambda d: T0 + dt.timedelta(days=d)),
    channel=st.sampled_from(["email", "sms", "all"]),
    purpose=st.sampled_from(["marketing", "profiling", "all"]),
    status=st.sampled_from(["granted", "withdrawn"]),
)


@settings(max_examples=60, deadline=None)
@given(
    history=st.dictionaries(st.sampled_from("abcde"), st.lists(records, max_size=6), max_size=5),
    purpose=st.sampled_from(["marketing", "profiling"]),
    channel=st.sampled_from([None, "email", "sms"]),
    regime=st.sampled_from(["opt_out", "opt_in"]),
)
def test_the_warehouse_and_the_one_customer_answers_agree(history, purpose, channel, regime):
    rows = [(c, r) for c, rs in history.items() for r in rs]
    customers = ibis.memtable(pd.DataFrame({"customer_id": list("abcdef")}))
    # an empty history still needs a table: one record of a customer not asked about
    table = _frame(rows or [("z", Record(T0, "email", "marketing", "granted"))])
    status = consent.latest_status(table, AT, purpose, channel)
    got = consent.allowed(customers, status, regime=regime).execute()
    got = dict(zip(got.customer_id, got.consent_allowed, strict=True))
    for c in "abcdef":
        expected = decide(history.get(c, []), AT, purpose, channel, regime=regime).allowed
        assert bool(got[c]) == expected, (c, history.get(c))


def test_the_rules_in_words() -> None:
    day = T0 + dt.timedelta(days=3)
    grant = Record(day, "email", "marketing", "granted")
    withdraw = Record(day, "all", "all", "withdrawn")
    # a withdrawal and a grant at the same instant: the withdrawal wins
    assert not decide([grant, withdraw], AT, "marketing", "email").allowed
    # a record after the moment asked does not count
    late = Record(T0 + dt.timedelta(days=20), "email", "marketing", "withdrawn")
    assert decide([grant, late], AT, "marketing", "email").allowed
    # another channel's withdrawal does not close this one; profiling has no channel
    sms_out = Record(day, "sms", "marketing", "withdrawn")
    assert decide([sms_out], AT, "marketing", "email").allowed
    assert not decide([Record(day, "sms", "profiling", "withdrawn")], AT, "profiling").allowed
    # no record: the regime decides, and the reason says so
    assert decide([], AT, "marketing", "email").allowed
    denied = decide([], AT, "marketing", "email", regime="opt_in")
    assert not denied.allowed and "opt-in" in denied.reason
    with pytest.raises(ValueError, match="the channels are"):
        decide([], AT, "marketing", "fax")


def test_unsubscribes_close_email_marketing_only() -> None:
    table = _frame([("a", Record(T0, "email", "marketing", "granted"))])
    unsub = ibis.memtable(
        pd.DataFrame(
            {"customer_id": ["a"], "ts": pd.to_datetime([T0 + dt.timedelta(days=1)], utc=True)}
        )
    )
    customers = ibis.memtable(pd.DataFrame({"customer_id": ["a"]}))
    for channel, expected in (("email", False), ("sms", True)):
        status = consent.latest_status(table, AT, "marketing", channel, unsubscribes=unsub)
        out = consent.allowed(customers, status).execute()
        assert bool(out.consent_allowed.iloc[0]) is expected


def _opted_out_by_hand(project: Path, as_of: dt.date) -> set[str]:
    """The oracle, in plain pandas from the clean consents and the customer map."""
    with Project.open(project, read_only=True) as p:
        c = p.warehouse.table("clean", "consents").execute()
        cmap = p.warehouse.table("identity", "customer_map").execute()
    c = c.merge(cmap, left_on=["source", "customer_ref"], right_on=["source", "source_id"])
    c = c[c.purpose.isin(["profiling", "all"])]
    c = c[pd.to_datetime(c.event_ts, utc=True) < pd.Timestamp(as_of, tz="UTC")]
    c = c.assign(w=c.status == "withdrawn").sort_values(["customer_id", "event_ts", "w"])
    last = c.groupby("customer_id").tail(1)
    return set(last[last.w].customer_id)


def test_profiling_opt_outs_leave_the_features(resolved_shop: Path) -> None:
    as_of = dt.date(2025, 6, 30)
    out = _opted_out_by_hand(resolved_shop, as_of)
    assert len(out) > 50  # the simulator plants profiling opt-outs
    with Project.open(resolved_shop, read_only=True) as p:
        feats = set(p.features_frame(as_of).customer_id)
        events, _ = events_for(p.warehouse, p.config)
        every = customer_features(events, as_of, params_for(p.warehouse, p.config))
        everyone = set(every.select("customer_id").execute().customer_id)
        kept = profiling_allowed(every, events, as_of, p.config, "features")
        off = p.config.model_copy(
            update={"consent": p.config.consent.model_copy(update={"exclude_opted_out_from": []})}
        )
        assert profiling_allowed(every, events, as_of, off, "features") is every
        allowed = set(kept.select("customer_id").execute().customer_id)
    # the stored rows are exactly everyone the features know, minus the opted-out
    assert feats == everyone - out == allowed
    assert len(out & everyone) >= 0.95 * len(out)
