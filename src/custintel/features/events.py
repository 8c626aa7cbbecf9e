"""The customer's events: the clean tables with each row's resolved ``customer_id``.

Features never read source ids. Every event table is joined to ``identity.customer_map``
on the source system and the row's ``customer_ref``; web events without a logged-in
customer belong to the customer their device is stitched to (``identity.devices``).
Guest orders and events of unknown people have no customer and are left out.

Each table carries ``ts`` (the event time, UTC) and ``day``: whole days since 1970-01-01
in UTC. Features compare days, so "as of D" means "before day D" on every backend, and
"days since" is a difference of day numbers (an order yesterday is 1 day ago).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import ibis
import ibis.expr.types as ir

SECONDS_PER_DAY = 86_400

SCHEMAS: dict[str, dict[str, str]] = {
    "orders": {
        "customer_id": "string",
        "ts": "timestamp('UTC')",
        "amount": "decimal(18, 4)",
        "quantity": "int64",
        "discount": "decimal(18, 4)",
        "is_return": "boolean",
        "channel": "string",
        "category": "string",
    },
    "emails": {
        "customer_id": "string",
        "ts": "timestamp('UTC')",
        "event_type": "string",
        "campaign_id": "string",
    },
    "web": {
        "customer_id": "string",
        "ts": "timestamp('UTC')",
        "event_type": "string",
        "session_id": "string",
    },
    "tickets": {"customer_id": "string", "ts": "timestamp('UTC')", "satisfaction": "int64"},
    "contacts": {
        "customer_id": "string",
        "ts": "timestamp('UTC')",
        "campaign_id": "string",
        "variant": "string",
    },
    "consents": {
        "customer_id": "string",
        "ts": "timestamp('UTC')",
        "channel": "string",
        "purpose": "string",
        "status": "string",
    },
    "profiles": {"customer_id": "string", "first_seen": "timestamp('UTC')"},
}
"""The columns every backend hands the feature definitions, whatever the sources were."""


LINKED: dict[str, tuple[str, dict[str, str]]] = {
    "emails": (
        "email_events",
        {"ts": "event_ts", "event_type": "event_type", "campaign_id": "campaign_id"},
    ),
    "tickets": ("support_tickets", {"ts": "created_at", "satisfaction": "satisfaction"}),
    "contacts": ("contacts", {"ts": "sent_at", "campaign_id": "campaign_id", "variant": "variant"}),
    "consents": (
        "consents",
        {"ts": "event_ts", "channel": "channel", "purpose": "purpose", "status": "status"},
    ),
}
"""Event tables that are a clean table's columns renamed, with the customer id attached:
event table -> (clean table, {column here: column there})."""


def day_number(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Whole UTC days since the epoch."""
    return (ts.epoch_seconds() // SECONDS_PER_DAY).cast("int64")


def as_of_day(as_of: dt.date) -> int:
    """The day number of midnight UTC starting ``as_of``: features read days below it."""
    return (as_of - dt.date(1970, 1, 1)).days


@dataclass(frozen=True)
class Events:
    """The resolved event tables (Ibis expressions, not yet filtered by date)."""

    orders: ir.Table
    emails: ir.Table
    web: ir.Table
    tickets: ir.Table
    contacts: ir.Table
    consents: ir.Table
    profiles: ir.Table

    @classmethod
    def unbound(cls) -> Events:
        """Schema-only tables: what the definitions compile against for their version."""
        return cls(**{name: ibis.table(schema, name=name) for name, schema in SCHEMAS.items()})

    def with_day(self) -> Events:
        """Every event table with its ``day`` number added."""
        return replace(
            self,
            **{
                name: getattr(self, name).mutate(day=day_number(getattr(self, name).ts))
                for name in SCHEMAS
                if name != "profiles"
            },
        )

    def before(self, day: int) -> Events:
        """Only what happened before day ``day``: the as-of cut every feature reads."""
        out = self.with_day()
        return replace(
            out,
            **{
                name: getattr(out, name).filter(getattr(out, name).day < day)
                for name in SCHEMAS
                if name != "profiles"
            },
        )


def _empty(name: str) -> ir.Table:
    """A typed empty table for a contract no source provides."""
    return ibis.memtable(ibis.schema(SCHEMAS[name]).to_pyarrow().empty_table())


def resolved(wh: object, rates: dict[str, float] | None = None) -> Events:
    """The warehouse's clean tables with customer ids (``wh`` is a core Warehouse).

    ``rates`` converts order amounts into the reporting currency (currency -> units of
    it); without rates, or with all of them 1, amounts are kept as they are."""
    cmap = wh.table("identity", "customer_map").select("source", "source_id", "customer_id")  # type: ignore[attr-defined]

    def clean(name: str) -> ir.Table | None:
        return wh.table("clean", name) if wh.exists("clean", name) else None  # type: ignore[attr-defined]

    def linked(t: ir.Table) -> ir.Table:
        return t.join(cmap, [t.source == cmap.source, t.customer_ref == cmap.source_id])

    out: dict[str, ir.Table] = {}
    if (t := clean("orders")) is not None:
        j = linked(t)

        def money(x: ir.NumericValue) -> ir.NumericValue:
            if not rates or all(r == 1.0 for r in rates.values()):
                return x.cast("decimal(18, 4)")
            rate = ibis.cases(*[(j.currency == c, r) for c, r in rates.items()], else_=None)
            return (x.cast("float64") * rate).round(4).cast("decimal(18, 4)")

        out["orders"] = j.select(
            customer_id=j.customer_id,
            ts=j.order_ts,
            amount=money(j.amount),
            quantity=j.quantity.cast("int64"),
            discount=money(j.discount),
            # A return is flagged, or recognisable by its negative amount.
            is_return=j.is_return.fill_null(False) | (j.amount < 0),
            channel=j.channel,
            category=j.category,
        )
    if (t := clean("web_events")) is not None:
        named = t.left_join(cmap, [t.source == cmap.source, t.customer_ref == cmap.source_id])
        named = named.select(
            "anonymous_id", "event_ts", "event_type", "session_id", ref_customer=named.customer_id
        )
        if wh.exists("identity", "devices"):  # type: ignore[attr-defined]
            dev = wh.table("identity", "devices").select(  # type: ignore[attr-defined]
                "anonymous_id", device_customer="customer_id"
            )
            named = named.left_join(dev, "anonymous_id")
            who = named.ref_customer.coalesce(named.device_customer)
        else:
            who = named.ref_customer
        named = named.mutate(customer_id=who)
        named = named.filter(named.customer_id.notnull())
        out["web"] = named.select(
            customer_id=named.customer_id,
            ts=named.event_ts,
            event_type=named.event_type,
            # A missing session id counts the device as one session.
            session_id=named.session_id.coalesce(named.anonymous_id),
        )
    for name, (table, columns) in LINKED.items():
        if (t := clean(table)) is not None:
            j = linked(t)
            types = SCHEMAS[name]
            out[name] = j.select(
                customer_id=j.customer_id,
                **{ours: j[theirs].cast(types[ours]) for ours, theirs in columns.items()},
            )
    if wh.exists("serving", "events"):  # type: ignore[attr-defined]
        # what the real-time service was told (core.eventlog): consent given or withdrawn
        # there counts as any other consent record, a contact made there as a contact
        api = wh.table("serving", "events")  # type: ignore[attr-defined]
        extra = {
            "consents": api.filter(api.kind == "consent").select(
                "customer_id", "ts", "channel", "purpose", "status"
            ),
            "contacts": api.filter(api.kind == "contact").select(
                "customer_id", "ts", "campaign_id", variant=ibis.literal("treatment")
            ),
        }
        for name, t in extra.items():
            t = t.cast(SCHEMAS[name])
            out[name] = out[name].union(t) if name in out else t
    if wh.exists("customer", "profile"):  # type: ignore[attr-defined]
        p = wh.table("customer", "profile")  # type: ignore[attr-defined]
        out["profiles"] = p.select("customer_id", "first_seen")
    for name in SCHEMAS:
        if name not in out:
            out[name] = _empty(name)
    return Events(**out)
