"""The customer feature set written the plain pandas way: the benchmark's peer.

Same definitions as ``custintel.features.definitions`` (docs/features.md), computed with
merges and group-bys on frames read from Parquet. The benchmark checks its output equal
to custintel's on a sample of customers before comparing times.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from custintel.features.definitions import ONLINE_CHANNELS, Params, category_column


def _day(ts: pd.Series) -> pd.Series:
    seconds = ts.astype("datetime64[us, UTC]").astype("int64") // 1_000_000
    return seconds // 86_400


def _resolve(events: pd.DataFrame, cmap: pd.DataFrame) -> pd.DataFrame:
    return events.merge(cmap, left_on=["source", "customer_ref"], right_on=["source", "source_id"])


def _change(last: pd.Series, prior: pd.Series) -> pd.Series:
    total = last + prior
    return ((last - prior) / total.where(total != 0)).fillna(0.0)


def features(t: dict[str, pd.DataFrame], as_of: dt.date, p: Params) -> pd.DataFrame:
    day = (as_of - dt.date(1970, 1, 1)).days
    cmap = t["customer_map"][["source", "source_id", "customer_id"]]

    o = _resolve(t["orders"], cmap)
    o["day"] = _day(o.order_ts)
    o = o[o.day < day]
    o["amount"] = o.amount.astype("float64")
    o["is_return"] = o.is_return.fillna(False).astype(bool) | (o.amount < 0)
    buy, ret = o[~o.is_return], o[o.is_return]

    prof = t["profile"]
    people = set(prof.customer_id[_day(prof.first_seen) < day]) | set(o.customer_id)
    out = pd.DataFrame(index=pd.Index(sorted(people), name="customer_id"))

    g = buy.groupby("customer_id")
    n = g.size()
    out["purchase_count"] = n
    out["spend_total"] = g.amount.sum()
    out["returns_total"] = ret.amount.abs().groupby(ret.customer_id).sum()
    out["days_since_last_purchase"] = day - g.day.max()
    out["tenure_days"] = day - g.day.min()
    buy = buy.assign(items=buy.quantity.fillna(1))
    for w in p.windows:
        inside = buy[buy.day >= day - w].groupby("customer_id")
        out[f"orders_{w}d"] = inside.size()
        out[f"spend_{w}d"] = inside.amount.sum()
        out[f"items_{w}d"] = inside["items"].sum()
        out[f"categories_{w}d"] = inside.category.nunique()
        out[f"returns_{w}d"] = ret[ret.day >= day - w].groupby("customer_id").size()
    counts = [
        c
        for c in out.columns
        if c.split("_")[0] in ("purchase", "orders", "items", "categories", "returns")
        and c != "returns_total"
    ]
    out[counts] = out[counts].fillna(0).astype("int64")
    out[["spend_total", "returns_total"] + [f"spend_{w}d" for w in p.windows]] = out[
        ["spend_total", "returns_total"] + [f"spend_{w}d" for w in p.windows]
    ].fillna(0.0)
    out["net_spend_total"] = out.spend_total - out.returns_total
    out["avg_order_value"] = out.spend_total / out.purchase_count.where(out.purchase_count > 0)

    for w in (30, 90):
        last = buy[buy.day >= day - w].groupby("customer_id")
        both = buy[buy.day >= day - 2 * w].groupby("customer_id")
        lo, bo = (
            last.size().reindex(out.index, fill_value=0),
            both.size().reindex(out.index, fill_value=0),
        )
        ls = last.amount.sum().reindex(out.index, fill_value=0.0)
        bs = both.amount.sum().reindex(out.index, fill_value=0.0)
        out[f"orders_trend_{w}d"] = _change(lo.astype(float), (bo - lo).astype(float))
        out[f"spend_trend_{w}d"] = _change(ls, bs - ls)

    days = buy[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"])
    days["gap"] = days.groupby("customer_id").day.diff()
    gaps = days.dropna(subset=["gap"]).groupby("customer_id").gap
    out["interpurchase_days_mean"] = gaps.mean()
    out["interpurchase_days_std"] = gaps.std(ddof=1)
    out["days_overdue"] = out.days_since_last_purchase - out.interpurchase_days_mean

    def share(s: pd.Series) -> pd.Series:
        return s.reindex(out.index, fill_value=0) / out.purchase_count.where(out.purchase_count > 0)

    out["online_share"] = share(
        buy[buy.channel.isin(ONLINE_CHANNELS)].groupby("customer_id").size()
    )
    out["store_share"] = share(buy[buy.channel == "store"].groupby("customer_id").size())
    out["discount_share"] = share(
        buy[buy.discount.astype("float64").fillna(0) > 0].groupby("customer_id").size()
    )
    per = (
        buy[buy.category.notna()]
        .groupby(["customer_id", "category"])
        .agg(n=("amount", "size"), spend=("amount", "sum"))
    )
    per = per.reset_index().sort_values(
        ["customer_id", "n", "spend", "category"], ascending=[True, False, False, True]
    )
    out["top_category"] = per.drop_duplicates("customer_id").set_index("customer_id").category
    for c in p.categories:
        out[category_column(c)] = share(buy[buy.category == c].groupby("customer_id").size())
    holiday = buy[buy.order_ts.dt.month.isin(p.holiday_months)].groupby("customer_id").size()
    out["holiday_share"] = share(holiday)
    out["holiday_buyer"] = (out.purchase_count >= 2) & (
        holiday.reindex(out.index, fill_value=0) >= 0.4 * out.purchase_count
    )

    e = _resolve(t["email_events"], cmap)
    e["day"] = _day(e.event_ts)
    e = e[e.day < day]
    for w in p.engagement_windows:
        inside = e[e.day >= day - w]
        for kind, name in (("send", "sends"), ("open", "opens"), ("click", "clicks")):
            out[f"email_{name}_{w}d"] = (
                inside[inside.event_type == kind].groupby("customer_id").size()
            )
            out[f"email_{name}_{w}d"] = out[f"email_{name}_{w}d"].fillna(0).astype("int64")
    weight = np.exp(-(math.log(2) / p.half_life_days) * (day - e.day).astype(float))
    ws = {
        k: weight[e.event_type == k].groupby(e.customer_id[e.event_type == k]).sum()
        for k in ("send", "open", "click")
    }
    sends = ws["send"].reindex(out.index)
    sends = sends.where(sends > 0)
    out["email_open_rate_decayed"] = ws["open"].reindex(out.index, fill_value=0.0) / sends
    out["email_click_rate_decayed"] = ws["click"].reindex(out.index, fill_value=0.0) / sends
    out["days_since_last_open"] = day - e[e.event_type == "open"].groupby("customer_id").day.max()
    out["days_since_last_click"] = day - e[e.event_type == "click"].groupby("customer_id").day.max()

    c = _resolve(t["consents"], cmap)
    c = c[
        (_day(c.event_ts) < day)
        & c.channel.isin(["email", "all"])
        & c.purpose.isin(["marketing", "all"])
    ]
    status = pd.concat(
        [
            e.loc[e.event_type == "unsubscribe", ["customer_id", "event_ts"]].assign(
                withdrawn=True
            ),
            c[["customer_id", "event_ts"]].assign(withdrawn=(c.status == "withdrawn").to_numpy()),
        ]
    )
    status["latest"] = status.groupby("customer_id").event_ts.transform("max")
    latest = status[status.event_ts == status.latest].groupby("customer_id").withdrawn.max()
    out["email_unsubscribed"] = latest.reindex(out.index, fill_value=False).astype(bool)

    wb = t["web_events"].merge(
        cmap, how="left", left_on=["source", "customer_ref"], right_on=["source", "source_id"]
    )
    dev = t["devices"].rename(columns={"customer_id": "device_customer"})
    wb = wb.merge(dev, on="anonymous_id", how="left")
    wb["customer_id"] = wb.customer_id.fillna(wb.device_customer)
    wb = wb[wb.customer_id.notna()]
    wb["day"] = _day(wb.event_ts)
    wb = wb[wb.day < day]
    out["days_since_last_visit"] = day - wb.groupby("customer_id").day.max()
    for w in (30, 90):
        inside = wb[wb.day >= day - w]
        out[f"web_sessions_{w}d"] = (
            inside.session_id.fillna(inside.anonymous_id).groupby(inside.customer_id).nunique()
        )
        out[f"product_views_{w}d"] = (
            inside[inside.event_type == "product_view"].groupby("customer_id").size()
        )
        out[f"cart_adds_{w}d"] = (
            inside[inside.event_type == "add_to_cart"].groupby("customer_id").size()
        )
        for col in (f"web_sessions_{w}d", f"product_views_{w}d", f"cart_adds_{w}d"):
            out[col] = out[col].fillna(0).astype("int64")

    tk = _resolve(t["support_tickets"], cmap)
    tk["day"] = _day(tk.created_at)
    tk = tk[tk.day < day]
    out["tickets_90d"] = tk[tk.day >= day - 90].groupby("customer_id").size()
    out["tickets_365d"] = tk[tk.day >= day - 365].groupby("customer_id").size()
    out[["tickets_90d", "tickets_365d"]] = (
        out[["tickets_90d", "tickets_365d"]].fillna(0).astype("int64")
    )
    out["days_since_last_ticket"] = day - tk.groupby("customer_id").day.max()
    out["ticket_satisfaction_mean"] = tk.groupby("customer_id").satisfaction.mean()

    ct = _resolve(t["contacts"], cmap)
    ct["day"] = _day(ct.sent_at)
    ct = ct[(ct.day < day) & (ct.variant == "treatment")]
    for w in (90, 365):
        out[f"campaign_contacts_{w}d"] = ct[ct.day >= day - w].groupby("customer_id").size()
        out[f"campaign_contacts_{w}d"] = out[f"campaign_contacts_{w}d"].fillna(0).astype("int64")

    buyers = out[out.purchase_count > 0]
    score = lambda x: np.ceil(x.rank(method="max", pct=True) * 5)  # noqa: E731  cume_dist
    out["rfm_recency_score"] = score(-buyers.days_since_last_purchase)
    out["rfm_frequency_score"] = score(buyers.purchase_count)
    out["rfm_monetary_score"] = score(buyers.net_spend_total)
    code = [
        out[f"rfm_{k}_score"].astype("Int64").astype("string")
        for k in ("recency", "frequency", "monetary")
    ]
    out["rfm_code"] = code[0] + code[1] + code[2]

    total = pd.Series(0.0, index=out.index)
    for name, weight_ in p.engagement_weights.items():
        x = out[name].astype("float64")
        part = (
            -np.log(x.fillna(365.0).clip(upper=365.0) + 1)
            if name.startswith("days_since")
            else np.log(x + 1)
        )
        sd = part.std(ddof=0)
        total += weight_ * ((part - part.mean()) / sd if sd > 0 else 0.0)
    out["engagement_score"] = total
    return out.reset_index()
