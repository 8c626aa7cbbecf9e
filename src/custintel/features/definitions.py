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
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from custintel.features.catalog import Feature, FeatureSet
from custintel.features.events import Events, as_of_day, day_number

ONLINE_CHANNELS = ("online", "app")


@dataclass(frozen=True)
class Params:
    """The knobs of the customer feature set (config ``features``)."""

    windows: tuple[int, ...] = (7, 30, 90, 180, 365)
    engagement_windows: tuple[int, ...] = (30, 90, 365)
    half_life_days: int = 30
    categories: tuple[str, ...] = ()
    holiday_months: tuple[int, ...] = (11, 12)
    engagement_weights: dict[str, float] = field(
        default_factory=lambda: {
            "email_opens_90d": 0.2,
            "email_clicks_90d": 0.25,
            "web_sessions_90d": 0.2,
            "days_since_last_visit": 0.15,
            "orders_90d": 0.2,
        }
    )


def category_column(category: str) -> str:
    return "category_share_" + re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


# -- declarations ----------------------------------------------------------------------------
def _declare(p: Params) -> list[Feature]:
    f: list[Feature] = [
        Feature(
            "days_since_last_purchase",
            "Days since the customer's last purchase (empty if none yet).",
            "int64",
            "rfm",
            kind="days",
        ),
        Feature(
            "purchase_count",
            "Number of purchases ever (returns not counted).",
            "int64",
            "rfm",
            fill=0,
        ),
        Feature(
            "spend_total",
            "Total spent on purchases ever, in the reporting currency.",
            "float64",
            "rfm",
            fill=0.0,
            kind="money",
        ),
        Feature(
            "returns_total",
            "Total value of returns and refunds ever.",
            "float64",
            "rfm",
            fill=0.0,
            kind="money",
        ),
        Feature(
            "net_spend_total",
            "Spend minus returns, ever.",
            "float64",
            "rfm",
            fill=0.0,
            kind="money",
        ),
        Feature(
            "avg_order_value",
            "Average value of a purchase (empty if no purchase).",
            "float64",
            "rfm",
            kind="money",
        ),
        Feature(
            "tenure_days",
            "Days since the first purchase (empty if none yet).",
            "int64",
            "rfm",
            kind="days",
        ),
        Feature(
            "rfm_recency_score",
            "Recency quintile among buyers: 5 bought most recently, 1 longest ago.",
            "int64",
            "rfm",
            kind="score",
        ),
        Feature(
            "rfm_frequency_score",
            "Frequency quintile among buyers: 5 buys most often.",
            "int64",
            "rfm",
            kind="score",
        ),
        Feature(
            "rfm_monetary_score",
            "Monetary quintile among buyers: 5 spends most.",
            "int64",
            "rfm",
            kind="score",
        ),
        Feature(
            "rfm_code",
            "The three RFM scores as one code, e.g. 545 (empty if no purchase).",
            "string",
            "rfm",
            kind="category",
        ),
    ]
    for w in p.windows:
        f += [
            Feature(
                f"orders_{w}d", f"Purchases in the last {w} days.", "int64", "windows", (w,), 0
            ),
            Feature(
                f"spend_{w}d",
                f"Spent on purchases in the last {w} days.",
                "float64",
                "windows",
                (w,),
                0.0,
                "money",
            ),
            Feature(
                f"items_{w}d",
                f"Items bought in the last {w} days (an order without a quantity counts one).",
                "int64",
                "windows",
                (w,),
                0,
            ),
            Feature(
                f"categories_{w}d",
                f"Distinct product categories bought in the last {w} days.",
                "int64",
                "windows",
                (w,),
                0,
            ),
            Feature(
                f"returns_{w}d",
                f"Returns and refunds in the last {w} days.",
                "int64",
                "windows",
                (w,),
                0,
            ),
        ]
    for w in (30, 90):
        f += [
            Feature(
                f"orders_trend_{w}d",
                f"Purchases in the last {w} days against the {w} before: (last - prior) / (last + prior), from -1 (stopped) to +1 (new), 0 when equal or both none.",
                "float64",
                "trends",
                (w, 2 * w),
                0.0,
                "ratio",
            ),
            Feature(
                f"spend_trend_{w}d",
                f"Spend in the last {w} days against the {w} before, as (last - prior) / (last + prior).",
                "float64",
                "trends",
                (w, 2 * w),
                0.0,
                "ratio",
            ),
        ]
    f += [
        Feature(
            "interpurchase_days_mean",
            "Average days between purchase days (needs two purchase days).",
            "float64",
            "trends",
            kind="days",
        ),
        Feature(
            "interpurchase_days_std",
            "Spread (standard deviation) of the days between purchase days (needs three).",
            "float64",
            "trends",
            kind="days",
        ),
        Feature(
            "days_overdue",
            "Days since the last purchase minus the customer's usual gap: above 0 is later than usual.",
            "float64",
            "trends",
            kind="days",
        ),
        Feature(
            "online_share",
            "Share of purchases made online or in the app.",
            "float64",
            "mix",
            kind="ratio",
        ),
        Feature(
            "store_share", "Share of purchases made in a store.", "float64", "mix", kind="ratio"
        ),
        Feature(
            "discount_share", "Share of purchases with a discount.", "float64", "mix", kind="ratio"
        ),
        Feature(
            "top_category",
            "Category bought most often (ties: higher spend, then name).",
            "string",
            "mix",
            kind="category",
        ),
    ]
    f += [
        Feature(
            category_column(c),
            f"Share of purchases in the category {c}.",
            "float64",
            "mix",
            kind="ratio",
        )
        for c in p.categories
    ]
    months = "/".join(str(m) for m in p.holiday_months)
    f += [
        Feature(
            "holiday_share",
            f"Share of purchases made in the holiday months ({months}).",
            "float64",
            "mix",
            kind="ratio",
        ),
        Feature(
            "holiday_buyer",
            "Buys mainly for the holidays: two or more purchases, at least 40 % of them in the holiday months.",
            "boolean",
            "mix",
            fill=False,
            kind="flag",
        ),
    ]
    for w in p.engagement_windows:
        f += [
            Feature(
                f"email_sends_{w}d",
                f"E-mails sent to the customer in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
            Feature(
                f"email_opens_{w}d",
                f"E-mail opens in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
            Feature(
                f"email_clicks_{w}d",
                f"E-mail clicks in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
        ]
    hl = p.half_life_days
    f += [
        Feature(
            "email_open_rate_decayed",
            f"Opens per e-mail sent, recent e-mails weighing more (half-life {hl} days).",
            "float64",
            "engagement",
            kind="ratio",
        ),
        Feature(
            "email_click_rate_decayed",
            f"Clicks per e-mail sent, recent e-mails weighing more (half-life {hl} days).",
            "float64",
            "engagement",
            kind="ratio",
        ),
        Feature(
            "days_since_last_open",
            "Days since the customer last opened an e-mail.",
            "int64",
            "engagement",
            kind="days",
        ),
        Feature(
            "days_since_last_click",
            "Days since the customer last clicked in an e-mail.",
            "int64",
            "engagement",
            kind="days",
        ),
        Feature(
            "email_unsubscribed",
            "Has withdrawn e-mail marketing (unsubscribe or consent withdrawn) and not granted it again.",
            "boolean",
            "engagement",
            fill=False,
            kind="flag",
        ),
        Feature(
            "days_since_last_visit",
            "Days since the customer's last web visit.",
            "int64",
            "engagement",
            kind="days",
        ),
    ]
    for w in (30, 90):
        f += [
            Feature(
                f"web_sessions_{w}d",
                f"Web sessions in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
            Feature(
                f"product_views_{w}d",
                f"Product pages viewed in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
            Feature(
                f"cart_adds_{w}d",
                f"Products added to the cart in the last {w} days.",
                "int64",
                "engagement",
                (w,),
                0,
            ),
        ]
    f += [
        Feature(
            "tickets_90d",
            "Support tickets opened in the last 90 days.",
            "int64",
            "engagement",
            (90,),
            0,
        ),
        Feature(
            "tickets_365d",
            "Support tickets opened in the last 365 days.",
            "int64",
            "engagement",
            (365,),
            0,
        ),
        Feature(
            "days_since_last_ticket",
            "Days since the customer's last support ticket.",
            "int64",
            "engagement",
            kind="days",
        ),
        Feature(
            "ticket_satisfaction_mean",
            "Average satisfaction (1-5) the customer gave support.",
            "float64",
            "engagement",
            kind="score",
        ),
        Feature(
            "campaign_contacts_90d",
            "Campaign contacts received (treated, not held out) in the last 90 days.",
            "int64",
            "engagement",
            (90,),
            0,
        ),
        Feature(
            "campaign_contacts_365d",
            "Campaign contacts received in the last 365 days.",
            "int64",
            "engagement",
            (365,),
            0,
        ),
        Feature(
            "engagement_score",
            "Composite engagement: weighted sum of standardised e-mail opens and clicks, web sessions, recency of visits and purchases over 90 days (docs/features.md).",
            "float64",
            "engagement",
            kind="score",
        ),
    ]
    return f


def feature_set(params: Params | None = None) -> FeatureSet:
    p = params or Params()
    return FeatureSet(
        name="customer",
        features=tuple(_declare(p)),
        parameters={
            "windows": p.windows,
            "engagement_windows": p.engagement_windows,
            "half_life_days": p.half_life_days,
            "categories": p.categories,
            "holiday_months": p.holiday_months,
            "engagement_weights": p.engagement_weights,
        },
    )


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
    # E-mail marketing status: the latest of unsubscribes and e-mail marketing consents.
    unsub = e.filter(e.event_type == "unsubscribe").select(
        "customer_id", "ts", withdrawn=ibis.literal(True)
    )
    c = consents.filter(
        consents.channel.isin(("email", "all")) & consents.purpose.isin(("marketing", "all"))
    )
    c = c.select("customer_id", "ts", withdrawn=c.status == "withdrawn")
    both = unsub.union(c)
    latest = both.group_by("customer_id").aggregate(
        last_ts=both.ts.max(),
    )
    at_last = both.join(latest, "customer_id").filter(lambda t: t.ts == t.last_ts)
    status = at_last.group_by("customer_id").aggregate(
        # an unsubscribe and a grant at the same instant: the withdrawal wins
        email_unsubscribed=at_last.withdrawn.cast("int64").max() == 1
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
