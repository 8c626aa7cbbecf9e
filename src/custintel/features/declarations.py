"""The customer feature set declared: every feature's name, description, type, family
and windows, from the knobs in :class:`Params`. The computations that fill them are in
:mod:`custintel.features.definitions`; the catalog and the version hash read this."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from custintel.features.catalog import Feature, FeatureSet


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
def declare(p: Params) -> list[Feature]:
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
        features=tuple(declare(p)),
        parameters={
            "windows": p.windows,
            "engagement_windows": p.engagement_windows,
            "half_life_days": p.half_life_days,
            "categories": p.categories,
            "holiday_months": p.holiday_months,
            "engagement_weights": p.engagement_weights,
        },
    )
