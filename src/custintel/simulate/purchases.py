"""Purchases of the simulated people: a BG/NBD process with seasonality, Gamma-Gamma spend.

While alive, a person buys as a Poisson process with rate ``lam`` per week; after each
repeat purchase they drop out with probability ``p`` (so their number of repeat purchases
is Geometric(p)). Seasonality (a weekly pattern and holiday peaks) bends time rather than
thinning events: the process runs in *operational* weeks, and a day's length in
operational weeks is its seasonal multiplier. This keeps the BG/NBD structure exact in
operational time, so tests can check the generator against the closed forms, while the
calendar shows busy weekends and a December peak.

Vectorised over people: all gaps of a round are drawn at once, with a loop only over
rounds (people with many purchases need several).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

WEEKDAY_PATTERN = (0.9, 0.85, 0.9, 0.95, 1.1, 1.25, 1.05)  # Monday .. Sunday
HOLIDAY_PEAKS = (  # (month, day, half-width in days, extra multiplier at the peak)
    (11, 28, 4, 1.5),  # Black Friday week
    (12, 18, 10, 1.0),  # the run-up to Christmas
    (1, 3, 4, 0.4),  # January sales
)
ROUND = 64  # gaps drawn per person and round


@dataclass(frozen=True)
class Calendar:
    """Days of the simulation and how long each is in operational weeks."""

    start: date
    days: int
    seasonal: bool = True

    def multipliers(self) -> np.ndarray:
        """Relative buying intensity of each day, mean 1 over the whole calendar."""
        if not self.seasonal:
            return np.ones(self.days)
        dates = [self.start + timedelta(days=i) for i in range(self.days)]
        m = np.array([WEEKDAY_PATTERN[d.weekday()] for d in dates])
        for month, day, width, extra in HOLIDAY_PEAKS:
            for year in range(self.start.year - 1, self.start.year + self.days // 365 + 2):
                peak = (date(year, month, day) - self.start).days
                offset = np.arange(self.days) - peak
                m = m * (1 + extra * np.clip(1 - np.abs(offset) / width, 0, None))
        return m / m.mean()

    def operational(self) -> tuple[np.ndarray, np.ndarray]:
        """Calendar weeks and operational weeks at each day boundary (for interpolation)."""
        calendar_weeks = np.arange(self.days + 1) / 7.0
        operational_weeks = np.concatenate([[0.0], np.cumsum(self.multipliers())]) / 7.0
        return calendar_weeks, operational_weeks


def draw_purchases(
    people: pd.DataFrame, calendar: Calendar, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every purchase of every person within the calendar, and each person's truth.

    Returns ``(events, truth)``. ``events``: person_id, week (calendar weeks since the
    start), op_week (operational weeks), is_first, spend. ``truth``: person_id,
    repeat_total (repeat purchases the person would make with no end of time) and
    death_week (calendar week of the purchase after which they drop out; inf when that
    lies beyond the calendar).
    """
    cal_w, op_w = calendar.operational()
    end = op_w[-1]
    n = len(people)
    lam = people["lam"].to_numpy()
    start = np.interp(people["first_week"].to_numpy(), cal_w, op_w)
    remaining = rng.geometric(people["p"].to_numpy())  # repeat purchases until dropout
    repeat_total = remaining.copy()
    current = start.copy()
    death = np.full(n, np.inf)
    owners, times = [np.arange(n)], [start]
    active = np.flatnonzero(current < end)
    while active.size:
        k = np.minimum(remaining[active], ROUND)
        owner = np.repeat(active, k)
        gaps = rng.exponential(1.0, size=owner.size) / lam[owner]
        cum = np.cumsum(gaps)
        first_of_group = np.concatenate([[0], np.cumsum(k)[:-1]])
        t = (
            np.repeat(current[active], k)
            + cum
            - np.repeat(cum[first_of_group] - gaps[first_of_group], k)
        )
        keep = t < end
        owners.append(owner[keep])
        times.append(t[keep])
        last = t[np.cumsum(k) - 1]
        finished = remaining[active] == k
        death[active[finished & (last < end)]] = last[finished & (last < end)]
        current[active] = last
        remaining[active] -= k
        active = active[(remaining[active] > 0) & (current[active] < end)]
    owner = np.concatenate(owners)
    op_week = np.concatenate(times)
    is_first = np.zeros(owner.size, dtype=bool)
    is_first[:n] = True  # the first round of `times` holds every first purchase
    inside = op_week < end
    owner, op_week, is_first = owner[inside], op_week[inside], is_first[inside]
    order = np.lexsort((op_week, owner))
    owner, op_week, is_first = owner[order], op_week[order], is_first[order]
    nu = people["nu"].to_numpy()[owner]
    spend = rng.gamma(people["spend_p"].to_numpy()[owner], 1.0 / nu)
    events = pd.DataFrame(
        {
            "person_id": people["person_id"].to_numpy()[owner],
            "week": np.interp(op_week, op_w, cal_w),
            "op_week": op_week,
            "is_first": is_first,
            "spend": np.round(spend, 2),
        }
    )
    finite = np.isfinite(death)
    death_week = np.full(n, np.inf)
    death_week[finite] = np.interp(death[finite], op_w, cal_w)
    truth = pd.DataFrame(
        {
            "person_id": people["person_id"].to_numpy(),
            "repeat_total": repeat_total,
            "death_week": death_week,
        }
    )
    return events, truth


