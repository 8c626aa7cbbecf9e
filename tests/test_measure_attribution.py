"""Attribution over aggregated paths: on a case small enough to work out by hand, and on
simulated journeys whose channels' true incremental effects are known."""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from custintel.measure.attribution import (
    RULES,
    calibrated,
    markov,
    model_shapley,
    rule_based,
    shapley,
    shares,
)
from custintel.measure.journeys import paths, sessions
from custintel.simulate.journeys import JourneyConfig, Journeys, simulate_journeys

# Five journeys: a then b converted; b alone converted once and ended once; a alone
# ended twice.
PATHS = pd.DataFrame(
    {"path": ["a>b", "b", "a"], "conversions": [1.0, 1.0, 0.0], "nulls": [0.0, 1.0, 2.0]}
)


@pytest.mark.parametrize(
    ("rule", "a", "b"),
    [("first", 1.0, 1.0), ("last", 0.0, 2.0), ("linear", 0.5, 1.5), ("position", 0.5, 1.5)],
)
def test_rules_share_the_conversions_as_defined(rule: str, a: float, b: float) -> None:
    credit = rule_based(PATHS, rule).reindex(["a", "b"], fill_value=0.0)
    assert credit.to_dict() == pytest.approx({"a": a, "b": b})


def test_time_decay_favours_the_touch_nearest_the_conversion() -> None:
    credit = rule_based(PATHS, "time_decay", half_life=1.0)
    # a>b: weights 1/2 and 1, so a gets 1/3 of that conversion; b alone gets all of its.
    assert credit["a"] == pytest.approx(1 / 3) and credit["b"] == pytest.approx(5 / 3)


def test_markov_removal_effects_are_solved_exactly() -> None:
    credit, effects = markov(PATHS)
    # P(conversion) = 3/5 * 1/3 * 2/3 + 2/5 * 2/3 = 0.4 (two of five journeys); without
    # a: 2/5 * 2/3 = 4/15, a removal effect of 1/3; without b nothing converts.
    assert effects["a"] == pytest.approx(1 / 3) and effects["b"] == pytest.approx(1.0)
    assert credit["a"] == pytest.approx(0.5) and credit["b"] == pytest.approx(1.5)


def test_shapley_over_channel_sets_exact_and_sampled() -> None:
    # v({a}) = 0 of 2, v({b}) = 1 of 2, v({a, b}) = 2 of 5: phi_a = -0.05, phi_b = 0.45.
    credit = shapley(PATHS)
    assert credit["a"] == pytest.approx(-0.25) and credit["b"] == pytest.approx(2.25)
    sampled = shapley(PATHS, exact_limit=0, samples=4000, seed=1)
    assert sampled.to_dict() == pytest.approx(credit.to_dict(), abs=0.03)


def test_credit_always_sums_to_the_conversions() -> None:
    many = pd.DataFrame(
        {
            "path": ["s>e>d", "d", "s>s>d", "e", "a>s>e>d", "a", "s>a"],
            "conversions": [5.0, 9.0, 3.0, 1.0, 2.0, 0.0, 1.0],
            "nulls": [20.0, 40.0, 30.0, 60.0, 8.0, 90.0, 15.0],
        }
    )
    total = many.conversions.sum()
    for rule in ("first", "last", "linear", "position", "time_decay"):
        assert rule_based(many, rule).sum() == pytest.approx(total)
    assert markov(many)[0].sum() == pytest.approx(total)
    assert shapley(many).sum() == pytest.approx(total)


# --- journeys: from sessions to paths, and credit against a known truth ---------------

NULL_CHANNELS = ("affiliate", "organic", "direct")


def _paths(events: pd.DataFrame, **kw: Any) -> pd.DataFrame:
    """Unique paths of web events, aggregated by the warehouse code in DuckDB."""
    con = ibis.duckdb.connect()
    for col in ("customer_ref", "utm_source", "utm_medium", "session_id"):
        if col not in events:
            events = events.assign(**{col: pd.Series([None] * len(events), dtype="string")})
    return paths(sessions(con.create_table("events", events)), **kw).to_pandas()


