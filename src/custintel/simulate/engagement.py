"""E-mail, consent, support and web behaviour of the simulated people.

Engagement follows the latent lifetime: a person's engagement level is 1 while they are
far from dropping out, falls linearly over the ``decline_weeks`` before their last
purchase and stays at a floor afterwards. Opens, clicks and browsing are scaled by it;
support tickets rise as it falls. So the signals a churn model should find are there,
as in real data, before the purchases stop.

Every function is vectorised over people and returns numeric frames (weeks since the
start of history, integer codes); the writer formats them into each system's files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

EMAIL_EVENTS = ("send", "open", "click", "bounce", "unsubscribe")
TICKET_CATEGORIES = ("delivery", "returns", "billing", "product", "account")
TICKET_CHANNELS = ("email", "phone", "chat", "web")


class Engagement(BaseModel):
    """Knobs of e-mail, consent, support and web behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decline_weeks: float = Field(default=12.0, gt=0, description="engagement fade before dropout")
    floor: float = Field(default=0.15, ge=0, le=1, description="engagement level after dropout")
    subscribe_rate: float = Field(
        default=0.7, ge=0, le=1, description="opt in to e-mail at sign-up"
    )
    profiling_rate: float = Field(
        default=0.93, ge=0, le=1, description="allow profiling at sign-up"
    )
    profiling_withdrawal: float = Field(default=0.02, ge=0, le=1, description="later withdraw it")
    newsletter_every_weeks: float = Field(default=4.0, gt=0)
    bad_email_rate: float = Field(default=0.02, ge=0, le=1, description="addresses that bounce")
    unsubscribe_alive: float = Field(default=0.004, ge=0, le=1, description="per send")
    unsubscribe_dead: float = Field(default=0.02, ge=0, le=1, description="per send after dropout")
    click_given_open: float = Field(default=0.25, ge=0, le=1)
    ticket_rate: float = Field(default=0.004, ge=0, description="tickets per week when engaged")
    ticket_rise: float = Field(default=5.0, ge=0, description="extra ticket rate when disengaged")
    web_share: float = Field(
        default=0.5, ge=0, le=1, description="people whose browsing is tracked"
    )
    browse_per_purchase: float = Field(
        default=0.5, ge=0, description="browse sessions per rate unit"
    )
    cookies_mean: float = Field(default=0.6, ge=0, description="extra cookies per person (Poisson)")
    login_share: float = Field(default=0.3, ge=0, le=1, description="browse sessions logged in")


def level(week: np.ndarray, death_week: np.ndarray, cfg: Engagement) -> np.ndarray:
    """Engagement level at ``week`` of people who drop out after ``death_week``."""
    to_death = death_week - week
    fading = cfg.floor + (1 - cfg.floor) * to_death / cfg.decline_weeks
    return np.where(to_death < 0, cfg.floor, np.clip(fading, cfg.floor, 1.0))


