"""The event files of a simulated shop: e-mail, consents, tickets, web and contacts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from custintel.simulate import engagement as eng
from custintel.simulate.journeys import CHANNELS as CHANNEL_SPECS
from custintel.simulate.output import Formatter, Ids, choice, lookup, per_person
from custintel.simulate.purchases import (
    CATEGORIES,
)

if TYPE_CHECKING:  # the settings live with `simulate`, which imports this module
    from custintel.simulate.writer import SimulationConfig


def write_email(
    fmt: Formatter,
    people: pd.DataFrame,
    subs: pd.DataFrame,
    campaign_truth: pd.DataFrame,
    death: np.ndarray,
    crm: Ids,
    emails: Ids,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Newsletter and campaign e-mail events, keyed by the CRM customer number."""
    open_rate = people["open_rate"].to_numpy()
    news = eng.newsletter_events(subs, death, open_rate, cfg.engagement, rng)
    parts = [news.assign(campaign=np.int8(-1))]
    ids = tuple(c.campaign_id for c in cfg.campaigns)
    for i, campaign in enumerate(cfg.campaigns):
        if campaign.channel != "email":
            continue
        ct = campaign_truth[
            (campaign_truth.campaign_id == campaign.campaign_id)
            & (campaign_truth.variant == "treatment")
        ]
        sent = eng.campaign_emails(
            ct.person_id.to_numpy(), campaign.week, death, open_rate, cfg.engagement, rng
        )
        parts.append(sent.assign(issue=np.int32(-1), campaign=np.int8(i)))
    names = ("person", "issue", "campaign", "event", "week")
    cols = {c: np.concatenate([p[c].to_numpy() for p in parts]) for c in names}
    del parts, news
    by_time = np.argsort(cols["week"], kind="stable")
    cols = {c: v[by_time] for c, v in cols.items()}
    labels, month_weeks = _months(cfg.start, cfg.total_weeks)
    bounds = np.searchsorted(cols["week"], month_weeks[1:])
    for label, lo, hi in zip(labels, np.r_[0, bounds], np.r_[bounds, by_time.size], strict=True):
        person = cols["person"][lo:hi]
        fmt.write(
            {
                "contact_id": crm.take(person),
                "address": emails.take(person),
                "issue": cols["issue"][lo:hi],
                "campaign": choice(np.maximum(cols["campaign"][lo:hi], 0), ids),
                "event": lookup(cols["event"][lo:hi], eng.EMAIL_EVENTS),
                "week": cols["week"][lo:hi],
            },
            "contact_id, address, CASE WHEN issue >= 0 THEN 'NL-' || "
            "lpad(CAST(issue AS VARCHAR), 4, '0') ELSE CAST(campaign AS VARCHAR) END AS mailing, "
            f"event, {fmt.ts('week')} AS event_time",
            out / "email" / f"events_{label}.csv",
        )
    return int(by_time.size)