def test_sessions_become_journeys_cut_at_purchases() -> None:
    ts = pd.Timestamp("2025-03-01")

    def ev(who: str, sid: str, day: float, medium: str | None, source: str | None = None,
           buy: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        row = {"anonymous_id": who, "session_id": sid, "event_ts": ts + pd.Timedelta(days=day),
               "event_type": "page_view", "utm_medium": medium, "utm_source": source}  # fmt: skip
        out = [row]
        if buy:
            out.append(
                row
                | {"event_type": "purchase", "event_ts": row["event_ts"] + pd.Timedelta(minutes=3)}
            )
        return out

    rows = [
        # u1: search, then an untagged visit buys; then a newsletter visit that does not.
        *ev("u1", "a", 0, "CPC "), *ev("u1", "b", 2, None, buy=True), *ev("u1", "c", 5, "Email"),
        # u2: a display touch 40 days before the purchase falls out of the 30-day lookback;
        # a source without a medium is a referral.
        *ev("u2", "d", 0, "display"), *ev("u2", "e", 40, None, "blog.example"),
        *ev("u2", "f", 41, "organic", "google", buy=True),
    ]  # fmt: skip
    p = _paths(pd.DataFrame(rows)).set_index("path")
    assert p.to_dict("index") == {
        "paid_search>direct": {"conversions": 1.0, "nulls": 0.0},
        "email": {"conversions": 0.0, "nulls": 1.0},
        "referral>organic": {"conversions": 1.0, "nulls": 0.0},
    }
    short = _paths(pd.DataFrame(rows), max_touches=1).set_index("path")
    assert set(short.index) == {"direct", "email", "organic"}
    later = _paths(pd.DataFrame(rows), start=ts + pd.Timedelta(days=3))
    assert set(later.path) == {"email", "referral>organic"}


@pytest.fixture(scope="module")
def journeys_truth() -> tuple[Journeys, pd.DataFrame]:
    j = simulate_journeys(JourneyConfig(visitors=500_000), seed=4)
    return j, _paths(j.events)


def test_calibrated_attribution_recovers_the_true_incremental_shares(
    journeys_truth: tuple[Journeys, pd.DataFrame],
) -> None:
    j, p = journeys_truth
    truth = j.truth.set_index("channel").share
    assert set(truth[truth == 0].index) == set(NULL_CHANNELS)
    assert p.conversions.sum() == j.converted

    def error(credit: pd.Series) -> tuple[float, float]:
        s = shares(credit).reindex(truth.index, fill_value=0.0)
        return 100 * float((s - truth).abs().mean()), float(s[list(NULL_CHANNELS)].sum())

    cal = calibrated(p, j.experiments)
    err, null = error(cal.credit)
    assert err <= 2.0 and null <= 0.05, (err, null)
    # Every baseline is far off: they credit the channels people use on their way to buy.
    baselines = {r: rule_based(p, r) for r in RULES}
    baselines |= {"markov": markov(p)[0], "shapley": shapley(p), "model": cal.model_credit}
    for name, credit in baselines.items():
        e, n = error(credit)
        assert e > 3 * err and n > 0.10, (name, e, n)
    # Each measured lift covers its channel's true effect, mostly: at 95 % at most one of
    # six misses by chance in a run of this test.
    effect = j.truth.set_index("channel").effect
    exp = cal[cal.calibrated]
    covered = (exp.lift_low <= effect[exp.index]) & (effect[exp.index] <= exp.lift_high)
    assert covered.sum() >= len(exp) - 1
    # Credit intervals hold the credit.
    assert (exp.credit_low <= exp.credit).all() and (exp.credit <= exp.credit_high).all()


def test_model_shapley_splits_each_journeys_predicted_lift() -> None:
    many = pd.DataFrame(
        {
            "path": ["s>e>d", "d", "s>s>d", "e", "a>s>e>d", "a", "s>a"],
            "conversions": [50.0, 90.0, 30.0, 10.0, 20.0, 4.0, 10.0],
            "nulls": [200.0, 400.0, 300.0, 600.0, 80.0, 900.0, 150.0],
        }
    )
    table, params = model_shapley(many)
    channels = ["a", "d", "e", "s"]
    # Efficiency: per channel set, the credits add up to the set's predicted lift.
    m = table["mask"].to_numpy()
    x = (m[:, None] >> np.arange(4)) & 1
    a = params["intercept"]
    lift = 1 / (1 + np.exp(-(a + x @ params[channels].to_numpy()))) - 1 / (1 + np.exp(-a))
    assert table[channels].sum(axis=1).to_numpy() == pytest.approx(lift * table.journeys)
    # No experiment: the model's own credit, uncalibrated; base channels get none.
    cal = calibrated(many, None, base=("d",))
    assert cal.loc["d", "credit"] == 0 and not cal.calibrated.any()
    others = cal.drop(index="d")
    assert others.credit.to_numpy() == pytest.approx(others.model_credit.clip(lower=0).to_numpy())
    assert (others.model_credit < 0).any() and (others.credit > 0).any()
