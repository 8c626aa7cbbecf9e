"""The purchase generator against the closed forms of the model it claims to follow."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from custintel.simulate.population import PERSONAS, draw_people
from custintel.simulate.purchases import Calendar, draw_purchases

START = date(2023, 1, 2)  # a Monday


def _simulate(
    n: int, seed: int, *, seasonal: bool, days: int = 3 * 365, first_at_zero: bool = False
):
    rng = np.random.default_rng(seed)
    people = draw_people(n, rng)
    if first_at_zero:
        people["first_week"] = 0.0
    events, truth = draw_purchases(people, Calendar(START, days, seasonal=seasonal), rng)
    return people, events, truth


def test_same_seed_same_data() -> None:
    a = _simulate(2000, 11, seasonal=True)
    b = _simulate(2000, 11, seasonal=True)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    c = _simulate(2000, 12, seasonal=True)
    assert not a[1].equals(c[1])


def test_repeat_purchases_match_the_bgnbd_expectation() -> None:
    """E[X(t) | lam, p] = (1 - exp(-lam p t)) / p for repeat purchases in (0, t]."""
    people, events, _ = _simulate(40_000, 3, seasonal=False, days=2 * 365, first_at_zero=True)
    horizon = 52.0
    repeat = events[~events.is_first & (events.week <= horizon)]
    observed = repeat.groupby("person_id").size().reindex(people.person_id, fill_value=0)
    lam, p = people["lam"].to_numpy(), people["p"].to_numpy()
    expected = (1 - np.exp(-lam * p * horizon)) / p
    assert abs(observed.mean() / expected.mean() - 1) < 0.02
    for persona in PERSONAS:  # and per persona, within sampling error
        mask = (people.persona == persona.name).to_numpy()
        assert abs(observed[mask].mean() / expected[mask].mean() - 1) < 0.06, persona.name


def test_dropout_truth_is_consistent_with_the_events() -> None:
    _, events, truth = _simulate(20_000, 5, seasonal=True)
    repeats = (
        events[~events.is_first].groupby("person_id").size().reindex(truth.person_id, fill_value=0)
    )
    last = events.groupby("person_id").week.max().reindex(truth.person_id)
    dead = np.isfinite(truth.death_week.to_numpy())
    # A person who dropped out made exactly their repeat purchases, the last at death.
    assert (repeats.to_numpy()[dead] == truth.repeat_total.to_numpy()[dead]).all()
    assert np.allclose(last.to_numpy()[dead], truth.death_week.to_numpy()[dead])
    # Nobody alive at the end made more repeat purchases than their total.
    assert (repeats.to_numpy() <= truth.repeat_total.to_numpy()).all()
    assert 0.2 < dead.mean() < 0.8


def test_spend_follows_gamma_gamma_means() -> None:
    people, events, _ = _simulate(20_000, 9, seasonal=False)
    mean_spend = (people.spend_p / people.nu).to_numpy()[events.person_id.to_numpy()]
    assert abs((events.spend.to_numpy() / mean_spend).mean() - 1) < 0.02


def test_seasonality_is_visible_in_the_calendar() -> None:
    _, events, _ = _simulate(40_000, 13, seasonal=True)
    day = np.floor(events.week.to_numpy() * 7).astype(int)
    dates = pd.to_datetime(START) + pd.to_timedelta(day, unit="D")
    per_day = pd.Series(1, index=dates).groupby(level=0).size()
    per_day = per_day[per_day.index >= pd.Timestamp("2024-01-01")]  # after the ramp-up year
    december = per_day[(per_day.index.month == 12) & (per_day.index.day <= 24)].mean()
    assert december / per_day.mean() > 1.3
    by_weekday = per_day.groupby(per_day.index.day_of_week).mean()
    saturday_vs_tuesday = by_weekday[5] / by_weekday[1]
    assert saturday_vs_tuesday > 1.2 and saturday_vs_tuesday < 1.75