CATEGORIES = ("apparel", "shoes", "home", "beauty", "electronics", "toys", "garden", "books")
CHUNK = 2_000_000  # orders per chunk when drawing categories (bounds the n x k matrix)


def category_affinities(
    people: pd.DataFrame, favourites: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> np.ndarray:
    """Each person's probability of buying each category: a Dirichlet around the persona's
    favourites (three times as likely as the rest), so tastes differ within a persona."""
    base = np.ones((len(favourites), len(CATEGORIES)))
    names = list(favourites)
    for i, name in enumerate(names):
        for cat in favourites[name]:
            base[i, CATEGORIES.index(cat)] = 3.0
    base = base / base.sum(axis=1, keepdims=True) * 8.0  # concentration 8
    persona = pd.Categorical(people["persona"], categories=names).codes
    weights = rng.gamma(base[persona])
    return weights / weights.sum(axis=1, keepdims=True)


def order_details(
    events: pd.DataFrame, people: pd.DataFrame, affinity: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Channel, category, items and discount of each purchase, from the buyer's tastes.

    A purchase is online with the person's ``online_share``; it carries a discount with
    probability ``discount_affinity`` (10-40 % of the price); its category follows the
    person's affinities.
    """
    owner = events["person_id"].to_numpy()
    n = owner.size
    online = rng.random(n) < people["online_share"].to_numpy()[owner]
    category = np.empty(n, dtype=np.int8)
    cum = np.cumsum(affinity, axis=1)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        u = rng.random(hi - lo)
        category[lo:hi] = (u[:, None] > cum[owner[lo:hi]]).sum(axis=1).clip(max=len(CATEGORIES) - 1)
    discounted = rng.random(n) < people["discount_affinity"].to_numpy()[owner]
    rate = rng.uniform(0.1, 0.4, size=n)
    spend = events["spend"].to_numpy()
    return pd.DataFrame(
        {
            "online": online,
            "category": category,
            "quantity": 1 + rng.poisson(0.8, size=n),
            "discount": np.where(discounted, np.round(spend * rate / (1 - rate), 2), 0.0),
        }
    )


def draw_returns(
    events: pd.DataFrame, people: pd.DataFrame, rng: np.random.Generator
) -> np.ndarray:
    """Which purchases are (partly) returned: with the buyer's ``return_rate``."""
    owner = events["person_id"].to_numpy()
    return rng.random(owner.size) < people["return_rate"].to_numpy()[owner]
