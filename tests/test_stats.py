"""The shared statistics against published values, simulated coverage and an independent
hand computation of the PSI."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from custintel.stats import (
    Thresholds,
    auc,
    bootstrap,
    difference_of_means,
    difference_of_proportions,
    proportion,
    stability,
)


def test_wilson_interval_matches_the_textbook() -> None:
    # Newcombe (1998), Table I: 81 of 263 gives 0.2553 to 0.3662 (Wilson, 95 %)
    ci = proportion(81, 263)
    assert ci.low == pytest.approx(0.2553, abs=1e-4) and ci.high == pytest.approx(0.3662, abs=1e-4)
    # and stays inside [0, 1] at the edges, where the plain normal interval does not
    zero = proportion(0, 20)
    assert zero.low == pytest.approx(0.0, abs=1e-12) and 0.1 < zero.high < 0.2


def test_difference_of_proportions_by_hand() -> None:
    d = difference_of_proportions(120, 1000, 90, 1000)
    se = np.sqrt(0.12 * 0.88 / 1000 + 0.09 * 0.91 / 1000)
    assert d.estimate == pytest.approx(0.03)
    assert d.low == pytest.approx(0.03 - 1.959964 * se, rel=1e-5)
    # pooled z = 0.03 / sqrt(0.105 * 0.895 * 0.002) = 2.186 -> p = 0.0288
    assert d.p_value == pytest.approx(0.0288, abs=5e-4)


def test_welch_and_bootstrap_intervals_cover_the_truth_about_95_percent() -> None:
    rng = np.random.default_rng(3)
    welch = boot = 0
    trials = 300
    for i in range(trials):
        a = rng.lognormal(1.0, 1.0, 400)  # skewed, like revenue
        b = rng.lognormal(1.0, 1.0, 300) + 0.5
        truth = -0.5
        w = difference_of_means(a, b)
        welch += w.low <= truth <= w.high
        if i < 100:  # the bootstrap is slower; fewer trials
            both = np.concatenate([a, b])
            group = np.r_[np.zeros(len(a)), np.ones(len(b))]
            ci, _ = bootstrap(
                lambda x, g: x[g == 0].mean() - x[g == 1].mean(), both, group, rounds=400, seed=i
            )
            boot += ci.low <= truth <= ci.high
    assert 0.92 <= welch / trials <= 0.98
    assert 0.88 <= boot / 100 <= 1.0


def test_auc_agrees_with_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.round(rng.random(2000) + 0.3 * y, 2)  # ties included
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def _psi_by_hand(ref: np.ndarray, cur: np.ndarray) -> float:
    """Deciles of the reference, counts by edge, floored shares: written out plainly."""
    edges = np.unique(np.r_[ref.min(), np.quantile(ref, np.arange(1, 10) / 10)])
    total = 0.0
    bounds = [-np.inf, *edges, np.inf]
    for lo, hi in itertools.pairwise(bounds):
        r = max(np.mean((ref >= lo) & (ref < hi)), 1e-4)
        c = max(np.mean((cur >= lo) & (cur < hi)), 1e-4)
        total += (c - r) * np.log(c / r)
    return total + 0.0  # no missing values: the missing bin adds nothing


def test_psi_in_the_warehouse_equals_the_hand_computation() -> None:
    rng = np.random.default_rng(5)
    ref = rng.gamma(2.0, 10.0, 30_000)
    cur = rng.gamma(2.2, 10.0, 20_000)
    out = stability(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), ["x"])
    assert out.psi.iloc[0] == pytest.approx(_psi_by_hand(ref, cur), abs=1e-6)


def test_thresholds_come_from_the_caller() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 10_000)})
    cur = pd.DataFrame({"x": rng.normal(0.25, 1, 10_000)})
    value = stability(ref, cur, ["x"]).psi.iloc[0]
    assert 0.03 < value < 0.1
    assert stability(ref, cur, ["x"]).flag.iloc[0] == "stable"
    strict = Thresholds(watch=0.01, unstable=0.03)
    assert stability(ref, cur, ["x"], strict).flag.iloc[0] == "unstable"


def test_values_on_the_edges_fall_in_the_same_bins_as_numpy() -> None:
    """Fractions like 1/11 sit exactly on quantile edges: the warehouse must place them
    as numpy does (a decimal literal or DuckDB's own quantile rounding would not)."""
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 12, 20_000) / 11
    cur = rng.integers(0, 14, 20_000) / 13
    edges = np.unique(np.r_[ref.min(), np.quantile(ref, np.arange(1, 10) / 10)])
    bounds = [-np.inf, *edges, np.inf]
    hand = [
        round(float(np.mean((ref >= lo) & (ref < hi))), 6) for lo, hi in itertools.pairwise(bounds)
    ]
    out = stability(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), ["x"]).iloc[0]
    assert out.ref_shares[:-1] == hand  # the last share is the missing bin
    cur_hand = [
        round(float(np.mean((cur >= lo) & (cur < hi))), 6) for lo, hi in itertools.pairwise(bounds)
    ]
    assert out.cur_shares[:-1] == cur_hand
