"""The customer feature set: every feature declared (name, business description, type,
family, windows) next to the Ibis expression that computes it.

Each family turns the events before the as-of day into one row per customer; the
:func:`customer_features` expression joins them onto the customers who existed before
that day. Everything is an Ibis expression, so the same definitions run in DuckDB and in
Spark, and nothing here reads an event on or after the as-of day: every family receives
``Events.before(day)`` only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from custintel.core import consent
from custintel.features.declarations import Params, category_column, feature_set
from custintel.features.events import Events, as_of_day, day_number

ONLINE_CHANNELS = ("online", "app")


# -- families -----------------------------------------------------------------------------------
def _f(x: ir.Value) -> ir.FloatingValue:
    return x.cast("float64")


def _change(last: ir.NumericValue, prior: ir.NumericValue) -> ir.FloatingValue:
    """(last - prior) / (last + prior): bounded, symmetric, and 0 when both are zero."""
    last, prior = _f(last).fill_null(0.0), _f(prior).fill_null(0.0)
    total = last + prior
    return ibis.ifelse(total == 0, 0.0, (last - prior) / total)


def _purchases(o: ir.Table, day: int, p: Params) -> ir.Table:
    buy = ~o.is_return
    ret = o.is_return
    items = o.quantity.fill_null(1)
    online = o.channel.isin(ONLINE_CHANNELS)
    month = o.ts.month()
    aggs: dict[str, ir.Value] = {
        "purchase_count": o.count(where=buy),
        "spend_dec": o.amount.sum(where=buy),
        "returns_dec": o.amount.abs().sum(where=ret),
        "last_day": o.day.max(where=buy),
        "first_day": o.day.min(where=buy),
        "online_n": o.count(where=buy & online),
        "store_n": o.count(where=buy & (o.channel == "store")),
        "discount_n": o.count(where=buy & (o.discount.fill_null(0) > 0)),
        "holiday_n": o.count(where=buy & month.isin(p.holiday_months)),
    }
    for w in sorted({*p.windows, 30, 60, 90, 180}):
        inside = o.day >= day - w
        aggs[f"orders_{w}d"] = o.count(where=buy & inside)
        aggs[f"spend_{w}d_dec"] = o.amount.sum(where=buy & inside)
        if w in p.windows:
            aggs[f"items_{w}d"] = items.cast("float64").sum(where=buy & inside).cast("int64")
            aggs[f"returns_{w}d"] = o.count(where=ret & inside)
    g = o.group_by("customer_id").aggregate(**aggs)
    n = _f(g.purchase_count)
    has = g.purchase_count > 0
    spend = _f(g.spend_dec).fill_null(0.0)
    returns = _f(g.returns_dec).fill_null(0.0)
    share = lambda x: ibis.ifelse(has, _f(x) / n, ibis.null("float64"))  # noqa: E731
    cols: dict[str, ir.Value] = {
        "customer_id": g.customer_id,
        "days_since_last_purchase": day - g.last_day,
        "purchase_count": g.purchase_count,
        "spend_total": spend,
        "returns_total": returns,
        "net_spend_total": spend - returns,
        "avg_order_value": ibis.ifelse(has, spend / n, ibis.null("float64")),
        "tenure_days": day - g.first_day,
        "online_share": share(g.online_n),
        "store_share": share(g.store_n),
        "discount_share": share(g.discount_n),
        "holiday_share": share(g.holiday_n),
        "holiday_buyer": (g.purchase_count >= 2) & (_f(g.holiday_n) >= 0.4 * n),
    }
    for w in p.windows:
        cols[f"orders_{w}d"] = g[f"orders_{w}d"]
        cols[f"spend_{w}d"] = _f(g[f"spend_{w}d_dec"]).fill_null(0.0)
        cols[f"items_{w}d"] = g[f"items_{w}d"].fill_null(0)
        cols[f"returns_{w}d"] = g[f"returns_{w}d"]
    for w in (30, 90):
        # prior window: days [D - 2w, D - w) = count within 2w minus count within w
        last_o, both_o = g[f"orders_{w}d"], g[f"orders_{2 * w}d"]
        last_s = _f(g[f"spend_{w}d_dec"]).fill_null(0.0)
        both_s = _f(g[f"spend_{2 * w}d_dec"]).fill_null(0.0)
        cols[f"orders_trend_{w}d"] = _change(last_o, both_o - last_o)
        cols[f"spend_trend_{w}d"] = _change(last_s, both_s - last_s)
    return g.select(**cols)


def _gaps(o: ir.Table, day: int) -> ir.Table:
    """Mean and spread of the days between distinct purchase days."""
    days = o.filter(~o.is_return).select("customer_id", "day").distinct()
    w = ibis.window(group_by="customer_id", order_by="day")
    gaps = days.mutate(gap=days.day - days.day.lag().over(w))
    gaps = gaps.filter(gaps.gap.notnull())
    g = gaps.group_by("customer_id").aggregate(
        interpurchase_days_mean=_f(gaps.gap).mean(),
        interpurchase_days_std=ibis.ifelse(
            gaps.count() >= 2, _f(gaps.gap).std(how="sample"), ibis.null("float64")
        ),
    )
    return g


def _categories(o: ir.Table, day: int, p: Params) -> ir.Table:
    """Distinct categories per window, the top category and purchases per category.

    Counted from one row per (customer, category) with its last purchase day: far cheaper
    than a distinct count per window over every order.
    """
    buys = o.filter(~o.is_return & o.category.notnull())
    per = buys.group_by(["customer_id", "category"]).aggregate(
        n=buys.count(), spend=buys.amount.sum(), last_day=buys.day.max()
    )
    rank = ibis.row_number().over(
        group_by="customer_id", order_by=[ibis.desc(per.n), ibis.desc(per.spend), per.category]
    )
    per = per.mutate(rank=rank)
    aggs: dict[str, ir.Value] = {
        f"categories_{w}d": per.count(where=per.last_day >= day - w) for w in p.windows
    }
    aggs["top_category"] = per.category.max(where=per.rank == 0)
    for c in p.categories:
        aggs["n_" + category_column(c)] = per.n.sum(where=per.category == c)
    return per.group_by("customer_id").aggregate(**aggs)


def _emails(e: ir.Table, consents: ir.Table, day: int, p: Params) -> ir.Table:
    send, opened, click = (
        (e.event_type == "send"),
        (e.event_type == "open"),
        (e.event_type == "click"),
    )
    weight = (-(math.log(2) / p.half_life_days) * _f(day - e.day)).exp()
    aggs: dict[str, ir.Value] = {}
    for w in p.engagement_windows:
        inside = e.day >= day - w
        aggs[f"email_sends_{w}d"] = e.count(where=send & inside)
        aggs[f"email_opens_{w}d"] = e.count(where=opened & inside)
        aggs[f"email_clicks_{w}d"] = e.count(where=click & inside)
    aggs |= {
        "w_send": weight.sum(where=send),
        "w_open": weight.sum(where=opened),
        "w_click": weight.sum(where=click),
        "last_open": e.day.max(where=opened),
        "last_click": e.day.max(where=click),
    }
    g = e.group_by("customer_id").aggregate(**aggs)
    rate = lambda x: ibis.ifelse(g.w_send > 0, x.fill_null(0.0) / g.w_send, ibis.null("float64"))  # noqa: E731
    out = g.select(
        "customer_id",
        *[c for c in aggs if c.startswith("email_")],
        email_open_rate_decayed=rate(g.w_open),
        email_click_rate_decayed=rate(g.w_click),
        days_since_last_open=day - g.last_open,
        days_since_last_click=day - g.last_click,
    )
    # E-mail marketing status: the consent service's latest word, unsubscribes included
    # (the events are already cut at the as-of day).
    unsub = e.filter(e.event_type == "unsubscribe").select("customer_id", "ts")
    status = consent.latest_status(
        consents, None, "marketing", "email", unsubscribes=unsub, column="email_unsubscribed"
    )
    return out.outer_join(status, "customer_id").select(
        customer_id=ibis.coalesce(out.customer_id, status.customer_id),
        **{c: out[c] for c in out.columns if c != "customer_id"},
        email_unsubscribed=status.email_unsubscribed,
    )


def _web(wb: ir.Table, day: int) -> ir.Table:
    aggs: dict[str, ir.Value] = {"last_visit": wb.day.max()}
    for w in (30, 90):
        inside = wb.day >= day - w
        aggs[f"product_views_{w}d"] = wb.count(where=inside & (wb.event_type == "product_view"))
        aggs[f"cart_adds_{w}d"] = wb.count(where=inside & (wb.event_type == "add_to_cart"))
    g = wb.group_by("customer_id").aggregate(**aggs)
    # sessions per window from one row per session (a distinct count per window is slow)
    per = wb.group_by(["customer_id", "session_id"]).aggregate(last_day=wb.day.max())
    sessions = per.group_by("customer_id").aggregate(
        **{f"web_sessions_{w}d": per.count(where=per.last_day >= day - w) for w in (30, 90)}
    )
    j = g.join(sessions, "customer_id")
    return j.select(
        "customer_id",
        *[f"{k}_{w}d" for w in (30, 90) for k in ("web_sessions", "product_views", "cart_adds")],
        days_since_last_visit=day - j.last_visit,
    )


def _tickets(t: ir.Table, day: int) -> ir.Table:
    g = t.group_by("customer_id").aggregate(
        tickets_90d=t.count(where=t.day >= day - 90),
        tickets_365d=t.count(where=t.day >= day - 365),
        last_ticket=t.day.max(),
        ticket_satisfaction_mean=_f(t.satisfaction).mean(),
    )
    return g.select(
        "customer_id",
        "tickets_90d",
        "tickets_365d",
        "ticket_satisfaction_mean",
        days_since_last_ticket=day - g.last_ticket,
    )


def _contacts(c: ir.Table, day: int) -> ir.Table:
    treated = c.variant == "treatment"
    return c.group_by("customer_id").aggregate(
        campaign_contacts_90d=c.count(where=treated & (c.day >= day - 90)),
        campaign_contacts_365d=c.count(where=treated & (c.day >= day - 365)),
    )


def population(ev: Events, day: int) -> ir.Table:
    """Customers who existed before the as-of day: a profile created, or a purchase, before it."""
    prof = ev.profiles.filter(day_number(ev.profiles.first_seen) < day).select("customer_id")
    buyers = ev.orders.select("customer_id")
    return prof.union(buyers, distinct=True)


def _rfm_scores(t: ir.Table) -> dict[str, ir.Value]:
    """Quintile scores among buyers from the cumulative distribution: equal values always
    share a score, so the scores do not depend on row order (or on the backend). The
    window is partitioned by "is a buyer", so no second pass over the customers is needed."""
    buyer = t.purchase_count.fill_null(0) > 0

    def score(order: ir.Value) -> ir.IntegerValue:
        rank = ibis.cume_dist().over(group_by=buyer, order_by=order)
        return ibis.ifelse(buyer, (rank * 5).ceil().cast("int64"), ibis.null("int64"))

    return {
        "rfm_recency_score": score(ibis.desc(t.days_since_last_purchase)),
        "rfm_frequency_score": score(t.purchase_count),
        "rfm_monetary_score": score(t.net_spend_total),
    }


def _standardised(x: ir.FloatingValue) -> ir.FloatingValue:
    sd = x.std(how="pop").over()
    return ibis.ifelse(sd > 0, (x - x.mean().over()) / sd, 0.0)


def _attach(t: ir.Table, part: ir.Table) -> ir.Table:
    """Left-join a family's columns onto the customers (one key column kept)."""
    j = t.left_join(part, t.customer_id == part.customer_id)
    return j.select(
        *[j[c] for c in t.columns], *[part[c] for c in part.columns if c != "customer_id"]
    )


