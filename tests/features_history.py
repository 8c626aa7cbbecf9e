"""A tiny hand-made history whose features are worked out by hand in test_features.py.

As of 2025-01-31:
- A bought once (10 days before), was sent a held-out contact, unsubscribed then opted in.
- B has a profile and nothing else.
- C only returned something.
- D is known only through anonymous web events of a stitched device.
- E buys regularly, returns once, reads e-mails, calls support, was contacted, and has
  events on and after the as-of date that must not count.
- F's profile was created after the as-of date.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pandas as pd

from custintel.features.events import SCHEMAS, Events

AS_OF = dt.date(2025, 1, 31)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _table(name: str, rows: list[tuple]) -> ibis.Table:
    schema = ibis.schema(SCHEMAS[name])
    frame = pd.DataFrame(rows, columns=schema.names)
    return ibis.memtable(frame, schema=schema)


def order(
    cid: str,
    when: str,
    amount: str,
    cat: str,
    channel: str = "online",
    qty: int | None = 1,
    discount: str = "0",
) -> tuple:
    return (
        cid,
        ts(when),
        Decimal(amount),
        qty,
        Decimal(discount),
        Decimal(amount) < 0,
        channel,
        cat,
    )


ORDERS = [
    order("A", "2025-01-21 10:00", "100", "books", qty=2),
    order("C", "2025-01-10 12:00", "-30", "toys", channel="store"),
    order("E", "2024-01-15 09:00", "50", "toys", channel="store", discount="5"),
    order("E", "2024-12-20 18:00", "80", "books"),
    order("E", "2025-01-05 08:00", "20", "books", qty=None),
    order("E", "2025-01-25 08:00", "-20", "books"),
    order("E", "2025-01-30 23:59", "10", "toys", channel="app", qty=3),
    # on and after the as-of date: never in a feature, but in the labels
    order("E", "2025-01-31 00:00", "1000", "garden"),
    order("A", "2025-03-05 00:00", "40", "books"),
]
EMAILS = [
    ("E", ts("2024-12-01 09:00"), "send", "NL1"),
    ("E", ts("2025-01-10 09:00"), "send", "NL2"),
    ("E", ts("2025-01-11 09:00"), "open", "NL2"),
    ("E", ts("2025-01-11 09:05"), "click", "NL2"),
    ("E", ts("2025-01-20 09:00"), "unsubscribe", "NL2"),
    ("E", ts("2025-02-01 09:00"), "open", "NL2"),
    ("A", ts("2024-05-01 09:00"), "unsubscribe", "NL0"),
]
WEB = [
    ("D", ts("2025-01-20 10:00"), "product_view", "s1"),
    ("D", ts("2025-01-20 10:01"), "product_view", "s1"),
    ("D", ts("2025-01-20 10:02"), "add_to_cart", "s1"),
    ("D", ts("2025-01-28 20:00"), "product_view", "s2"),
    ("D", ts("2025-02-02 20:00"), "product_view", "s3"),
]
TICKETS = [
    ("E", ts("2024-12-01 10:00"), 4),
    ("E", ts("2025-01-15 10:00"), 2),
]
CONTACTS = [
    ("E", ts("2024-11-15 00:00"), "CMP1", "treatment"),
    ("A", ts("2025-01-02 00:00"), "CMP2", "control"),
]
CONSENTS = [
    ("E", ts("2024-01-01 00:00"), "email", "marketing", "granted"),
    ("A", ts("2024-06-01 00:00"), "email", "marketing", "granted"),
    ("B", ts("2025-02-05 00:00"), "email", "marketing", "withdrawn"),
    ("C", ts("2024-12-05 00:00"), "all", "profiling", "withdrawn"),
]
PROFILES = [
    ("A", ts("2025-01-21 09:00")),
    ("B", ts("2024-06-01 00:00")),
    ("C", ts("2024-12-01 00:00")),
    ("D", ts("2024-11-01 00:00")),
    ("E", ts("2024-01-01 00:00")),
    ("F", ts("2025-02-10 00:00")),
]


def events(**replace: list[tuple]) -> Events:
    data = {
        "orders": ORDERS,
        "emails": EMAILS,
        "web": WEB,
        "tickets": TICKETS,
        "contacts": CONTACTS,
        "consents": CONSENTS,
        "profiles": PROFILES,
        **replace,
    }
    return Events(**{name: _table(name, rows) for name, rows in data.items()})
