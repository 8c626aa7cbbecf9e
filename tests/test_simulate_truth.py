"""The simulated retailer has the properties its truth claims, and ingestion finds exactly
the faults it injected.

One project of 20,000 simulated customers is generated and ingested once per session
(``simulated_shop`` in conftest); every test reads its files, its truth and its warehouse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.simulate.faults import FAULTS
from tests.conftest import query

RULE_OF_FAULT = {
    "missing_timestamp": "not_null.order_ts",
    "future_timestamp": "future.order_ts",
    "negative_amount": "amount.sign",
    "absurd_amount": "range.amount.max",
    "unknown_currency": "allowed.currency",
    "malformed_line": "malformed",
}


def _truth(project: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / "truth" / f"{name}.parquet")


def _config(project: Path) -> dict[str, Any]:
    return json.loads((project / "data" / "truth" / "simulation.json").read_text())["config"]


def test_ingest_quarantines_exactly_the_injected_faults(simulated_shop) -> None:
    project, summary = simulated_shop
    faults = _truth(project, "faults").assign(file=lambda f: "data/" + f.file)
    rows = query(project, "SELECT _file, _line, rule FROM quarantine.rows")
    found = pd.DataFrame(rows, columns=["file", "line", "rule"])
    expected = faults[faults.expected == "quarantine"]
    hits = found.merge(expected, on=["file", "line"])
    precision = len(hits) / len(found)
    recall = len(hits) / len(expected)
    assert len(expected) > 300
    assert precision >= 0.99 and recall >= 0.99, (precision, recall)
    # ... and for the right reason.
    assert (hits.rule == hits.fault.map(RULE_OF_FAULT)).mean() >= 0.99
    duplicates = dict(query(project, "SELECT file, rows_duplicate FROM ops.ingested_files"))
    truth_dups = faults[faults.expected == "duplicate"].groupby("file").size()
    for file, n in truth_dups.items():
        assert duplicates[file] == n
    assert summary["rows_duplicate"] == len(faults[faults.expected == "duplicate"])
    assert summary["files_failed"] == 0


def test_fault_rates_match_the_knobs(simulated_shop) -> None:
    project, _ = simulated_shop
    rates = _config(project)["faults"]
    faults = _truth(project, "faults")
    orders = _truth(project, "orders")
    for file, online in (("shop/orders.csv", True), ("store/sales.csv", False)):
        n = int((orders.channel == ("online" if online else "store")).sum())
        counts = faults[faults.file == file].fault.value_counts()
        for fault in (*FAULTS, "duplicate"):
            rate = rates[fault]
            if fault == "unknown_currency" and not online:
                assert counts.get(fault, 0) == 0  # the store file has no currency column
                continue
            if fault == "negative_amount":  # drawn among all rows, applied to purchases only
                rate *= 1 - orders.is_return.mean()
            sd = np.sqrt(n * rate * (1 - rate))
            assert abs(counts.get(fault, 0) - n * rate) < 4 * sd + 2, (file, fault)


def test_clean_orders_agree_with_the_truth(simulated_shop) -> None:
    project, _ = simulated_shop
    truth = _truth(project, "orders")
    faulty = set(_truth(project, "faults").query("expected == 'quarantine'").order_id)
    loaded = pd.DataFrame(
        query(
            project, "SELECT order_id, channel, customer_ref, amount, is_return FROM clean.orders"
        ),
        columns=["order_id", "channel", "customer_ref", "amount", "is_return"],
    )
    assert len(loaded) == len(truth) - len(faulty)
    both = loaded.merge(truth, on="order_id", suffixes=("", "_true"))
    assert len(both) == len(loaded)
    assert (both.channel == both.channel_true).all()
    assert (both.customer_ref.fillna("") == both.account.fillna("")).all()
    assert np.allclose(both.amount.astype(float), both.amount_true, atol=0.005)
    assert (both.is_return == both.is_return_true).all()
    assert 0.02 < truth.is_return.mean() < 0.15


def test_about_twenty_orders_and_two_and_a_half_profiles_per_person(simulated_shop) -> None:
    project, _ = simulated_shop
    people = _truth(project, "people")
    orders = _truth(project, "orders")
    records = _truth(project, "records")
    assert len(orders) / len(people) > 20  # 1,000,000 people: 20+ million orders
    assert 2.2 < len(records) / len(people) < 2.7
    only_one = records.drop_duplicates(["system", "person_id"]).groupby("person_id").size() == 1
    assert 0.03 < only_one.mean() < 0.15  # some people are in one system only


def test_campaign_effects_are_recoverable_from_the_holdouts(simulated_shop) -> None:
    project, _ = simulated_shop
    cfg = _config(project)
    campaigns = _truth(project, "campaigns")
    orders = _truth(project, "orders")
    buys = orders[~orders.is_return]
    weeks = cfg["response"]["effect_weeks"]
    assert len(cfg["campaigns"]) >= 4
    dog_diffs = []
    for c in cfg["campaigns"]:
        group = campaigns[campaigns.campaign_id == c["campaign_id"]]
        window = buys[(buys.week >= c["week"]) & (buys.week < c["week"] + weeks)]
        y = window.groupby("person_id").size().reindex(group.person_id, fill_value=0).to_numpy()
        treated = (group.variant == "treatment").to_numpy()
        held_out = 1 - treated.mean()
        assert 0.1 <= c["holdout"] <= 0.5
        assert abs(held_out - c["holdout"]) < 4 * np.sqrt(
            c["holdout"] * (1 - c["holdout"]) / len(group)
        )
        diff = y[treated].mean() - y[~treated].mean()
        se = np.sqrt(y[treated].var() / treated.sum() + y[~treated].var() / (~treated).sum())
        true = group.expected_effect.mean()
        assert abs(diff - true) < 3.5 * se, (c["campaign_id"], diff, true, se)
        dogs = (group.multiplier < 1).to_numpy()
        dog_diffs.append(y[treated & dogs].mean() - y[~treated & dogs].mean())
        assert group.expected_effect[dogs & group.alive.to_numpy()].max() < 0
    # Sleeping dogs really buy less when contacted, in every campaign.
    assert max(dog_diffs) < 0
    # The effect depends on observables: lapsed customers respond more than recent ones.
    responders = campaigns[campaigns.multiplier >= 1]
    lapsed = responders.weeks_since_last_order > cfg["response"]["lapsed_weeks"]
    assert responders.multiplier[lapsed].mean() > responders.multiplier[~lapsed].mean()


def test_label_probabilities_are_calibrated(simulated_shop) -> None:
    project, _ = simulated_shop
    people = _truth(project, "people")
    for horizon in (90, 365):
        p = people[f"p_purchase_{horizon}d"]
        bought = people[f"purchases_next_{horizon}d"] > 0
        bins = pd.cut(p, [-0.01, 0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0])
        table = pd.DataFrame({"p": p, "y": bought}).groupby(bins, observed=True)
        table = table.agg(p=("p", "mean"), y=("y", "mean"), n=("p", "size"))
        # within 0.04, or within three binomial standard errors for a small bin
        allowed = np.maximum(0.04, 3 * np.sqrt(table.p * (1 - table.p) / table.n))
        assert ((table.p - table.y).abs() < allowed).all(), table
        assert table.n.sum() == len(people) and (table.n >= 1000).sum() >= 4
        expected = people[f"expected_purchases_{horizon}d"].sum()
        assert abs(expected / people[f"purchases_next_{horizon}d"].sum() - 1) < 0.05
    # Dead people never buy again; the probability knows it.
    dead = people[~people.alive_at_as_of]
    assert (dead.purchases_next_365d == 0).all() and (dead.p_purchase_365d == 0).all()


def test_the_history_oracle_is_calibrated_and_below_the_latent_one(simulated_shop) -> None:
    """P(alive) and P(purchase) from each person's persona priors and purchase history
    alone (BG/NBD in operational time) agree with the hidden state and what happened."""
    from sklearn.metrics import roc_auc_score

    project, _ = simulated_shop
    people = _truth(project, "people")
    people = people[people.p_alive_given_history.notna()]
    for column, truth in (
        ("p_alive_given_history", people.alive_at_as_of),
        ("p_purchase_90d_given_history", people.purchases_next_90d > 0),
        ("p_purchase_365d_given_history", people.purchases_next_365d > 0),
    ):
        p = people[column]
        bins = pd.cut(p, np.linspace(0, 1, 11), include_lowest=True)
        table = pd.DataFrame({"p": p, "y": truth}).groupby(bins, observed=True)
        table = table.agg(p=("p", "mean"), y=("y", "mean"), n=("p", "size"))
        allowed = np.maximum(0.04, 3 * np.sqrt(table.p * (1 - table.p) / table.n))
        assert ((table.p - table.y).abs() < allowed).all(), (column, table)
        assert abs(p.mean() - truth.mean()) < 0.01, column
    churned = people.purchases_next_90d == 0
    latent = roc_auc_score(churned, 1 - people.p_purchase_90d)
    history = roc_auc_score(churned, 1 - people.p_purchase_90d_given_history)
    assert 0.85 < history < latent, (history, latent)


def _monthly(project: Path, folder: str) -> pd.DataFrame:
    """All monthly event files of one folder, in order."""
    files = sorted((project / "data" / folder).glob("events_*.csv"))
    assert len(files) >= 36  # three years and more, one file per month
    return pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)


def _email(project: Path) -> pd.DataFrame:
    return _monthly(project, "email")


def _weeks(ts: pd.Series, start: str) -> np.ndarray:
    return (
        (pd.to_datetime(ts, utc=True) - pd.Timestamp(start, tz="UTC")).dt.total_seconds() / 604800
    ).to_numpy()


@pytest.fixture(scope="module")
def lapsed(simulated_shop) -> tuple[Path, pd.DataFrame, dict[str, str], str]:
    """People who dropped out well inside the history, and the CRM number of each person."""
    project, _ = simulated_shop
    people = _truth(project, "people")
    records = _truth(project, "records")
    crm = records[records.system == "crm"].drop_duplicates("person_id")
    ref = dict(zip(crm.source_id, crm.person_id, strict=True))
    start = _config(project)["start"]
    return project, people.set_index("person_id"), ref, start


def test_engagement_falls_before_dropout(lapsed) -> None:
    project, people, ref, start = lapsed
    email = _email(project)
    email = email[email.mailing.str.startswith("NL-")]
    email["person"] = email.contact_id.map(ref)
    email["to_death"] = people.death_week.reindex(email.person).to_numpy() - _weeks(
        email.event_time, start
    )
    died = np.isfinite(email.to_death)
    sends = email[(email.event == "send") & died]
    opens = email[(email.event == "open") & died]

    def rate(lo: float, hi: float) -> float:
        s = sends[(sends.to_death >= lo) & (sends.to_death < hi)]
        o = opens[(opens.to_death >= lo) & (opens.to_death < hi)]
        return len(o) / len(s)

    early, late, after = rate(26, 200), rate(0, 6), rate(-200, -4)
    assert late < 0.75 * early and after < 0.5 * early, (early, late, after)


def test_support_tickets_rise_before_churn(lapsed) -> None:
    project, people, ref, start = lapsed
    tickets = pd.read_csv(project / "data" / "support" / "tickets.csv")
    person = tickets.customer.map(ref).to_numpy()
    to_death = people.death_week.reindex(person).to_numpy() - _weeks(tickets.opened, start)
    died = people[np.isfinite(people.death_week) & (people.death_week > people.first_week + 30)]
    late = np.sum((to_death >= 0) & (to_death < 12)) / (12 * len(died))
    early = np.sum((to_death >= 20) & (to_death < 30)) / (10 * len(died))
    assert late > 2 * early, (early, late)


def test_unsubscribes_become_consent_withdrawals(simulated_shop) -> None:
    project, _ = simulated_shop
    email = _email(project)
    consents = pd.read_csv(project / "data" / "crm" / "consents.csv")
    unsubscribed = set(email[email.event == "unsubscribe"].contact_id)
    withdrawn = consents[(consents.purpose == "marketing") & (consents.status == "withdrawn")]
    assert unsubscribed == set(withdrawn.customer)
    granted = set(
        consents[(consents.purpose == "marketing") & (consents.status == "granted")].customer
    )
    assert unsubscribed <= granted
    # Nobody is sent a newsletter after unsubscribing.
    last_unsub = email[email.event == "unsubscribe"].groupby("contact_id").event_time.max()
    sends = email[(email.event == "send") & email.mailing.str.startswith("NL-")]
    late = (
        sends.event_time.to_numpy() > last_unsub.reindex(sends.contact_id).fillna("9999").to_numpy()
    )
    assert not late.any()


def test_anonymous_browsing_can_be_stitched_through_logins(simulated_shop) -> None:
    project, _ = simulated_shop
    web = _monthly(project, "web")
    cookies = _truth(project, "cookies").set_index("anonymous_id").person_id
    records = _truth(project, "records")
    account_person = records[records.system == "webshop"].set_index("source_id").person_id
    assert set(web.cookie_id) == set(cookies.index)
    logged = web.dropna(subset=["user_id"])
    # Every login belongs to the cookie's true owner.
    assert (
        logged.user_id.map(account_person).to_numpy()
        == cookies.reindex(logged.cookie_id).to_numpy()
    ).all()
    per_cookie = (
        web.assign(known=web.user_id.notna()).groupby("cookie_id").known.agg(["any", "all"])
    )
    mixed = per_cookie["any"] & ~per_cookie["all"]
    assert mixed.mean() > 0.2  # anonymous history that a later login links to a person
    assert (~per_cookie["any"]).mean() > 0.1  # and cookies that never log in


def test_seasonality_is_visible_in_the_written_orders(simulated_shop) -> None:
    project, _ = simulated_shop
    orders = _truth(project, "orders")
    start = pd.Timestamp(_config(project)["start"])
    day = start + pd.to_timedelta(np.floor(orders.week * 7), unit="D")
    per_day = day.value_counts().sort_index()
    idx = per_day.index
    run_up = per_day[(idx.month == 12) & (idx.day >= 14) & (idx.day <= 22)].mean()
    autumn = per_day[((idx.month == 10) & (idx.day >= 15)) | ((idx.month == 11) & (idx.day <= 15))]
    assert run_up > 1.4 * autumn.mean()  # the weeks before Christmas
    by_weekday = per_day.groupby(per_day.index.day_of_week).mean()
    assert by_weekday[5] > 1.2 * by_weekday[1]  # Saturday busier than Tuesday
