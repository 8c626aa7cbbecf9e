"""Past campaigns with randomized holdouts and a known, heterogeneous treatment effect.

Each campaign targets the customers the CRM knew at its send date. A random share is held
out (the control group) and the rest are contacted. For the ``effect_weeks`` after the
send, a contacted person who is still alive buys at ``multiplier`` times their usual rate:

- most people respond positively, more so when they like discounts (``discount_affinity``,
  visible in their order history as a discount share) and when they have not bought for
  a while (recency, visible too);
- "sleeping dogs", frequent recent buyers (``sleeping_dog_orders`` or more purchases in the
  13 weeks before the send), are put off: their multiplier is ``1 - annoyance``, so each
  purchase they would have made in the window is lost with probability ``annoyance``.

Extra purchases are added uniformly in operational time over the window; lost purchases
are removed. Neither changes the latent dropout process. The truth per targeted person is
the expected change in purchases in the window, for the treated and the held-out alike, so
tests can compare what the holdout reveals with what is true: ``alive * (multiplier - 1) *
lam * window`` for responders, and ``alive * (multiplier - 1) * (1 - exp(-lam * p *
window)) / p`` (the share lost of the purchases expected in the window) for sleeping dogs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from custintel.simulate.purchases import Calendar


class Campaign(BaseModel):
    """One past campaign: when, how, to whom, and how strongly it works."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign_id: str
    week: float = Field(description="send date in weeks from the start of history")
    channel: str = "email"
    offer: str = ""
    holdout: float = Field(default=0.2, ge=0.01, le=0.99)
    lift: float = Field(default=1.0, ge=0, description="scale of the positive response")
    annoyance: float = Field(default=0.4, ge=0, le=1, description="loss among sleeping dogs")


DEFAULT_CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign(campaign_id="CMP-2023-AUT", week=14, channel="email", offer="10% off", holdout=0.1),
    Campaign(
        campaign_id="CMP-2024-SPR",
        week=38,
        channel="sms",
        offer="free delivery",
        holdout=0.3,
        lift=0.6,
        annoyance=0.5,
    ),
    Campaign(
        campaign_id="CMP-2024-WIN",
        week=70,
        channel="email",
        offer="20% off",
        holdout=0.5,
        lift=1.5,
    ),
    Campaign(
        campaign_id="CMP-2025-SPR",
        week=92,
        channel="post",
        offer="loyalty points x2",
        holdout=0.2,
        lift=0.8,
        annoyance=0.3,
    ),
)


class Response(BaseModel):
    """How a campaign's effect depends on what can be observed about a customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect_weeks: float = Field(default=4.0, gt=0, description="weeks the effect lasts")
    sleeping_dog_orders: int = Field(default=6, ge=1, description="13-week orders that annoy")
    lapsed_weeks: float = Field(default=8.0, ge=0, description="recency that strengthens it 1.5x")


def multipliers(
    discount_affinity: np.ndarray,
    recent_orders: np.ndarray,
    weeks_since_last: np.ndarray,
    campaign: Campaign,
    response: Response,
) -> np.ndarray:
    """The rate multiplier in the window for each targeted person if contacted."""
    positive = campaign.lift * (discount_affinity + 0.25)
    positive = positive * np.where(weeks_since_last > response.lapsed_weeks, 1.5, 1.0)
    sleeping = recent_orders >= response.sleeping_dog_orders
    return np.where(sleeping, 1.0 - campaign.annoyance, 1.0 + positive)


def potential_outcomes(
    lam: np.ndarray, p: np.ndarray, alive: np.ndarray, m: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases in the window without the contact and with it, for people at a
    send date. Extras arrive at (m - 1) * lam whatever the dropout; a lost purchase is
    one of the base purchases in the window, whose mean given alive is
    (1 - e^-lam p t) / p."""
    base = alive * (1.0 - np.exp(-lam * p * window)) / p
    effect = np.where(m >= 1.0, alive * (m - 1.0) * lam * window, (m - 1.0) * base)
    return base, base + effect


def run_campaigns(
    people: pd.DataFrame,
    events: pd.DataFrame,
    death_week: np.ndarray,
    reachable_until: np.ndarray,
    calendar: Calendar,
    campaigns: tuple[Campaign, ...],
    response: Response,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply each campaign to the purchase events; return the new events and the truth.

    ``events`` must hold person_id (equal to the row of ``people``), week, op_week,
    is_first and spend. The truth has one row per targeted person and campaign: variant,
    alive, multiplier, expected_effect and the observables the effect depends on.
    """
    cal_w, op_w = calendar.operational()
    lam = people["lam"].to_numpy()
    dropout = people["p"].to_numpy()
    first_week = people["first_week"].to_numpy()
    affinity = people["discount_affinity"].to_numpy()
    n = len(people)
    truths = []
    for campaign in sorted(campaigns, key=lambda c: c.week):
        w = campaign.week
        start, stop = np.interp([w, w + response.effect_weeks], cal_w, op_w)
        window = stop - start
        target = np.flatnonzero((first_week < w) & (reachable_until > w))
        treated = rng.random(target.size) >= campaign.holdout
        pid = events["person_id"].to_numpy()
        week = events["week"].to_numpy()
        before = (week < w) & (week >= w - 13)
        recent = np.bincount(pid[before], minlength=n)[target]
        last = pd.Series(week[week < w]).groupby(pid[week < w]).max()
        since = w - last.reindex(target).to_numpy()
        m = multipliers(affinity[target], recent, since, campaign, response)
        alive = death_week[target] > w
        y0, y1 = potential_outcomes(lam[target], dropout[target], alive, m, window)
        expected = y1 - y0
        truths.append(
            pd.DataFrame(
                {
                    "campaign_id": campaign.campaign_id,
                    "person_id": people["person_id"].to_numpy()[target],
                    "variant": np.where(treated, "treatment", "control"),
                    "alive": alive,
                    "recent_orders_13w": recent,
                    "weeks_since_last_order": since,
                    "multiplier": m,
                    "expected_effect": expected,
                }
            )
        )
        # Lost purchases of treated sleeping dogs.
        who = np.zeros(n, dtype=bool)
        who[target[treated]] = True
        keep_prob = np.ones(n)
        keep_prob[target] = np.minimum(m, 1.0)
        in_window = (week >= w) & (week < w + response.effect_weeks) & who[pid]
        lost = in_window & (rng.random(pid.size) >= keep_prob[pid])
        # Extra purchases of treated responders, uniform over the window in operational time.
        gain = target[treated]
        extra_mean = (alive * np.maximum(m - 1.0, 0.0) * lam[target] * window)[treated]
        count = rng.poisson(extra_mean)
        owner = np.repeat(gain, count)
        op = start + rng.random(owner.size) * window
        nu = people["nu"].to_numpy()[owner]
        extra = pd.DataFrame(
            {
                "person_id": people["person_id"].to_numpy()[owner],
                "week": np.interp(op, op_w, cal_w),
                "op_week": op,
                "is_first": False,
                "spend": np.round(rng.gamma(people["spend_p"].to_numpy()[owner], 1.0 / nu), 2),
            }
        )
        events = pd.concat([events[~lost], extra], ignore_index=True)
    events = events.sort_values(["person_id", "op_week"], kind="stable", ignore_index=True)
    return events, pd.concat(truths, ignore_index=True)
