"""One campaign's measurement from its contact history and its customers' outcomes.

The pipeline hands over plain frames: the campaign's contact rows (one per customer,
channel and offer) and, per customer, the outcomes in the window after their send and in
the pre-period before it. This module decides who is in which arm, whether a lift can be
claimed at all, computes it, and says it in one sentence.

A lift is claimed only when it can be measured: there is a control group; the window has
closed; both groups have enough customers; the control has outcomes; the split matches the
design (sample-ratio check); and the arms looked alike before the send (balance check).
Otherwise the reason is named and the numbers, where there are any, are marked
unclaimed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from custintel.measure.lift import Metric, balance, lift_table, sample_ratio
from custintel.measure.roi import costs, roi

CONTROL = "control"

METRICS = (
    Metric("converted", "proportion", covariate="pre_converted"),
    Metric("orders", "mean", covariate="pre_orders"),
    Metric("revenue", "mean", covariate="pre_revenue"),
    Metric("visits", "mean", covariate="pre_visits"),
)
"""What every campaign is measured on, with its pre-period covariate."""


@dataclass
class Units:
    """One row per customer: ``customer_id``, ``arm``, ``variant``, ``send_ts``,
    ``channel`` and ``offer`` (the first, when several), and the count of customers found
    in both groups (left out: their assignment is not random)."""

    frame: pd.DataFrame
    conflicting: int


def units(contacts: pd.DataFrame) -> Units:
    """Customers of one campaign from its contact rows (customer_id, variant, channel,
    offer, sent_at). A treated customer's arm is their offer when the control shares no
    offer and the treated got several (arms against one control, as in Hillstrom's test);
    otherwise ``treatment``."""
    c = contacts.sort_values(["customer_id", "sent_at"], kind="stable")
    variants = c.groupby("customer_id").variant.nunique()
    clash = variants[variants > 1].index
    c = c[~c.customer_id.isin(clash)]
    first = c.drop_duplicates("customer_id").reset_index(drop=True)
    offers = c.offer.fillna("")
    treated_offers = set(offers[c.variant == "treatment"].unique()) - {""}
    control_offers = set(offers[c.variant == CONTROL].unique()) - {""}
    multi = len(treated_offers) > 1 and not control_offers
    n_offers = c[c.variant == "treatment"].groupby("customer_id").offer.nunique()
    arm = np.where(first.variant == CONTROL, CONTROL, "treatment").astype(object)
    if multi:
        single = ~first.customer_id.isin(n_offers[n_offers > 1].index)
        pick = (first.variant != CONTROL) & single
        arm[pick.to_numpy()] = first.offer[pick].fillna("").to_numpy()
    frame = first[["customer_id", "variant", "channel", "offer"]].assign(
        arm=arm, send_ts=first.sent_at
    )
    return Units(frame, len(clash))


@dataclass
class Measurement:
    """The result for one campaign."""

    campaign_id: str
    status: str  # measured | unclaimed | pending | refused
    reason: str
    counts: dict[str, int] = field(default_factory=dict)
    lift: pd.DataFrame = field(default_factory=pd.DataFrame)
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    srm: dict[str, Any] = field(default_factory=dict)
    roi: dict[str, Any] = field(default_factory=dict)
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)
    sentence: str = ""


def not_measured(campaign_id: str, status: str, reason: str, frame: pd.DataFrame) -> Measurement:
    """A campaign no lift is computed for (``refused`` or ``pending``), with its group
    sizes and its reason in the sentence."""
    counts = {str(k): int(v) for k, v in frame.arm.value_counts().items()}
    out = Measurement(campaign_id, status, reason, counts)
    out.sentence = sentence(out)
    return out


def measure(
    campaign_id: str,
    frame: pd.DataFrame,
    *,
    level: float = 0.95,
    bootstrap_rounds: int = 0,
    min_per_arm: int = 100,
    control_share: float | None = None,
    margin: float = 1.0,
    contact_costs: dict[str, float] | None = None,
    offer_costs: dict[str, float] | None = None,
    with_visits: bool = True,
    by: tuple[str, ...] = ("channel",),
    currency: str = "",
) -> Measurement:
    """Measure one campaign from its per-customer ``frame`` (the :class:`Units` columns
    plus converted, orders, revenue, visits and their ``pre_`` versions)."""
    if not (frame.arm == CONTROL).any():
        return not_measured(campaign_id, "refused", "no control group: nobody was held out", frame)
    counts = {str(k): int(v) for k, v in frame.arm.value_counts().items()}
    small = {a: n for a, n in counts.items() if n < min_per_arm}
    metrics = [m for m in METRICS if with_visits or m.name != "visits"]
    table = lift_table(
        frame,
        metrics,
        arm="arm",
        control=CONTROL,
        level=level,
        bootstrap_rounds=bootstrap_rounds,
        seed=0,
    )
    covariates = [m.covariate for m in metrics if m.covariate]
    bal = balance(frame, covariates, arm="arm", control=CONTROL)
    srm: dict[str, Any] = {}
    if control_share is not None:
        treated_n = sum(n for a, n in counts.items() if a != CONTROL)
        srm = sample_ratio(
            {"treatment": treated_n, CONTROL: counts[CONTROL]},
            {"treatment": 1 - control_share, CONTROL: control_share},
        )
        srm["expected_control_share"] = control_share
    reason = ""
    if small:
        reason = "too few customers to measure: " + ", ".join(
            f"{a} {n:,} (fewer than {min_per_arm:,})" for a, n in sorted(small.items())
        )
    elif frame.loc[frame.arm == CONTROL, "orders"].sum() == 0 and frame.orders.sum() == 0:
        reason = "no outcomes yet: neither group has an order in the window"
    elif frame.loc[frame.arm == CONTROL, ["orders", "visits"]].to_numpy().sum() == 0:
        reason = "the control group has no outcomes yet (no order or visit in the window)"
    elif srm.get("mismatch"):
        reason = (
            f"sample-ratio mismatch: {counts[CONTROL]:,} held out of "
            f"{sum(counts.values()):,} where {control_share:.0%} was designed "
            f"(p = {srm['p_value']:.1g})"
        )
    elif len(bal) and bal.flagged.any():
        worst = bal[bal.flagged].iloc[0]
        reason = (
            f"arms differ before the send: {worst.covariate} in {worst.arm} "
            f"(standardized difference {worst.smd:+.2f}, p = {worst.p_value:.1g})"
        )
    status = "unclaimed" if reason else "measured"
    out = Measurement(campaign_id, status, reason, counts, table, bal, srm)
    out.roi = _roi(frame, table, margin, contact_costs or {}, offer_costs or {})
    out.breakdown = _breakdown(frame, by, level, margin, contact_costs or {}, offer_costs or {})
    out.sentence = sentence(out, currency)
    return out


def _costs(
    frame: pd.DataFrame, contact_costs: dict[str, float], offer_costs: dict[str, float]
) -> float:
    """The treated's contact costs and the offer costs of those who converted."""
    t = frame[frame.arm != CONTROL]
    return sum(costs(t.channel, t.offer, t.converted, contact_costs, offer_costs))


def _roi(
    frame: pd.DataFrame,
    table: pd.DataFrame,
    margin: float,
    contact_costs: dict[str, float],
    offer_costs: dict[str, float],
) -> dict[str, Any]:
    rev = table[(table.metric == "revenue") & ~table.cuped]
    if rev.empty:
        return {}
    treated = frame[frame.arm != CONTROL]
    # One revenue lift for all treated arms together when there are several.
    if len(rev) > 1:
        both = frame.assign(arm=np.where(frame.arm == CONTROL, CONTROL, "treatment"))
        rev = lift_table(both, [Metric("revenue")], arm="arm", control=CONTROL)
    r = rev.iloc[0]
    cost = _costs(frame, contact_costs, offer_costs)
    result = roi(
        float(r.lift), float(r.low), float(r.high), treated=len(treated), margin=margin, cost=cost
    )
    return result.as_dict()


def _breakdown(
    frame: pd.DataFrame,
    by: tuple[str, ...],
    level: float,
    margin: float,
    contact_costs: dict[str, float],
    offer_costs: dict[str, float],
) -> pd.DataFrame:
    """Conversion and revenue lift, and ROI, within each value of each ``by`` column
    (treated against control of the same value: the control mirrors the treated's channel
    and offer)."""
    rows = []
    two = frame.assign(arm=np.where(frame.arm == CONTROL, CONTROL, "treatment"))
    for col in by:
        if col not in two:
            continue
        for value, part in two.groupby(col, dropna=True):
            n_t = int((part.arm != CONTROL).sum())
            n_c = int((part.arm == CONTROL).sum())
            if min(n_t, n_c) < 2:
                continue
            t = lift_table(
                part,
                [Metric("converted", "proportion"), Metric("revenue")],
                arm="arm",
                control=CONTROL,
                level=level,
            ).set_index("metric")
            r = t.loc["revenue"]
            cost = _costs(part, contact_costs, offer_costs)
            money = roi(
                float(r.lift), float(r.low), float(r.high), treated=n_t, margin=margin, cost=cost
            )
            rows.append(
                {
                    "by": col,
                    "value": str(value),
                    "n_treated": n_t,
                    "n_control": n_c,
                    "conversion_lift": float(t.loc["converted", "lift"]),
                    "conversion_low": float(t.loc["converted", "low"]),
                    "conversion_high": float(t.loc["converted", "high"]),
                    "revenue_lift": float(r.lift),
                    "revenue_low": float(r.low),
                    "revenue_high": float(r.high),
                    "incremental_revenue": money.incremental_revenue,
                    "cost": money.cost,
                    "roi": money.roi,
                    "roi_low": money.roi_low,
                    "roi_high": money.roi_high,
                }
            )
    return pd.DataFrame(rows)


def sentence(m: Measurement, currency: str = "") -> str:
    """The result in plain words."""
    if m.status in ("refused", "pending"):
        return f"{m.campaign_id}: no lift can be claimed: {m.reason}."
    conv = m.lift[(m.lift.metric == "converted") & ~m.lift.cuped]
    if conv.empty:
        return f"{m.campaign_id}: no conversions measured."
    parts = []
    for r in conv.itertuples():
        sig = "p < 0.001" if r.p_adjusted < 0.001 else f"p = {r.p_adjusted:.3f}"
        who = "Treated customers" if r.arm == "treatment" else f"Customers sent {r.arm}"
        parts.append(
            f"{who} converted at {r.mean_treated:.2%} against {r.mean_control:.2%} held out: "
            f"{100 * r.lift:+.2f} points (95 % interval {100 * r.low:+.2f} to "
            f"{100 * r.high:+.2f}, {sig})"
        )
    text = "; ".join(parts)
    if m.roi:
        unit = f"{currency} " if currency else ""
        text += (
            f"; incremental revenue {unit}{m.roi['incremental_revenue']:,.0f} "
            f"({unit}{m.roi['incremental_revenue_low']:,.0f} to "
            f"{unit}{m.roi['incremental_revenue_high']:,.0f})"
        )
        if m.roi.get("roi") is not None:
            text += f", ROI {m.roi['roi']:.2f} ({m.roi['roi_low']:.2f} to {m.roi['roi_high']:.2f})"
    if m.status == "unclaimed":
        text += f". Not claimed: {m.reason}"
    return f"{m.campaign_id}: {text}."
