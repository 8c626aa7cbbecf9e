"""Journeys from web-analytics sessions, as Ibis expressions (they run in the warehouse).

A session's channel comes from its ``utm_medium`` (and ``utm_source``): ``cpc`` is paid
search, ``email`` e-mail, no tag at all a direct visit. A person's sessions are cut into
journeys at each purchase: a journey is the sessions after the previous purchase up to
and including the one that bought (a conversion), or the sessions after the last purchase
(a journey that has not converted). Touches older than ``lookback_days`` before a
journey's last session are dropped, and only the last ``max_touches`` are kept. Journeys
with the same ordered channels are counted together into unique paths, which is what the
attribution methods take.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
from ibis import _
from ibis.expr.types import Table

from custintel.measure.attribution import SEPARATOR

# utm_medium (lower case) -> channel; a medium not listed here is its own channel.
DEFAULT_CHANNELS: dict[str, str] = {
    "cpc": "paid_search",
    "ppc": "paid_search",
    "paidsearch": "paid_search",
    "paid_search": "paid_search",
    "sem": "paid_search",
    "paid_social": "paid_social",
    "paidsocial": "paid_social",
    "social_paid": "paid_social",
    "social": "social",
    "display": "display",
    "cpm": "display",
    "banner": "display",
    "video": "video",
    "affiliate": "affiliate",
    "affiliates": "affiliate",
    "email": "email",
    "e-mail": "email",
    "newsletter": "email",
    "organic": "organic",
    "referral": "referral",
    "(none)": "direct",
    "none": "direct",
    "direct": "direct",
}


def channel_of(medium: ibis.Value, source: ibis.Value, mapping: dict[str, str]) -> ibis.Value:
    """The channel of a session from its medium (and source when there is no medium)."""
    m = medium.strip().lower()
    mapped = m.substitute(mapping, else_=m) if mapping else m
    untagged = m.isnull() | (m == "")
    s = source.strip().lower()
    return ibis.ifelse(
        untagged,
        ibis.ifelse(s.isnull() | (s == "") | (s == "(direct)"), "direct", "referral"),
        mapped,
    )


def sessions(
    events: Table, *, person: ibis.Value | None = None, mapping: dict[str, str] | None = None
) -> Table:
    """One row per session: person, session start, channel, whether it bought.

    ``person`` defaults to the logged-in customer reference, else the cookie.
    """
    mapping = DEFAULT_CHANNELS if mapping is None else mapping
    who = person if person is not None else events.customer_ref.coalesce(events.anonymous_id)
    e = events.mutate(
        person=who,
        session=events.session_id.coalesce(events.anonymous_id),
        channel=channel_of(events.utm_medium, events.utm_source, mapping),
        bought=(events.event_type == "purchase").cast("int8"),
    )
    return e.group_by(["person", "session"]).aggregate(
        start=_.event_ts.min(),
        channel=_.channel.first(order_by=_.event_ts),
        bought=_.bought.max(),
    )


def touches(
    s: Table,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    lookback_days: int = 30,
    max_touches: int = 20,
) -> Table:
    """The sessions that count as touches: each with its ``journey`` number and whether
    the journey ``converted``, for journeys whose last session falls in ``[start, end)``."""
    by_person = ibis.cumulative_window(group_by="person", order_by=["start", "session"])
    s = s.mutate(journey=_.bought.sum().over(by_person) - _.bought)
    whole = ibis.window(group_by=["person", "journey"])
    s = s.mutate(last=_.start.max().over(whole), converted=_.bought.max().over(whole))
    s = s.filter(_.start >= _.last - ibis.interval(days=lookback_days))
    newest = ibis.window(
        group_by=["person", "journey"], order_by=[ibis.desc("start"), ibis.desc("session")]
    )
    s = s.mutate(back=ibis.row_number().over(newest)).filter(_.back < max_touches)
    if start is not None:
        s = s.filter(_.last >= start)
    if end is not None:
        s = s.filter(_.last < end)
    return s


def paths(s: Table, **kw: Any) -> Table:
    """Unique paths with their ``conversions`` and ``nulls`` (journeys that did not buy),
    for journeys whose last session falls in ``[start, end)`` (see :func:`touches`)."""
    t = touches(s, **kw)
    j = t.group_by(["person", "journey"]).aggregate(
        path=_.channel.group_concat(SEPARATOR, order_by=[_.start, _.session]),
        converted=_.converted.max(),
    )
    return (
        j.group_by("path")
        .aggregate(
            conversions=_.converted.sum().cast("float64"),
            nulls=(1 - _.converted).sum().cast("float64"),
        )
        .order_by("path")
    )


def reach(s: Table, **kw: Any) -> Table:
    """People each channel touched in those journeys (``channel``, ``people``): what a
    lift per person reached is multiplied by."""
    t = touches(s, **kw)
    return t.group_by("channel").aggregate(people=_.person.nunique()).order_by("channel")
