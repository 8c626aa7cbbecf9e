"""Lift, CUPED, corrections, sample-ratio and balance checks, and power: on the Hillstrom
e-mail experiment (published per-arm outcomes) and on data with a known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from custintel.measure.lift import Metric, balance, cuped, lift_table, sample_ratio
from custintel.measure.power import detectable, sample_size
from custintel.measure.roi import costs, roi

from .conftest import SHARED_DATA

HILLSTROM = SHARED_DATA / "hillstrom.csv"
PUBLISHED = {  # arm: (n, visit, conversion, spend per customer), MineThatData 2008
    "Mens E-Mail": (21_307, 0.1828, 0.0125, 1.42),
    "Womens E-Mail": (21_387, 0.1514, 0.0088, 1.08),
    "No E-Mail": (21_306, 0.1062, 0.0057, 0.65),
}


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    if not HILLSTROM.exists():
        pytest.skip(f"{HILLSTROM} is absent (CI always has it)")
    return pd.read_csv(HILLSTROM)


@pytest.fixture(scope="module")
def table(hillstrom: pd.DataFrame) -> pd.DataFrame:
    metrics = [
        Metric("visit", "proportion", covariate="history"),
        Metric("conversion", "proportion"),
        Metric("spend", "mean", covariate="history"),
    ]
    return lift_table(hillstrom, metrics, arm="segment", control="No E-Mail")


def test_per_arm_outcomes_are_exactly_as_published(table: pd.DataFrame) -> None:
    for arm, (n, visit, conversion, spend) in PUBLISHED.items():
        if arm == "No E-Mail":
            rows = table[(table.metric == "visit") & ~table.cuped]
            assert (rows.n_control == n).all()
            assert rows.mean_control.iloc[0] == pytest.approx(visit, abs=5e-5)
            continue
        raw = table[(table.arm == arm) & ~table.cuped].set_index("metric")
        assert raw.loc["visit", "n_treated"] == n
        assert raw.loc["visit", "mean_treated"] == pytest.approx(visit, abs=5e-5)
        assert raw.loc["conversion", "mean_treated"] == pytest.approx(conversion, abs=5e-5)
        assert raw.loc["spend", "mean_treated"] == pytest.approx(spend, abs=5e-3)


def test_each_email_arm_lifts_with_intervals_matching_an_independent_computation(
    hillstrom: pd.DataFrame, table: pd.DataFrame
) -> None:
    control = hillstrom[hillstrom.segment == "No E-Mail"]
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        treated = hillstrom[hillstrom.segment == arm]
        raw = table[(table.arm == arm) & ~table.cuped].set_index("metric")
        for metric in ("visit", "conversion"):
            low, high = confint_proportions_2indep(
                treated[metric].sum(),
                len(treated),
                control[metric].sum(),
                len(control),
                method="wald",
                compare="diff",
            )
            assert raw.loc[metric, "low"] == pytest.approx(low, abs=1e-9)
            assert raw.loc[metric, "high"] == pytest.approx(high, abs=1e-9)
            _, p = proportions_ztest(
                [treated[metric].sum(), control[metric].sum()], [len(treated), len(control)]
            )
            assert raw.loc[metric, "p_value"] == pytest.approx(p, rel=1e-6)
            assert raw.loc[metric, "p_value"] < 1e-3  # both arms work on both
        cm = CompareMeans(DescrStatsW(treated.spend), DescrStatsW(control.spend))
        low, high = cm.tconfint_diff(usevar="unequal")
        assert raw.loc["spend", "low"] == pytest.approx(low, rel=1e-6)
        assert raw.loc["spend", "high"] == pytest.approx(high, rel=1e-6)
        assert raw.loc["spend", "p_value"] == pytest.approx(
            cm.ttest_ind(usevar="unequal")[1], rel=1e-6
        )
    mens = table[(table.arm == "Mens E-Mail") & ~table.cuped].set_index("metric")
    # Published: 18.28 % against 10.62 % visits, 1.25 % against 0.57 % conversions.
    assert mens.loc["visit", "lift"] == pytest.approx(0.0766, abs=1e-4)
    assert mens.loc["conversion", "lift"] == pytest.approx(0.0068, abs=1e-4)
    assert mens.loc["visit", "relative_low"] < mens.loc["visit", "relative_lift"]
    assert (table.correction[~table.cuped] == "holm").all()
    assert (table.p_adjusted >= table.p_value - 1e-15).all()


def test_cuped_narrows_the_interval_and_keeps_the_estimate(table: pd.DataFrame) -> None:
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        rows = table[(table.arm == arm) & (table.metric == "visit")].set_index("cuped")
        raw, adj = rows.loc[False], rows.loc[True]
        assert adj.variance_reduction > 0
        assert adj.high - adj.low < raw.high - raw.low
        assert abs(adj.lift - raw.lift) < (raw.high - raw.low) / 4


def test_cuped_on_a_strong_covariate_shrinks_variance_by_rho_squared() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=50_000)
    y = 0.8 * x + 0.6 * rng.normal(size=50_000)  # correlation 0.8
    _, theta, reduction = cuped(y, x)
    assert theta == pytest.approx(0.8, abs=0.02)
    assert reduction == pytest.approx(0.64, abs=0.02)


def test_bootstrap_and_welch_agree_on_skewed_revenue_and_cover_a_known_effect() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    arm = np.where(rng.random(n) < 0.5, "treatment", "control")
    buys = rng.random(n) < np.where(arm == "treatment", 0.06, 0.05)
    spend = np.where(buys, rng.lognormal(3.5, 1.0, n), 0.0)
    true = (0.06 - 0.05) * np.exp(3.5 + 0.5)
    frame = pd.DataFrame({"arm": arm, "spend": spend})
    w = lift_table(frame, [Metric("spend")], control="control").iloc[0]
    b = lift_table(frame, [Metric("spend")], control="control", bootstrap_rounds=2000).iloc[0]
    assert b.method == "bootstrap" and w.method == "welch"
    assert w.low < true < w.high and b.low < true < b.high
    assert (b.high - b.low) == pytest.approx(w.high - w.low, rel=0.15)


def test_no_control_is_named() -> None:
    frame = pd.DataFrame({"arm": ["a", "b"], "y": [1.0, 0.0]})
    with pytest.raises(ValueError, match="no control group"):
        lift_table(frame, [Metric("y")])


def test_sample_ratio_mismatch_and_balance_flag_a_broken_split() -> None:
    assert not sample_ratio(
        {"treatment": 9_020, "control": 980}, {"treatment": 0.9, "control": 0.1}
    )["mismatch"]
    assert sample_ratio({"treatment": 9_300, "control": 700}, {"treatment": 0.9, "control": 0.1})[
        "mismatch"
    ]
    rng = np.random.default_rng(1)
    pre = rng.poisson(2.0, 10_000).astype(float)
    fair = pd.DataFrame({"arm": np.where(rng.random(10_000) < 0.5, "t", "control"), "pre": pre})
    assert not balance(fair, ["pre"]).flagged.any()
    skewed = fair.assign(arm=np.where(pre > 2, "t", "control"))  # the heavy buyers treated
    assert balance(skewed, ["pre"]).flagged.all()


def test_power_matches_the_textbook_and_inverts() -> None:
    plan = sample_size(0.05, 0.005, power=0.8)
    # 5 % to 5.5 %: about 31,200 per group by the arcsine (Cohen's h) approximation.
    assert 31_000 < plan.n_treated < 31_500 and plan.n_control == plan.n_treated
    back = detectable(0.05, plan.n_treated, plan.n_control)
    assert back.mde == pytest.approx(0.005, rel=1e-3)
    uneven = sample_size(0.05, 0.005, control_share=0.1)
    assert uneven.total > plan.total and uneven.n_control < uneven.n_treated
    mean = sample_size(10.0, 1.0, kind="mean", sd=20.0)
    # d = 0.05: 2 * (1.96 + 0.84)^2 / 0.05^2 = about 6,280 per group.
    assert 6_200 < mean.n_treated < 6_400
    with pytest.raises(ValueError, match="standard deviation"):
        sample_size(10.0, 1.0, kind="mean")


def test_roi_carries_the_revenue_interval_through() -> None:
    contact, offer = costs(
        ["email"] * 600 + ["post"] * 400,
        ["a"] * 1_000,
        [1] * 40 + [0] * 960,
        {"email": 0.1, "post": 0.35},
        {"a": 5.0},
    )
    assert contact == pytest.approx(60 + 140) and offer == pytest.approx(200)
    r = roi(2.0, 1.0, 3.0, treated=1_000, margin=0.5, cost=contact + offer)
    assert r.incremental_revenue == 2_000 and r.cost == pytest.approx(400)
    assert r.net == pytest.approx(1_000 - 400)
    assert r.roi == pytest.approx(600 / 400)
    assert r.roi_low == pytest.approx((500 - 400) / 400)
    assert r.roi_high == pytest.approx((1_500 - 400) / 400)