def subscriptions(
    join_week: np.ndarray,
    death_week: np.ndarray,
    has_email: np.ndarray,
    total_weeks: float,
    cfg: Engagement,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Who subscribes to the newsletter at sign-up, and when each stops receiving it.

    ``stop_reason`` is ``unsubscribe``, ``bounce`` or empty (still subscribed at the end);
    ``sends`` counts newsletter issues received. Unsubscribing is a per-send hazard that is
    higher after dropout, so lapsed customers leave the list.
    """
    n = join_week.size
    every = cfg.newsletter_every_weeks
    grid = np.arange(0.0, total_weeks, every)
    first = np.searchsorted(grid, join_week, side="left")  # first issue after joining
    available = grid.size - first
    subscribed = has_email & (rng.random(n) < cfg.subscribe_rate)
    before_death = np.clip(np.searchsorted(grid, death_week, side="left") - first, 0, None)
    k_alive = rng.geometric(max(cfg.unsubscribe_alive, 1e-12), size=n)
    k_dead = rng.geometric(max(cfg.unsubscribe_dead, 1e-12), size=n)
    unsub_at = np.where(k_alive <= before_death, k_alive, before_death + k_dead)
    bounce = subscribed & (rng.random(n) < cfg.bad_email_rate)
    sends = np.where(bounce, np.minimum(2, available), np.minimum(unsub_at, available))
    sends = np.where(subscribed, sends, 0)
    reason = np.where(bounce, "bounce", np.where(unsub_at <= available, "unsubscribe", ""))
    reason = np.where(subscribed & (sends > 0), reason, "")
    last_send = np.where(sends > 0, grid[np.clip(first + sends - 1, 0, grid.size - 1)], np.nan)
    return pd.DataFrame(
        {
            "subscribed": subscribed,
            "first_issue": first,
            "sends": sends,
            "stop_reason": reason,
            "stop_week": np.where(reason != "", last_send, np.inf),
        }
    )


def newsletter_events(
    subs: pd.DataFrame,
    death_week: np.ndarray,
    open_rate: np.ndarray,
    cfg: Engagement,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Every send, open, click, bounce and unsubscribe of the newsletter issues.

    Returns person (row in the inputs), issue (number), event (index in
    :data:`EMAIL_EVENTS`) and week.
    """
    sends = subs["sends"].to_numpy()
    person = np.repeat(np.arange(sends.size, dtype=np.int32), sends)
    ordinal = (np.arange(person.size) - np.repeat(np.cumsum(sends) - sends, sends)).astype(np.int32)
    issue = subs["first_issue"].to_numpy().astype(np.int32)[person] + ordinal
    week = issue * cfg.newsletter_every_weeks + rng.uniform(0, 0.5, size=person.size) / 7
    reason = subs["stop_reason"].to_numpy()
    engaged = level(week, death_week[person], cfg)
    bounced = (reason == "bounce")[person]
    opened = ~bounced & (rng.random(person.size) < open_rate[person] * engaged)
    clicked = opened & (rng.random(person.size) < cfg.click_given_open * engaged)
    unsub = (ordinal == sends[person] - 1) & (reason == "unsubscribe")[person]
    del engaged, ordinal
    open_delay = rng.exponential(12.0, size=person.size) / (24 * 7)
    minute = 1 / (60 * 24 * 7)
    masks = (np.ones(person.size, dtype=bool), opened, clicked, bounced, unsub)
    delays = (0.0, open_delay, open_delay + 3 * minute, minute, open_delay + 5 * minute)
    return pd.DataFrame(
        {
            "person": np.concatenate([person[m] for m in masks]),
            "issue": np.concatenate([issue[m] for m in masks]),
            "event": np.repeat(np.arange(len(masks), dtype=np.int8), [m.sum() for m in masks]),
            "week": np.concatenate([(week + d)[m] for m, d in zip(masks, delays, strict=True)]),
        }
    )


def support_tickets(
    start_week: np.ndarray,
    death_week: np.ndarray,
    total_weeks: float,
    cfg: Engagement,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Tickets per person: a base rate that rises as engagement falls (drawn by thinning)."""
    peak = cfg.ticket_rate * (1 + cfg.ticket_rise)
    stop = np.minimum(total_weeks, death_week + cfg.decline_weeks)
    span = np.clip(stop - start_week, 0, None)
    count = rng.poisson(peak * span)
    person = np.repeat(np.arange(start_week.size), count)
    week = start_week[person] + rng.random(person.size) * span[person]
    engaged = level(week, death_week[person], cfg)
    rate = cfg.ticket_rate * (1 + cfg.ticket_rise * (1 - engaged) / (1 - cfg.floor or 1))
    keep = rng.random(person.size) < rate / peak
    person, week, engaged = person[keep], week[keep], engaged[keep]
    order = np.lexsort((week, person))
    person, week, engaged = person[order], week[order], engaged[order]
    m = person.size
    satisfaction = np.clip(np.round(1 + 4 * engaged + rng.normal(0, 0.8, size=m)), 1, 5)
    resolve_days = rng.exponential(2.0, size=m)
    return pd.DataFrame(
        {
            "person": person,
            "week": week,
            "category": rng.integers(0, len(TICKET_CATEGORIES), size=m),
            "channel": rng.integers(0, len(TICKET_CHANNELS), size=m),
            "resolved_week": week + resolve_days / 7,
            "satisfaction": satisfaction.astype(np.int64),
        }
    )


def web_sessions(
    tracked: np.ndarray,
    start_week: np.ndarray,
    death_week: np.ndarray,
    lam: np.ndarray,
    total_weeks: float,
    cfg: Engagement,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Browse sessions (no purchase) of tracked people, at a rate scaled by engagement."""
    rate = cfg.browse_per_purchase * lam * tracked
    span = np.clip(total_weeks - start_week, 0, None)
    count = rng.poisson(rate * span)
    person = np.repeat(np.arange(start_week.size), count)
    week = start_week[person] + rng.random(person.size) * span[person]
    keep = rng.random(person.size) < level(week, death_week[person], cfg)
    return pd.DataFrame({"person": person[keep], "week": week[keep]})


def campaign_emails(
    person: np.ndarray,
    week: float,
    death_week: np.ndarray,
    open_rate: np.ndarray,
    cfg: Engagement,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Send, open and click events of one campaign e-mail to ``person`` (rows); ``event``
    indexes :data:`EMAIL_EVENTS`."""
    m = person.size
    sent = week + rng.uniform(0, 0.5, size=m) / 7
    engaged = level(sent, death_week[person], cfg)
    opened = rng.random(m) < open_rate[person] * engaged
    clicked = opened & (rng.random(m) < cfg.click_given_open * engaged)
    delay = rng.exponential(12.0, size=m) / (24 * 7)
    return pd.concat(
        [
            pd.DataFrame({"person": person, "event": np.int8(0), "week": sent}),
            pd.DataFrame(
                {"person": person[opened], "event": np.int8(1), "week": (sent + delay)[opened]}
            ),
            pd.DataFrame(
                {
                    "person": person[clicked],
                    "event": np.int8(2),
                    "week": (sent + delay + 3 / (60 * 24 * 7))[clicked],
                }
            ),
        ],
        ignore_index=True,
    )