def write_consents(
    fmt: Formatter,
    subs: pd.DataFrame,
    crm: Ids,
    join: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Consent history: e-mail marketing and profiling granted at sign-up, withdrawn later
    by unsubscribing (or, for profiling, at a random time)."""
    in_crm = ~crm.missing
    subscribed = subs.subscribed.to_numpy() & in_crm
    profiling = in_crm & (rng.random(join.size) < cfg.engagement.profiling_rate)
    withdraw = profiling & (rng.random(join.size) < cfg.engagement.profiling_withdrawal)
    withdraw_week = join + rng.random(join.size) * (cfg.total_weeks - join)
    unsub = subscribed & (subs.stop_reason.to_numpy() == "unsubscribe")
    stop = subs.stop_week.to_numpy() + 6 / (24 * 7)  # recorded a few hours after the click
    blocks = [  # (who, when, email channel?, marketing purpose?, granted?)
        (subscribed, join, True, True, True),
        (profiling, join, False, False, True),
        (unsub, stop, True, True, False),
        (withdraw, withdraw_week, False, False, False),
    ]
    person = np.concatenate([np.flatnonzero(b[0]) for b in blocks])
    week = np.concatenate([b[1][b[0]] for b in blocks])
    flags = np.repeat(np.array([b[2:] for b in blocks]), [int(b[0].sum()) for b in blocks], axis=0)
    order = np.argsort(week, kind="stable")
    person, week, flags = person[order], week[order], flags[order]
    frame = pd.DataFrame(
        {
            "customer": crm.take(person),
            "channel": lookup(flags[:, 0].astype(int), ("all", "email")),
            "purpose": lookup(flags[:, 1].astype(int), ("profiling", "marketing")),
            "status": lookup(flags[:, 2].astype(int), ("withdrawn", "granted")),
            "week": week,
        }
    )
    fmt.write(
        frame,
        f"customer, channel, purpose, status, {fmt.ts('week')} AS recorded_at",
        out / "crm" / "consents.csv",
    )
    return len(frame)


def write_tickets(
    fmt: Formatter,
    crm: Ids,
    join: np.ndarray,
    death: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> int:
    """Support tickets of CRM customers, rising as engagement fades."""
    start = np.where(crm.missing, np.inf, join)
    t = eng.support_tickets(start, death, cfg.total_weeks, cfg.engagement, rng)
    t = t.iloc[np.argsort(t.week.to_numpy(), kind="stable")].reset_index(drop=True)
    resolved = t.resolved_week.to_numpy() < cfg.total_weeks
    frame = pd.DataFrame(
        {
            "ticket": np.arange(len(t)),
            "customer": crm.take(t.person.to_numpy()),
            "week": t.week.to_numpy(),
            "via": lookup(t.channel.to_numpy(), eng.TICKET_CHANNELS),
            "topic": lookup(t.category.to_numpy(), eng.TICKET_CATEGORIES),
            "state": lookup(resolved.astype(int), ("open", "closed")),
            "resolved_week": np.where(resolved, t.resolved_week.to_numpy(), np.nan),
            "csat": np.where(resolved, t.satisfaction.to_numpy(), -1),
        }
    )
    fmt.write(
        frame,
        "'T' || lpad(CAST(ticket AS VARCHAR), 8, '0') AS ticket, customer, "
        f"{fmt.ts('week')} AS opened, CAST(via AS VARCHAR) AS via, "
        f"CAST(topic AS VARCHAR) AS topic, state, {fmt.ts('resolved_week')} AS closed, "
        "CASE WHEN csat < 0 THEN '' ELSE CAST(csat AS VARCHAR) END AS csat",
        out / "support" / "tickets.csv",
    )
    return len(frame)


WEB_EVENTS = ("login", "product_view", "add_to_cart", "purchase")


MINUTE = 1 / (60 * 24 * 7)


def _months(start: date, total_weeks: float) -> tuple[list[str], np.ndarray]:
    """Labels (YYYY-MM) of the months the calendar touches and the week each begins."""
    labels, weeks = [], []
    month = date(start.year, start.month, 1)
    end = start + timedelta(weeks=total_weeks)
    while month < end:
        labels.append(f"{month:%Y-%m}")
        weeks.append((month - start).days / 7)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return labels, np.array(weeks)


# Where sessions come from. Buying sessions come more often by the address, a search or
# a coupon site, browsing ones more from ads; the shop's orders do not depend on it (the
# journeys simulator, simulate/journeys.py, is the one with causal channel effects).
SESSION_CHANNELS = CHANNEL_SPECS
UTM_SOURCES = tuple(ch.source or "" for ch in SESSION_CHANNELS)
UTM_MEDIUMS = tuple(ch.medium or "" for ch in SESSION_CHANNELS)
BUY_MIX = {"paid_search": .22, "paid_social": .05, "display": .04, "video": .03,
           "email": .10, "affiliate": .08, "organic": .18, "direct": .30}  # fmt: skip
BROWSE_MIX = {"paid_search": .15, "paid_social": .15, "display": .15, "video": .05,
              "email": .10, "affiliate": .05, "organic": .20, "direct": .15}  # fmt: skip


def _session_channels(buy: np.ndarray, seed: int) -> np.ndarray:
    """Each session's channel (index into SESSION_CHANNELS), from a generator of its own
    so the rest of the simulation is drawn exactly as without it."""
    rng = np.random.default_rng([seed, 7707])
    names = [ch.name for ch in SESSION_CHANNELS]
    p_buy = np.array([BUY_MIX[n] for n in names])
    p_browse = np.array([BROWSE_MIX[n] for n in names])
    k = len(names)
    out = rng.choice(k, size=buy.size, p=p_browse / p_browse.sum())
    out[buy] = rng.choice(k, size=int(buy.sum()), p=p_buy / p_buy.sum())
    return out.astype(np.int64)


def write_web(
    fmt: Formatter,
    people: pd.DataFrame,
    orders: pd.DataFrame,
    record_truth: pd.DataFrame,
    death: np.ndarray,
    out: Path,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[int, pd.DataFrame]:
    """Web-analytics events of tracked people, with anonymous cookies, one file per month.

    Each person uses one or more cookies. A purchase session (every online order of a
    tracked person) is logged in when the order is on an account; a browse session is
    logged in with ``login_share`` when the person has an account, else anonymous. So part
    of each cookie's history is anonymous and can be stitched through its logged-in
    sessions. The truth maps every cookie to its person. Sessions are drawn whole, then
    expanded into events a month at a time, which bounds memory.
    """
    e = cfg.engagement
    n = len(people)
    tracked = rng.random(n) < e.web_share
    account = per_person(record_truth, "webshop", n)
    account_ids = Ids(account)
    cookies_per = 1 + rng.poisson(e.cookies_mean, size=n)
    offset = np.concatenate([[0], np.cumsum(cookies_per)[:-1]])
    cookie_key = rng.integers(0, 2**62, size=int(cookies_per.sum()), dtype=np.int64)

    buy = orders[orders.online.to_numpy() & ~orders.is_return.to_numpy()]
    buy = buy[tracked[buy.person.to_numpy()]]
    browse = eng.web_sessions(
        tracked, people.first_week.to_numpy(), death, people.lam.to_numpy(), cfg.total_weeks, e, rng
    )
    nb = len(buy)
    s_person = np.concatenate([buy.person.to_numpy(), browse.person.to_numpy()])
    s_buy = np.arange(s_person.size) < nb
    s_category = np.concatenate(
        [buy.category.to_numpy(), rng.integers(0, len(CATEGORIES), size=len(browse))]
    ).astype(np.int64)
    logged = np.r_[buy.account.to_numpy() >= 0, np.zeros(len(browse), bool)]
    logged |= ~s_buy & ~pd.isna(account[s_person]) & (rng.random(s_person.size) < e.login_share)
    views = np.where(s_buy, 1, 1 + rng.poisson(0.7, size=s_person.size))
    # Events per session: [login] + views x product_view + (add_to_cart, purchase if buying).
    count = logged.astype(np.int64) + views + 2 * s_buy
    # Buying sessions end at the order time; browsing sessions start at the drawn time.
    s_week = np.concatenate([buy.week.to_numpy(), browse.week.to_numpy()])
    begin = np.where(s_buy, s_week - (count - 1) * 2 * MINUTE, s_week)
    s_cookie = offset[s_person] + rng.integers(0, cookies_per[s_person])
    s_product = s_category * 1000 + rng.integers(0, 200, size=s_person.size)
    s_channel = _session_channels(s_buy, cfg.seed)
    # Number sessions in time order, then expand them month by month.
    order = np.argsort(begin, kind="stable")
    s_person, s_category, logged, views, count, begin, s_cookie, s_product, s_channel = (
        a[order]
        for a in (
            s_person, s_category, logged, views, count, begin, s_cookie, s_product, s_channel
        )
    )  # fmt: skip
    labels, month_weeks = _months(cfg.start, cfg.total_weeks)
    bounds = np.searchsorted(begin, month_weeks[1:])
    total = 0
    for label, lo, hi in zip(labels, np.r_[0, bounds], np.r_[bounds, begin.size], strict=True):
        sessions = np.arange(lo, hi)
        c = count[sessions]
        session = np.repeat(sessions, c)
        k = np.arange(session.size) - np.repeat(np.cumsum(c) - c, c)
        lead = logged[session].astype(np.int64)
        v = views[session]
        kind = np.where(k < lead, 0, np.where(k < lead + v, 1, np.where(k == lead + v, 2, 3)))
        week = begin[session] + k * 2 * MINUTE
        # Views wander over the category; the cart and the purchase hold the session's product.
        wander = s_category[session] * 1000 + rng.integers(0, 200, size=session.size)
        product = np.where(kind >= 2, s_product[session], np.where(kind == 0, -1, wander))
        by_time = np.argsort(week, kind="stable")
        session = session[by_time]
        person = s_person[session]
        fmt.write(
            {
                "cookie": cookie_key[s_cookie[session]],
                "user": account_ids.take(person, logged[session]),
                "session": session,
                "week": week[by_time],
                "kind": lookup(kind[by_time], WEB_EVENTS),
                "product": product[by_time],
                "category": lookup(s_category[session], CATEGORIES),
                "utm_source": choice(s_channel[session], UTM_SOURCES),
                "utm_medium": choice(s_channel[session], UTM_MEDIUMS),
            },
            "printf('%016x', cookie) AS cookie_id, user AS user_id, "
            "'S' || lpad(CAST(session AS VARCHAR), 9, '0') AS session_id, "
            f"{fmt.ts('week')} AS ts, CAST(kind AS VARCHAR) AS event, "
            "CASE WHEN product < 0 THEN '/login' ELSE '/p/' || CAST(product AS VARCHAR) END "
            "AS page, CASE WHEN product >= 0 THEN 'P' || lpad(CAST(product AS VARCHAR), 5, '0') "
            "END AS product, CASE WHEN product >= 0 THEN CAST(category AS VARCHAR) END AS category, "
            "nullif(CAST(utm_source AS VARCHAR), '') AS utm_source, "
            "nullif(CAST(utm_medium AS VARCHAR), '') AS utm_medium",
            out / "web" / f"events_{label}.csv",
        )
        total += session.size
    owner = np.repeat(np.arange(n), cookies_per)
    used = np.zeros(cookie_key.size, dtype=bool)
    used[np.unique(s_cookie)] = True
    cookies = pd.DataFrame({"cookie_key": cookie_key[used], "person_id": owner[used]})
    cookies["anonymous_id"] = [f"{k:016x}" for k in cookies.pop("cookie_key")]
    return total, cookies


def write_contacts(
    fmt: Formatter,
    campaign_truth: pd.DataFrame,
    crm: Ids,
    out: Path,
    cfg: SimulationConfig,
) -> int:
    """Contact history of the past campaigns: treated and held-out customers alike."""
    ids = [c.campaign_id for c in cfg.campaigns]
    which = pd.Categorical(campaign_truth.campaign_id, categories=ids).codes.astype(np.int64)
    frame = pd.DataFrame(
        {
            "campaign": choice(which, tuple(ids)),
            "customer": crm.take(campaign_truth.person_id.to_numpy()),
            "channel": choice(which, tuple(c.channel for c in cfg.campaigns)),
            "week": np.array([c.week for c in cfg.campaigns], dtype=float)[which],
            "group": lookup(
                (campaign_truth.variant == "control").to_numpy().astype(int),
                ("treatment", "control"),
            ),
            "offer": choice(which, tuple(c.offer for c in cfg.campaigns)),
        }
    )
    fmt.write(
        frame,
        f'campaign, customer, channel, {fmt.ts("week")} AS sent, "group", offer',
        out / "marketing" / "contacts.csv",
    )
    return len(frame)
