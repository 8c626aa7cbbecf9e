"""Per-customer summaries for the purchase and spend models, from a transaction list.

A customer's first purchase starts their clock; purchases on the same day are one
transaction (their amounts add up). ``frequency`` counts the later purchase days,
``recency`` is the time from the first to the last of them, ``T`` from the first to the
end of observation, and ``monetary`` the mean amount of the repeat transactions (the
first is left out: it often differs, and the spend model describes repeat purchases).
"""

from __future__ import annotations

import datetime as dt

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