def customer_features(
    events: Events,
    as_of: dt.date,
    params: Params | None = None,
    stage: Callable[[ir.Table], ir.Table] | None = None,
) -> ir.Table:
    """One row per customer existing before ``as_of``: ``customer_id``, ``as_of`` and
    every feature of :func:`feature_set`, read only from events before ``as_of``.

    ``stage``, when given, materialises each family's per-customer table before they are
    joined (a temporary table), so one large aggregation runs at a time.
    """
    p = params or Params()
    fs = feature_set(p)
    day = as_of_day(as_of)
    ev = events.before(day)
    base = population(ev, day)
    parts = [
        _purchases(ev.orders, day, p),
        _gaps(ev.orders, day),
        _categories(ev.orders, day, p),
        _emails(ev.emails, ev.consents, day, p),
        _web(ev.web, day),
        _tickets(ev.tickets, day),
        _contacts(ev.contacts, day),
    ]
    if stage is not None:
        parts = [stage(part) for part in parts]
    t = base
    for part in parts:
        t = _attach(t, part)
    t = t.mutate(**_rfm_scores(t))
    buyer = t.purchase_count.fill_null(0) > 0
    t = t.mutate(
        **{
            category_column(c): ibis.ifelse(
                buyer,
                _f(t["n_" + category_column(c)].fill_null(0)) / _f(t.purchase_count),
                ibis.null("float64"),
            )
            for c in p.categories
        },
        days_overdue=_f(t.days_since_last_purchase) - t.interpurchase_days_mean,
        rfm_code=t.rfm_recency_score.cast("string")
        + t.rfm_frequency_score.cast("string")
        + t.rfm_monetary_score.cast("string"),
    )
    cols: dict[str, ir.Value] = {
        "customer_id": t.customer_id,
        "as_of": ibis.literal(as_of, type="date"),
    }
    for f in fs.features:
        if f.name == "engagement_score":
            continue
        col = t[f.name]
        if f.fill is not None:
            col = col.fill_null(f.fill)
        cols[f.name] = col.cast(f.dtype)
    t = t.select(**cols)
    score = ibis.literal(0.0)
    for name, weight in p.engagement_weights.items():
        if name.startswith("days_since"):
            # recency: fewer days is more engaged; never visited counts as a year ago
            part = -(_f(t[name]).fill_null(365.0).clip(upper=365.0) + 1).log()
        else:
            part = (_f(t[name]) + 1).log()
        score = score + weight * _standardised(part)
    return t.mutate(engagement_score=score.cast("float64")).select(
        "customer_id", "as_of", *fs.names()
    )


__all__ = [
    "ONLINE_CHANNELS",
    "Params",
    "category_column",
    "customer_features",
    "feature_set",
    "population",
]
