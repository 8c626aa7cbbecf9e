"""Anonymous to known: a cookie or device id becomes a customer's when a logged-in event
ties it to one.

Web events carry an ``anonymous_id`` always and a ``customer_ref`` (the web-shop account)
when the visitor was logged in. Through ``identity.customer_map`` each logged-in event
names a customer; a device seen logged in as exactly one customer is that customer's,
with all its events, the anonymous ones before the login included. A device logged in as
several customers (a shared family tablet) is a conflict: it is kept apart, assigned to
nobody, and reported. Written as Ibis expressions, so it runs in the warehouse (DuckDB
or Spark) over all web events.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir


def devices(web: ir.Table, customer_map: ir.Table) -> ir.Table:
    """``identity.devices``: one row per anonymous id with its customer and status."""
    cmap = customer_map.select("source", "source_id", "customer_id")
    logged = web.filter(web.customer_ref.notnull())
    named = logged.join(cmap, [logged.source == cmap.source, logged.customer_ref == cmap.source_id])
    owners = named.group_by("anonymous_id").aggregate(
        customers=named.customer_id.nunique(), owner=named.customer_id.min()
    )
    stats = web.group_by("anonymous_id").aggregate(
        events=web.count(),
        logged_in_events=web.customer_ref.count(),
        first_seen=web.event_ts.min(),
        last_seen=web.event_ts.max(),
    )
    joined = stats.left_join(owners, "anonymous_id")
    status = ibis.cases(
        (joined.customers == 1, "stitched"),
        (joined.customers > 1, "conflict"),
        else_="anonymous",
    )
    return joined.select(
        anonymous_id=joined.anonymous_id,
        customer_id=ibis.ifelse(joined.customers == 1, joined.owner, ibis.null(str)),
        status=status,
        customers=joined.customers.fill_null(0),
        events=joined.events,
        logged_in_events=joined.logged_in_events,
        first_seen=joined.first_seen,
        last_seen=joined.last_seen,
    )
