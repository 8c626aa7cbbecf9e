"""Attribution over aggregated paths, on a case small enough to work out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from custintel.measure.attribution import markov, rule_based, shapley

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
