"""Customer features as of a date: hand-worked expectations on a tiny history, labels,
point-in-time correctness as a property, and RFM/windows on the simulator against a plain
pandas computation."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custintel.features.definitions import Params, customer_features, feature_set
from custintel.features.labels import label_values, parse_label
from custintel.features.training import training_table
from tests.features_history import AS_OF, ORDERS, events, order

PARAMS = Params(categories=("books", "toys"))


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = customer_features(events(), AS_OF, PARAMS).execute()
    return frame.set_index("customer_id").sort_index()


def test_population_is_who_existed_before_the_date(table: pd.DataFrame) -> None:
    assert list(table.index) == ["A", "B", "C", "D", "E"]  # F arrived after
    assert list(table.columns) == ["as_of", *feature_set(PARAMS).names()]


def test_rfm(table: pd.DataFrame) -> None:
    e, a, c = table.loc["E"], table.loc["A"], table.loc["C"]
    assert e.days_since_last_purchase == 1  # 23:59 the day before
    assert (e.purchase_count, e.spend_total, e.returns_total, e.net_spend_total) == (
        4,
        160,
        20,
        140,
    )
    assert e.avg_order_value == 40
    assert e.tenure_days == 382  # 2024-01-15 to 2025-01-31, a leap year between
    assert (a.days_since_last_purchase, a.purchase_count, a.tenure_days) == (10, 1, 10)
    # only returns: no purchase, but the returned value counts
    assert c.purchase_count == 0 and c.returns_total == 30 and c.net_spend_total == -30
    assert pd.isna(c.days_since_last_purchase) and pd.isna(c.avg_order_value)
    # quintiles among the two buyers: E is best on all three
    assert (e.rfm_recency_score, e.rfm_frequency_score, e.rfm_monetary_score) == (5, 5, 5)
    assert a.rfm_code == "333" and e.rfm_code == "555"
    assert table.loc[["B", "C", "D"], "rfm_code"].isna().all()


def test_windows(table: pd.DataFrame) -> None:
    e = table.loc["E"]
    assert [e.orders_7d, e.orders_30d, e.orders_90d, e.orders_365d] == [1, 2, 3, 3]
    assert [e.spend_7d, e.spend_30d, e.spend_90d, e.spend_365d] == [10, 30, 110, 110]
    assert [e.items_7d, e.items_30d, e.items_90d] == [3, 4, 5]  # no quantity counts one
    assert [e.categories_7d, e.categories_30d] == [1, 2]
    assert [e.returns_7d, e.returns_30d] == [1, 1]
    assert table.loc["C", "returns_30d"] == 1 and table.loc["C", "orders_30d"] == 0
    counts = [c for c in table.columns if c.startswith(("orders_", "spend_")) and "trend" not in c]
    assert (table.loc[["B", "D"], counts] == 0).all().all()


def test_trends(table: pd.DataFrame) -> None:
    e, a = table.loc["E"], table.loc["A"]
    assert e.orders_trend_30d == pytest.approx(1 / 3)  # 2 now, 1 the month before
    assert e.spend_trend_30d == pytest.approx((30 - 80) / 110)
    assert e.orders_trend_90d == 1.0 and a.orders_trend_30d == 1.0
    assert table.loc["B", "orders_trend_30d"] == 0.0
    gaps = [340, 16, 25]  # between 2024-01-15, 2024-12-20, 2025-01-05, 2025-01-30
    assert e.interpurchase_days_mean == pytest.approx(np.mean(gaps))
    assert e.interpurchase_days_std == pytest.approx(np.std(gaps, ddof=1))
    assert e.days_overdue == pytest.approx(1 - np.mean(gaps))
    assert pd.isna(a.interpurchase_days_mean) and pd.isna(a.days_overdue)


def test_mix(table: pd.DataFrame) -> None:
    e, a = table.loc["E"], table.loc["A"]
    assert (e.online_share, e.store_share, e.discount_share) == (0.75, 0.25, 0.25)
    assert e.top_category == "books"  # two each; books has the higher spend
    assert (e.category_share_books, e.category_share_toys) == (0.5, 0.5)
    assert e.holiday_share == 0.25 and not e.holiday_buyer
    assert a.online_share == 1.0 and a.top_category == "books"
    assert pd.isna(table.loc["C", "online_share"])


def test_engagement(table: pd.DataFrame) -> None:
    e, d = table.loc["E"], table.loc["D"]
    assert [e.email_sends_30d, e.email_sends_90d, e.email_opens_30d, e.email_clicks_30d] == [
        1,
        2,
        1,
        1,
    ]
    w = lambda age: 2 ** (-age / 30)  # noqa: E731
    assert e.email_open_rate_decayed == pytest.approx(w(20) / (w(21) + w(61)))
    assert (e.days_since_last_open, e.days_since_last_click) == (20, 20)
    assert e.email_unsubscribed  # unsubscribed after granting
    assert not table.loc["A", "email_unsubscribed"]  # opted in again after unsubscribing
    assert not table.loc["B", "email_unsubscribed"]  # withdrew only after the date
    # only anonymous web events of a stitched device
    assert (d.web_sessions_30d, d.product_views_30d, d.cart_adds_30d) == (2, 3, 1)
    assert d.days_since_last_visit == 3 and d.purchase_count == 0
    assert (e.tickets_90d, e.days_since_last_ticket, e.ticket_satisfaction_mean) == (2, 16, 3)
    assert (e.campaign_contacts_90d, table.loc["A", "campaign_contacts_90d"]) == (1, 0)


def test_engagement_score_is_the_documented_combination(table: pd.DataFrame) -> None:
    score = pd.Series(0.0, index=table.index)
    for name, weight in PARAMS.engagement_weights.items():
        x = table[name].astype(float)
        part = (
            -np.log(x.fillna(365).clip(upper=365) + 1) if name.startswith("days") else np.log(x + 1)
        )
        sd = part.std(ddof=0)
        score += weight * ((part - part.mean()) / sd if sd > 0 else 0)
    assert np.allclose(table.engagement_score, score)
    assert table.engagement_score.idxmax() == "E"


def test_labels_read_only_the_horizon() -> None:
    ev = events()

    def lab(name: str) -> dict[str, float]:
        frame = label_values(ev, parse_label(name), AS_OF).execute()
        return dict(zip(frame.customer_id, frame.label, strict=True))

    assert lab("purchase_30d") == {"E": 1.0}  # E buys at midnight of the as-of date
    assert lab("churn_30d") == {"A": 1.0, "E": 0.0}  # C never bought: not a churn case
    assert lab("churn_60d") == {"A": 0.0, "E": 0.0}  # A comes back on 2025-03-05
    assert lab("spend_30d") == {"E": 1000.0}
    assert lab("new_category_30d") == {"A": 0.0, "E": 1.0}  # garden is new to E


def test_response_label_counts_purchases_after_each_contact() -> None:
    frame = label_values(events(), parse_label("response_CMP2"), AS_OF).execute()
    assert frame.set_index("customer_id").label.to_dict() == {"A": 1.0}  # 19 days later
    assert not frame.treated.iloc[0]  # A was held out
    # E's contact on 2024-11-15, next purchase 35 days later: outside a 30-day window
    frame = label_values(events(), parse_label("response_CMP1"), AS_OF).execute()
    assert frame.set_index("customer_id").label.to_dict() == {"E": 0.0}
    frame = label_values(events(), parse_label("response_CMP1", 40), AS_OF).execute()
    assert frame.set_index("customer_id").label.to_dict() == {"E": 1.0}
    # a purchase before the contact is not a response
    early = [o for o in ORDERS if o[0] != "A"] + [order("A", "2024-12-30", "5", "books")]
    frame = label_values(events(orders=early), parse_label("response_CMP2"), AS_OF).execute()
    assert frame.set_index("customer_id").label.to_dict() == {"A": 0.0}


def test_training_table_stacks_eligible_snapshots() -> None:
    snapshots = [dt.date(2025, 1, 1), AS_OF]
    frame = training_table(events(), parse_label("purchase_30d"), snapshots, PARAMS).execute()
    per = frame.groupby("as_of").customer_id.apply(sorted)
    # C withdrew profiling consent on 2024-12-05; A did not exist on 2025-01-01
    assert per.iloc[0] == ["B", "D", "E"] and per.iloc[1] == ["A", "B", "D", "E"]
    first = frame[frame.as_of == pd.Timestamp(2025, 1, 1)].set_index("customer_id")
    assert first.label.to_dict() == {"B": 0.0, "D": 0.0, "E": 1.0}
    assert first.loc["E", "orders_30d"] == 1  # features as of its own snapshot


def test_unknown_label_names_the_forms() -> None:
    with pytest.raises(ValueError, match="churn_<days>d"):
        parse_label("churn90")


# -- point in time --------------------------------------------------------------------------
CUTOFF = pd.Timestamp("2025-01-31", tz="UTC")
later = st.datetimes(min_value=dt.datetime(2025, 1, 31), max_value=dt.datetime(2025, 6, 30)).map(
    lambda d: pd.Timestamp(d, tz="UTC")
)


@st.composite
def future_edits(draw: st.DrawFn) -> dict[str, list[tuple]]:
    """Delete, change or add any events on or after the as-of date."""
    from tests import features_history as h

    out = {}
    for name in ("orders", "emails", "web", "tickets", "contacts", "consents"):
        rows = list(getattr(h, name.upper()))
        kept = [r for r in rows if r[1] < CUTOFF or draw(st.booleans())]
        for _ in range(draw(st.integers(0, 3))):
            who = draw(st.sampled_from("ABCDE"))
            when = draw(later)
            if name == "orders":
                amount = draw(st.sampled_from(["-15", "7", "250"]))
                row = order(who, str(when), amount, draw(st.sampled_from(["books", "toys", "x"])))
                kept.append((row[0], when, *row[2:]))
            elif name == "emails":
                kept.append(
                    (
                        who,
                        when,
                        draw(st.sampled_from(["send", "open", "click", "unsubscribe"])),
                        "N",
                    )
                )
            elif name == "web":
                kept.append((who, when, "product_view", draw(st.sampled_from(["s1", "s9"]))))
            elif name == "tickets":
                kept.append((who, when, draw(st.integers(1, 5))))
            elif name == "contacts":
                kept.append((who, when, "CMP9", "treatment"))
            else:
                kept.append(
                    (
                        who,
                        when,
                        "all",
                        draw(st.sampled_from(["marketing", "profiling"])),
                        "withdrawn",
                    )
                )
        out[name] = kept
    return out


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=future_edits())
def test_events_on_or_after_the_date_never_change_a_feature(
    table: pd.DataFrame, edits: dict
) -> None:
    changed = customer_features(events(**edits), AS_OF, PARAMS).execute()
    changed = changed.set_index("customer_id").sort_index()
    pd.testing.assert_frame_equal(changed, table)


def test_an_old_event_does_change_features(table: pd.DataFrame) -> None:
    """The property test above could pass by ignoring everything; this one cannot."""
    extra = [*ORDERS, order("B", "2025-01-30 12:00", "5", "toys")]
    changed = customer_features(events(orders=extra), AS_OF, PARAMS).execute()
    assert changed.set_index("customer_id").loc["B", "purchase_count"] == 1


# -- on the simulator, against plain pandas -------------------------------------------------
@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from custintel.core.config import FeaturesConfig
    from custintel.pipeline.project import Project, init_project
    from custintel.simulate.writer import SimulationConfig, simulate, simulation_config

    root = tmp_path_factory.mktemp("features")
    simulate(root / "data", SimulationConfig(customers=3000, seed=5))
    config = simulation_config("../data", "shop").model_copy(
        update={
            "features": FeaturesConfig(as_of=dt.date(2025, 6, 30), snapshots=[dt.date(2025, 3, 31)])
        }
    )
    init_project(root / "shop", config)
    with Project.open(root / "shop") as p:
        p.ingest()
        p.identity_resolve()
    return root / "shop"


def _pandas_rfm_windows(orders: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """RFM and windows written the plain way: one pass per window with pandas."""
    cut = pd.Timestamp(as_of, tz="UTC")
    o = orders[orders.ts < cut].copy()
    o["days_ago"] = (cut.normalize() - o.ts.dt.floor("D")).dt.days
    buys = o[~o.is_return]
    g = buys.groupby("customer_id")
    out = pd.DataFrame(
        {
            "purchase_count": g.size(),
            "spend_total": g.amount.sum(),
            "days_since_last_purchase": g.days_ago.min(),
            "tenure_days": g.days_ago.max(),
        }
    )
    for w in (7, 30, 90, 180, 365):
        inside = buys[buys.days_ago <= w]
        gw = inside.groupby("customer_id")
        out[f"orders_{w}d"] = gw.size()
        out[f"spend_{w}d"] = gw.amount.sum()
        out[f"categories_{w}d"] = gw.category.nunique()
        rets = o[o.is_return & (o.days_ago <= w)].groupby("customer_id").size()
        out = out.join(rets.rename(f"returns_{w}d"), how="outer")
    return out


def test_rfm_and_windows_match_pandas_on_the_simulator(simulated: Path) -> None:
    from custintel.pipeline.project import Project

    with Project.open(simulated) as p:
        result = p.features_build()
        built = p.warehouse.table("features", "customer").execute().set_index("customer_id")
        o = p.warehouse.sql(
            """SELECT m.customer_id, o.order_ts AS ts, CAST(o.amount AS DOUBLE) AS amount,
                      o.category, coalesce(o.is_return, false) OR o.amount < 0 AS is_return
               FROM clean.orders o JOIN identity.customer_map m
                 ON o.source = m.source AND o.customer_ref = m.source_id"""
        ).df()
    assert result.as_of == "2025-06-30" and result.rows == len(built) > 2000
    o["ts"] = pd.to_datetime(o.ts, utc=True)
    expected = _pandas_rfm_windows(o, dt.date(2025, 6, 30))
    # customers who opted out of profiling have no feature row (docs/consent.md)
    left_out = expected.index.difference(built.index)
    assert len(left_out) < 0.05 * len(expected)
    expected = expected.loc[expected.index.intersection(built.index)]
    assert expected.purchase_count.notna().sum() > 1500
    for col in expected.columns:
        mine = built[col].reindex(expected.index).astype(float)
        theirs = expected[col].astype(float)
        if col.startswith(("orders_", "spend_", "categories_", "returns_", "purchase_count")):
            theirs = theirs.fillna(0)
        assert np.allclose(mine, theirs, equal_nan=True), col
    # customers without any order: zero counts, no recency
    none = built.index.difference(expected.index)
    assert len(none) > 0 and (built.loc[none, "purchase_count"] == 0).all()


def test_churn_training_table_agrees_with_the_simulators_truth(simulated: Path) -> None:
    """Churners by the label are the people the simulator says bought nothing."""
    from custintel.pipeline.project import Project

    with Project.open(simulated) as p:
        result = p.features_training_set("churn_90d", [dt.date(2025, 6, 30)])
        frame = p.warehouse.table("features", "train_churn_90d").execute()
        cmap = p.warehouse.table("identity", "customer_map").execute()
    truth = pd.read_parquet(simulated.parent / "data" / "truth" / "records.parquet")
    people = pd.read_parquet(simulated.parent / "data" / "truth" / "people.parquet")
    person = cmap.merge(truth, left_on=["source", "source_id"], right_on=["system", "source_id"])
    person = person.groupby("customer_id").person_id.agg(lambda s: s.mode().iloc[0])
    frame["person_id"] = frame.customer_id.map(person)
    joined = frame.merge(people[["person_id", "purchases_next_90d"]], on="person_id")
    # a customer who bought in the truth may still be a churner by the label when the
    # purchase was anonymous; the reverse cannot happen
    bought = joined.purchases_next_90d > 0
    agree = ((joined.label == 0) == bought).mean()
    assert agree > 0.9, agree
    assert result.rows == len(frame) and math.isclose(
        frame.label.mean(), result.snapshots[0]["label_mean"], abs_tol=1e-4
    )


def test_label_past_the_data_fails_clearly(simulated: Path) -> None:
    from custintel.core.errors import StageError
    from custintel.pipeline.project import Project

    with Project.open(simulated) as p, pytest.raises(StageError, match="needs orders up to"):
        p.features_training_set("churn_365d", [dt.date(2026, 6, 30)])


def test_rebuilding_a_date_replaces_its_rows(simulated: Path) -> None:
    from custintel.pipeline.project import Project

    with Project.open(simulated) as p:
        first = p.features_build(dt.date(2025, 3, 31))
        again = p.features_build(dt.date(2025, 3, 31))
        t = p.warehouse.table("features", "customer")
        stored = int(t.filter(t.as_of == dt.date(2025, 3, 31)).count().execute())
    assert first.rows == again.rows == stored
    assert first.version == again.version


def test_decimal_amounts_stay_exact() -> None:
    rows = [order("A", "2025-01-10", "0.1", "books")] * 3
    frame = customer_features(events(orders=rows), AS_OF, PARAMS).execute()
    assert frame.set_index("customer_id").loc["A", "spend_total"] == float(Decimal("0.3"))


# -- stability ----------------------------------------------------------------------------------
def test_psi_is_zero_for_the_same_data_and_flags_a_shift() -> None:
    from custintel.stats import stability

    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 20_000),
            "kind": rng.choice(["a", "b", "c"], 20_000, p=[0.6, 0.3, 0.1]),
            "gappy": rng.random(20_000),
        }
    )
    same = ref.sample(frac=1.0, random_state=1, ignore_index=True)
    shifted = pd.DataFrame(
        {
            "amount": ref.amount * 1.8,  # a price rise: everyone moves up
            "kind": rng.choice(["a", "b", "c", "new"], 20_000, p=[0.3, 0.3, 0.1, 0.3]),
            "gappy": ref.gappy.where(rng.random(20_000) > 0.15),  # starts going missing
        }
    )
    cols = ["amount", "kind", "gappy"]
    assert (stability(ref, same, cols).psi.abs() < 1e-9).all()
    out = stability(ref, shifted, cols).set_index("feature")
    assert out.loc["amount", "flag"] == "unstable" and out.loc["kind", "flag"] == "unstable"
    # a feature that starts going missing: a new bin filling from nothing
    assert out.loc["gappy", "flag"] == "unstable" and out.loc["gappy", "missing_cur"] > 0.1
    # a small shift stays stable
    nudged = ref.assign(amount=ref.amount * 1.02)
    assert stability(ref, nudged, ["amount"]).flag.iloc[0] == "stable"


def test_stability_command_writes_the_report(simulated: Path) -> None:
    from typer.testing import CliRunner

    from custintel.cli.main import app

    runner = CliRunner()
    args = ["--project", str(simulated)]
    result = runner.invoke(app, ["features", "build", *args, "--as-of", "2025-06-30"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["features", "stability", *args, "--from", "2025-03-31", "--to", "2025-06-30", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["features"]) == len(feature_set(Params()).names()) + 8  # 8 categories
    psi = {f["feature"]: f["psi"] for f in data["features"]}
    # a quarter later, tenure moves for everyone; the RFM scores are re-ranked, not shifted
    assert psi["tenure_days"] > psi["rfm_monetary_score"]
    page = Path(data["report"]).read_text()
    assert "Stability 2025-03-31" in page and "PSI per feature" in page
    listed = json.loads(runner.invoke(app, ["features", "list", *args, "--json"]).stdout)
    assert all(f["description"] for f in listed) and {f["family"] for f in listed} == {
        "rfm",
        "windows",
        "trends",
        "mix",
        "engagement",
    }
    bad = runner.invoke(app, ["features", "build", *args, "--as-of", "30/06/2025"])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output


def test_orders_in_another_currency_need_a_rate(tmp_path: Path) -> None:
    from custintel.core.config import FeaturesConfig, ProjectConfig
    from custintel.core.errors import StageError
    from custintel.core.warehouse import Warehouse
    from custintel.features.build import events_for

    wh = Warehouse.open("duckdb://wh.duckdb", tmp_path)
    wh.sql(
        """CREATE TABLE clean.orders AS SELECT * FROM (VALUES
             ('shop', 'W1', TIMESTAMPTZ '2025-01-10 10:00:00+00', 10.00::DECIMAL(18,4), 'GBP',
              'online', 'books', 1, 0.00::DECIMAL(18,4), false),
             ('shop', 'W1', TIMESTAMPTZ '2025-01-11 10:00:00+00', 20.00::DECIMAL(18,4), 'EUR',
              'online', 'books', 1, 0.00::DECIMAL(18,4), false),
             ('shop', 'W1', TIMESTAMPTZ '2025-01-12 10:00:00+00', 30.00::DECIMAL(18,4), 'GBP',
              'online', 'books', 1, 0.00::DECIMAL(18,4), false))
           AS t(source, customer_ref, order_ts, amount, currency, channel, category, quantity,
                discount, is_return)"""
    )
    wh.sql(
        "CREATE TABLE identity.customer_map AS SELECT 'shop' AS source, 'W1' AS source_id, 'C1' AS customer_id"
    )
    with pytest.raises(StageError, match=r"EUR \(1 orders\).*reporting currency GBP"):
        events_for(wh, ProjectConfig())
    ev, currency = events_for(wh, ProjectConfig(features=FeaturesConfig(fx_rates={"EUR": 0.85})))
    frame = customer_features(ev, AS_OF, PARAMS).execute()
    assert currency == "GBP" and frame.spend_total.iloc[0] == pytest.approx(10 + 17 + 30)
    wh.close()
