"""Marketing journeys with a known truth: which channels cause conversions and how much.

Each visitor has a latent purchase intent. Every channel reaches a visitor with a
probability that rises with intent by its own slope: typing the address (direct), an
organic search or a coupon site (affiliate) mostly reach people who were going to buy,
while display or social reach them more evenly. Paid touches also bring people back
later by typing the address, so direct visits follow the ads. A visitor buys with
probability ``p0(intent) + sum of the effects of the channels that touched them``: the
effects add up, so a channel's incremental conversions are exactly its effect times the
visitors it touched, and the truth of each channel's share is known without Monte Carlo.
Three channels (affiliate, organic, direct) have no effect at all, yet sit late in the
journeys of buyers: every rule and path model gives them credit they did not earn.

Every channel a marketer can switch off (all but organic and direct) keeps a randomized
holdout: a share of the visitors it would have reached is not touched, as a lift study
or ghost-ads experiment does. Their counts are the experiments a calibrated attribution
uses, in the form a platform's lift study reports them.

The output is web-analytics sessions with ``utm_source`` / ``utm_medium`` (one purchase
session per buyer, at the end of the journey), so the journeys travel through the same
contract, ingest and path aggregation as a user's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ChannelSpec:
    """One channel: how it is tagged, whom it reaches, what it causes."""

    name: str
    source: str | None
    medium: str | None
    reach: float  # share of average-intent visitors it reaches
    intent_slope: float  # log-odds of reach per standard deviation of intent
    effect: float  # added purchase probability for a visitor it touches
    timing: float  # where in the journey its touches fall: 0 first, 1 last
    touches: float  # mean extra touches beyond the first
    holdout: float  # randomized share held out; 0 when it cannot be switched off


CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec("paid_search", "google", "cpc", 0.30, 0.8, 0.030, 0.60, 0.6, 0.15),
    ChannelSpec("paid_social", "facebook", "paid_social", 0.35, 0.2, 0.015, 0.30, 0.8, 0.15),
    ChannelSpec("display", "dv360", "display", 0.45, 0.3, 0.010, 0.20, 1.2, 0.15),
    ChannelSpec("video", "youtube", "video", 0.20, 0.1, 0.020, 0.25, 0.5, 0.15),
    ChannelSpec("email", "newsletter", "email", 0.25, 0.5, 0.025, 0.50, 0.7, 0.15),
    ChannelSpec("affiliate", "couponsite", "affiliate", 0.15, 1.5, 0.0, 0.90, 0.2, 0.15),
    ChannelSpec("organic", "google", "organic", 0.35, 1.0, 0.0, 0.50, 0.5, 0.0),
    ChannelSpec("direct", None, None, 0.30, 1.5, 0.0, 0.95, 0.5, 0.0),
)


@dataclass(frozen=True)
class JourneyConfig:
    """How many visitors, over what period; the channels and the baseline purchase rate."""

    visitors: int = 1_000_000
    start: date = date(2025, 1, 1)
    days: int = 90
    journey_days: float = 21.0  # a journey's touches spread over up to this many days
    base_rate: float = 0.03  # purchase probability of an average-intent untouched visitor
    intent_lift: float = 0.9  # baseline purchase log-rate per standard deviation of intent
    return_direct: float = 0.35  # log-odds of a direct visit added per paid channel touched
    channels: tuple[ChannelSpec, ...] = field(default=CHANNELS)


@dataclass(frozen=True)
class Journeys:
    """Sessions as web events, the channel experiments and the truth."""

    events: pd.DataFrame  # anonymous_id, session_id, event_ts, event_type, page, utm_*
    experiments: pd.DataFrame  # channel, treated, treated_conversions, control, control_...
    truth: pd.DataFrame  # channel, effect, touched, incremental, share
    converted: int
    visitors: int  # visitors with at least one session


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate_journeys(cfg: JourneyConfig | None = None, seed: int = 0) -> Journeys:
    """Draw the visitors, their touches and purchases (see the module docstring)."""
    cfg = cfg or JourneyConfig()
    rng = np.random.default_rng(seed)
    n, chans = cfg.visitors, cfg.channels
    intent = rng.standard_normal(n)
    reached = np.zeros((n, len(chans)), dtype=bool)
    touched = np.zeros_like(reached)
    paid = np.zeros(n)
    for j, ch in enumerate(chans):
        logit = np.log(ch.reach / (1 - ch.reach)) + ch.intent_slope * intent
        if ch.name == "direct":  # people come back by typing the address after ads
            logit = logit + cfg.return_direct * paid
        reached[:, j] = rng.random(n) < _sigmoid(logit)
        held = reached[:, j] & (rng.random(n) < ch.holdout)
        touched[:, j] = reached[:, j] & ~held
        if ch.holdout > 0:
            paid += touched[:, j]
    effect = np.array([ch.effect for ch in chans])
    baseline = cfg.base_rate * np.exp(cfg.intent_lift * intent - cfg.intent_lift**2 / 2)
    p = np.clip(np.minimum(baseline, 0.6) + touched @ effect, 0.0, 1.0)
    bought = rng.random(n) < p

    experiments = []
    for j, ch in enumerate(chans):
        if ch.holdout <= 0:
            continue
        t, c = reached[:, j] & touched[:, j], reached[:, j] & ~touched[:, j]
        experiments.append(
            {
                "channel": ch.name,
                "treated": int(t.sum()),
                "treated_conversions": int(bought[t].sum()),
                "control": int(c.sum()),
                "control_conversions": int(bought[c].sum()),
            }
        )
    counts = touched.sum(axis=0)
    incremental = effect * counts
    truth = pd.DataFrame(
        {
            "channel": [ch.name for ch in chans],
            "effect": effect,
            "touched": counts,
            "incremental": incremental,
            "share": incremental / incremental.sum(),
        }
    )
    events = _sessions(cfg, rng, intent, touched, bought)
    return Journeys(
        events=events,
        experiments=pd.DataFrame(experiments),
        truth=truth,
        converted=int(bought[touched.any(axis=1)].sum()),
        visitors=int(touched.any(axis=1).sum()),
    )


def _sessions(
    cfg: JourneyConfig,
    rng: np.random.Generator,
    intent: np.ndarray,
    touched: np.ndarray,
    bought: np.ndarray,
) -> pd.DataFrame:
    """One session per touch, in journey order; a buyer's purchase closes the last one.

    Visitors no channel touched leave no trace in web analytics and are dropped.
    """
    chans = cfg.channels
    person, channel = np.nonzero(touched)
    extra = rng.poisson(np.array([ch.touches for ch in chans])[channel])
    reps = 1 + extra
    person, channel = np.repeat(person, reps), np.repeat(channel, reps)
    timing = np.array([ch.timing for ch in chans])[channel]
    # Beta around the channel's place in the journey: early channels open, late ones close.
    position = rng.beta(1 + 6 * timing, 1 + 6 * (1 - timing))
    n = len(intent)
    start_day = rng.random(n) * max(cfg.days - cfg.journey_days, 1.0)
    length = cfg.journey_days * rng.uniform(0.2, 1.0, size=n)
    day = start_day[person] + position * length[person]
    order = np.lexsort((day, person))
    person, channel, day = person[order], channel[order], day[order]
    last = np.r_[person[1:] != person[:-1], True]
    purchase = last & bought[person]
    # A session is a landing page view; a purchase session adds the purchase a few
    # minutes later, so the sale sits in the session of the journey's last touch.
    session = np.arange(person.size)
    buy = np.flatnonzero(purchase)
    row = np.r_[session, buy]
    kind = np.r_[np.zeros(session.size, np.int8), np.ones(buy.size, np.int8)]
    seconds = np.round(day * 86400)[row] + 240.0 * kind
    order = np.lexsort((kind, row, seconds))
    row, kind, seconds = row[order], kind[order], seconds[order]
    t0 = pd.Timestamp(datetime.combine(cfg.start, datetime.min.time()))
    source = np.array([ch.source for ch in chans], dtype=object)[channel[row]]
    medium = np.array([ch.medium for ch in chans], dtype=object)[channel[row]]
    return pd.DataFrame(
        {
            "anonymous_id": np.char.add("V", np.char.zfill(person[row].astype(str), 8)),
            "session_id": np.char.add("J", np.char.zfill(row.astype(str), 9)),
            "event_ts": t0 + pd.to_timedelta(seconds, unit="s"),
            "event_type": np.where(kind == 1, "purchase", "page_view"),
            "page": np.where(kind == 1, "/checkout/done", "/"),
            "utm_source": source,
            "utm_medium": medium,
        }
    )


def write_journeys(j: Journeys, out) -> None:
    """The sessions as a web-events CSV and the experiments as a lift-study CSV."""
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    events = j.events.copy()
    events["event_ts"] = events.event_ts.dt.strftime("%Y-%m-%dT%H:%M:%S")
    events.to_csv(out / "web_events.csv", index=False)
    j.experiments.to_csv(out / "channel_experiments.csv", index=False)
    j.truth.to_csv(out / "truth_channel_effects.csv", index=False)
