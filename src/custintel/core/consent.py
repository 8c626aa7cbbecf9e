"""Consent: may we use or contact this customer, for this purpose, on this channel, now?

One answer for every consumer (training tables, scores, segments, features, campaigns,
the real-time service and governance), read from the consent history: records of
``(customer_id, ts, channel, purpose, status)`` where status is ``granted`` or
``withdrawn``, plus, for e-mail marketing, the unsubscribes of the e-mail platform.

The rules, in order:

1. Only records strictly before the moment asked about count (``at``; a date means
   midnight UTC starting it), so an answer as of a date never reads the future.
2. A record applies when its purpose is the one asked or ``all``, and, when a channel is
   asked, its channel is that one or ``all``. Profiling is about the data, not a channel:
   ask it without one, and every channel's profiling record applies.
3. The latest applicable record decides; a withdrawal and a grant at the same instant:
   the withdrawal wins.
4. With no applicable record the purpose's regime decides: ``opt_out`` (allowed until
   withdrawn, the default) or ``opt_in`` (denied until granted).

:func:`latest_status` (then :func:`withdrawn` or :func:`allowed`) answers for every
customer at once as Ibis expressions (they run in the warehouse); :func:`decide` answers for one customer from
plain records, with the reason, for the real-time service and "why" questions. Both
follow the same rules and a test holds them to each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

import ibis
import ibis.expr.types as ir

Purpose = Literal["profiling", "marketing", "analytics", "third_party"]
Channel = Literal["email", "sms", "phone", "post", "ads", "push", "web"]
Regime = Literal["opt_out", "opt_in"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
CHANNELS: tuple[str, ...] = get_args(Channel)
ALL = "all"


def cutoff_seconds(at: dt.date | dt.datetime) -> int:
    """Epoch seconds of the moment asked about; a date is midnight UTC starting it."""
    if isinstance(at, dt.datetime):
        moment = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC)
    return int(moment.timestamp())


def _check(purpose: str, channel: str | None) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; the purposes are {', '.join(PURPOSES)}")
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; the channels are {', '.join(CHANNELS)}")


def latest_status(
    consents: ir.Table,
    at: dt.date | dt.datetime | None,
    purpose: str,
    channel: str | None = None,
    *,
    unsubscribes: ir.Table | None = None,
    column: str = "withdrawn",
) -> ir.Table:
    """``customer_id`` and ``column`` (default ``withdrawn``) for every customer with an
    applicable record before ``at``: whether the latest one is a withdrawal.

    ``at=None`` reads every record (the tables are already cut at the moment asked).
    ``unsubscribes`` (``customer_id, ts``) count as withdrawals of e-mail marketing.
    Written as "the latest time, then any withdrawal at it" rather than with a window
    function: the same answer, and the SQL the feature set's version was first hashed on.
    """
    _check(purpose, channel)
    c = consents
    if channel is not None:
        c = c.filter(c.channel.isin((channel, ALL)) & c.purpose.isin((purpose, ALL)))
    else:
        c = c.filter(c.purpose.isin((purpose, ALL)))
    if at is not None:
        c = c.filter(c.ts.epoch_seconds() < cutoff_seconds(at))
    c = c.select("customer_id", "ts", withdrawn=c.status == "withdrawn")
    both = c
    if unsubscribes is not None and purpose == "marketing" and channel in (None, "email"):
        u = unsubscribes
        if at is not None:
            u = u.filter(u.ts.epoch_seconds() < cutoff_seconds(at))
        both = u.select("customer_id", "ts", withdrawn=ibis.literal(True)).union(c)
    latest = both.group_by("customer_id").aggregate(last_ts=both.ts.max())
    at_last = both.join(latest, "customer_id").filter(lambda t: t.ts == t.last_ts)
    # a withdrawal and a grant at the same instant: the withdrawal wins
    return at_last.group_by("customer_id").aggregate(
        **{column: at_last.withdrawn.cast("int64").max() == 1}
    )


def withdrawn(status: ir.Table) -> ir.Table:
    """``customer_id`` of everyone whose latest applicable record is a withdrawal, from
    :func:`latest_status`."""
    return status.filter(status.withdrawn).select("customer_id")


def allowed(customers: ir.Table, status: ir.Table, *, regime: Regime = "opt_out") -> ir.Table:
    """``customers`` (any table with ``customer_id``) with a boolean ``consent_allowed``
    column: the answer of the rules for each of them, from :func:`latest_status`."""
    s = status.select(_cid=status.customer_id, _withdrawn=status.withdrawn)
    j = customers.left_join(s, customers.customer_id == s._cid)
    default = ibis.literal(regime == "opt_out")
    verdict = ibis.cases((j._withdrawn.isnull(), default), else_=~j._withdrawn)
    return j.select(*[j[c] for c in customers.columns], consent_allowed=verdict)


@dataclass(frozen=True)
class Record:
    """One consent record of one customer."""

    ts: dt.datetime
    channel: str
    purpose: str
    status: str  # granted | withdrawn


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    decided_by: Record | None = None


def decide(
    records: Iterable[Record],
    at: dt.date | dt.datetime,
    purpose: str,
    channel: str | None = None,
    *,
    regime: Regime = "opt_out",
) -> Decision:
    """The answer for one customer from their records, with the reason in words.

    Unsubscribes go in as ``Record(ts, "email", "marketing", "withdrawn")``.
    """
    _check(purpose, channel)
    limit = cutoff_seconds(at)
    applicable = [
        r
        for r in records
        if r.purpose in (purpose, ALL)
        and (channel is None or r.channel in (channel, ALL))
        and cutoff_seconds(r.ts) < limit
    ]
    what = purpose + (f" on {channel}" if channel else "")
    if not applicable:
        if regime == "opt_out":
            return Decision(True, f"no {what} record: allowed until withdrawn (opt-out)")
        return Decision(False, f"no {what} record: denied until granted (opt-in)")
    last = max(applicable, key=lambda r: (cutoff_seconds(r.ts), r.status == "withdrawn"))
    when = last.ts.isoformat()
    if last.status == "withdrawn":
        return Decision(False, f"{what} withdrawn ({last.channel}/{last.purpose}) at {when}", last)
    return Decision(True, f"{what} granted ({last.channel}/{last.purpose}) at {when}", last)
