"""Per-customer summaries for the purchase and spend models, from a transaction list.

A customer's first purchase starts their clock; purchases on the same day are one
transaction (their amounts add up). ``frequency`` counts the later purchase days,
``recency`` is the time from the first to the last of them, ``T`` from the first to the
end of observation, and ``monetary`` the mean amount of the repeat transactions (the
first is left out: it often differs, and the spend model describes repeat purchases).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd


def from_transactions(
    frame: pd.DataFrame,
    *,
    customer: str,
    when: str,
    amount: str,
    end: dt.date,
    unit_days: float = 7.0,
    holdout_end: dt.date | None = None,
) -> pd.DataFrame:
    """One row per customer whose first purchase is before ``end``, the last day observed
    (inclusive, so T = end - first and a purchase on ``end`` counts): frequency, recency,
    T, monetary; with ``holdout_end`` (inclusive too) also the purchases in the days
    after ``end`` up to it (``holdout_frequency``), their spend and the holdout's length.
    Whole days, as in the published CDNOW analyses (T = 38.86 weeks for a customer who
    first bought on the first of 273 days)."""
    t = frame[[customer, when, amount]].copy()
    t["day"] = pd.to_datetime(t[when]).dt.normalize()
    daily = t.groupby([customer, "day"], as_index=False)[amount].sum()
    end_ts = pd.Timestamp(end)
    first = daily.groupby(customer)["day"].min().rename("first")
    daily = daily.join(first, on=customer)
    cal = daily[(daily["day"] <= end_ts) & (daily["first"] < end_ts)]
    repeat = cal[cal["day"] > cal["first"]]
    out = pd.DataFrame(index=first[first < end_ts].index)
    out["frequency"] = repeat.groupby(customer).size().reindex(out.index, fill_value=0)
    last = cal.groupby(customer)["day"].max()
    out["recency"] = (last - first.loc[out.index]).dt.days.reindex(out.index) / unit_days
    out["T"] = (end_ts - first.loc[out.index]).dt.days / unit_days
    out["monetary"] = repeat.groupby(customer)[amount].mean().reindex(out.index, fill_value=0.0)
    if holdout_end is not None:
        h = daily[(daily["day"] > end_ts) & (daily["day"] <= pd.Timestamp(holdout_end))]
        h = h[h[customer].isin(out.index)]
        out["holdout_frequency"] = h.groupby(customer).size().reindex(out.index, fill_value=0)
        out["holdout_spend"] = h.groupby(customer)[amount].sum().reindex(out.index, fill_value=0.0)
        out["holdout_length"] = (pd.Timestamp(holdout_end) - end_ts).days / unit_days
    out["frequency"] = out["frequency"].astype(np.int64)
    return out.reset_index()


def rfm_table(
    orders: ir.Table,
    as_of_day: int,
    *,
    unit_days: float = 7.0,
    holdout_days: int | None = None,
) -> ir.Table:
    """The same summary in the warehouse, as one Ibis expression (no sort in Python).

    ``orders`` has ``customer_id``, ``day`` (a day number), ``amount`` and
    ``is_return``; purchases are the non-returns on days before ``as_of_day``, the day
    before it being the last day observed (so T = as_of_day - 1 - first day). Customers whose
    first purchase is on that last day have T = 0 and are kept, for the caller to count
    and leave out. With ``holdout_days``, the purchase days and spend in the
    ``holdout_days`` from ``as_of_day`` are added (``holdout_frequency``,
    ``holdout_spend``)."""
    buys = orders.filter(~orders.is_return & orders.customer_id.notnull())
    daily = buys.group_by(["customer_id", "day"]).aggregate(spend=buys.amount.cast("float64").sum())
    cal = daily.filter(daily.day < as_of_day)
    first = cal.group_by("customer_id").aggregate(
        first_day=cal.day.min(),
        last_day=cal.day.max(),
        days=cal.day.count(),
        total=cal.spend.sum(),
    )
    first_spend = cal.join(first, "customer_id").filter(lambda t: t.day == t.first_day)
    first_spend = first_spend.select("customer_id", first_total=first_spend.spend)
    s = first.join(first_spend, "customer_id")
    frequency = (s.days - 1).cast("int64")
    unit = ibis.literal(unit_days, type="float64")
    out = s.select(
        "customer_id",
        frequency=frequency,
        recency=(s.last_day - s.first_day).cast("float64") / unit,
        T=(ibis.literal(as_of_day - 1) - s.first_day).cast("float64") / unit,
        monetary=ibis.ifelse(
            frequency > 0, (s.total - s.first_total) / frequency.cast("float64"), 0.0
        ),
    )
    if holdout_days is None:
        return out
    ahead = daily.filter((daily.day >= as_of_day) & (daily.day < as_of_day + holdout_days))
    later = ahead.group_by("customer_id").aggregate(
        holdout_frequency=ahead.day.count().cast("int64"),
        holdout_spend=ahead.spend.sum(),
    )
    j = out.left_join(later, "customer_id")
    return j.select(
        *[j[c] for c in out.columns],
        holdout_frequency=j.holdout_frequency.fill_null(0),
        holdout_spend=j.holdout_spend.fill_null(0.0),
        holdout_length=ibis.literal(holdout_days / unit_days, type="float64"),
    )
