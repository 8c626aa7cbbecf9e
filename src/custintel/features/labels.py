"""Labels: what happened in the horizon after an as-of date, and nothing before it leaks in.

A label as of D reads orders (or contacts) in [D, D + horizon) only; which customers a
label applies to may depend on what happened before D (a churn label is only defined for
customers who were active). Names are parsed, so any horizon works:

- ``churn_<h>d``: 1 when a customer who bought in the 365 days before D buys nothing in
  the next h days, 0 when they do; undefined (no row) for customers not active before D.
- ``purchase_<h>d``: 1 when the customer buys in the next h days.
- ``spend_<h>d``: spend minus returns in the next h days.
- ``new_category_<h>d``: among customers who bought before D, 1 when they buy a category
  in the next h days that they had never bought before (cross-sell).
- ``high_value_<h>d``: 1 when the customer's spend minus returns in the next h days
  reaches ``features.high_value_spend`` (a rare, valuable event).
- ``response_<campaign>``: among customers contacted in the campaign (treated or held
  out), 1 when they buy within the response window after their contact.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from custintel.features.events import Events, as_of_day

ACTIVE_DAYS = 365
_HORIZON = re.compile(r"^(churn|purchase|spend|new_category|high_value)_(\d+)d$")
_RESPONSE = re.compile(r"^response_(.+)$")


@dataclass(frozen=True)
class Label:
    name: str
    kind: str  # churn | purchase | spend | new_category | high_value | response
    horizon_days: int
    campaign: str | None = None
    threshold: float = 0.0  # high_value: the spend that counts

    @property
    def table(self) -> str:
        """Warehouse-safe name of its training table: ``train_<label>``."""
        return "train_" + re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


def parse_label(
    name: str, response_window_days: int = 30, high_value_spend: float = 500.0
) -> Label:
    """A label from its name; the error lists the forms that exist."""
    if m := _HORIZON.match(name):
        horizon = int(m.group(2))
        if horizon < 1:
            raise ValueError(f"label {name!r}: the horizon must be at least 1 day")
        return Label(name, m.group(1), horizon, threshold=high_value_spend)
    if m := _RESPONSE.match(name):
        return Label(name, "response", response_window_days, campaign=m.group(1))
    raise ValueError(
        f"unknown label {name!r}: use churn_<days>d, purchase_<days>d, spend_<days>d, "
        "new_category_<days>d, high_value_<days>d or response_<campaign id>"
    )


def label_values(events: Events, label: Label, as_of: dt.date) -> ir.Table:
    """``customer_id`` and ``label`` as of ``as_of`` (plus ``treated`` for responses)."""
    day = as_of_day(as_of)
    ev = events.with_day()
    o = ev.orders
    end = day + label.horizon_days
    ahead = o.filter((o.day >= day) & (o.day < end))
    buys_ahead = ahead.filter(~ahead.is_return)
    past = o.filter(o.day < day)
    past_buys = past.filter(~past.is_return)

    if label.kind == "response":
        c = ev.contacts.filter(ev.contacts.campaign_id == label.campaign)
        c = c.group_by("customer_id").aggregate(
            contact_day=c.day.min(), treated=(c.variant == "treatment").cast("int64").max() == 1
        )
        j = c.left_join(
            o.filter(~o.is_return).select(o.customer_id, buy_day=o.day),
            (c.customer_id == o.customer_id),
        )
        hit = (j.buy_day >= j.contact_day) & (j.buy_day < j.contact_day + label.horizon_days)
        return j.group_by(j.customer_id).aggregate(
            label=hit.fill_null(False).cast("int64").max().cast("float64"),
            treated=j.treated.max(),
        )
    if label.kind in ("spend", "high_value"):
        s = ahead.group_by("customer_id").aggregate(spend=ahead.amount.sum().cast("float64"))
        if label.kind == "high_value":
            big = s.spend >= ibis.literal(label.threshold, type="float64")
            return s.select("customer_id", label=big.cast("float64"))
        return s.select("customer_id", label=s.spend)
    buyers_ahead = buys_ahead.select("customer_id").distinct()
    if label.kind == "purchase":
        marked = buyers_ahead.mutate(label=ibis.literal(1).cast("float64"))
        return marked
    if label.kind == "churn":
        active = past_buys.filter(past_buys.day >= day - ACTIVE_DAYS).select("customer_id")
        active = active.distinct()
        j = active.left_join(buyers_ahead.mutate(bought=ibis.literal(True)), "customer_id")
        return j.select(
            customer_id=j.customer_id,
            label=ibis.ifelse(j.bought.fill_null(False), 0, 1).cast("float64"),
        )
    if label.kind == "new_category":
        known = past_buys.filter(past_buys.category.notnull())
        known = known.select("customer_id", "category").distinct()
        fresh = buys_ahead.filter(buys_ahead.category.notnull())
        fresh = fresh.select("customer_id", "category").distinct()
        new = fresh.anti_join(known, ["customer_id", "category"]).select("customer_id").distinct()
        base = past_buys.select("customer_id").distinct()
        j = base.left_join(new.mutate(new=ibis.literal(True)), "customer_id")
        return j.select(
            customer_id=j.customer_id,
            label=ibis.ifelse(j.new.fill_null(False), 1, 0).cast("float64"),
        )
    raise ValueError(label.kind)


def defined_for_all(label: Label) -> bool:
    """Labels where a customer with nothing in the horizon is a 0, not a missing row."""
    return label.kind in ("purchase", "spend", "high_value")
