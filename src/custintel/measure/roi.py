"""Return on a campaign: what its incremental revenue earned against what it cost.

- incremental revenue = revenue lift per treated customer x treated customers (the lift
  and its interval come from :mod:`custintel.measure.lift`);
- incremental margin = incremental revenue x the margin rate;
- cost = contacts x cost per contact + treated converters x the offer's cost per
  redemption (a discount is paid to everyone who uses it, not only to those it moved);
- ROI = (incremental margin - cost) / cost.

The costs are known amounts, so ROI is a linear function of the revenue lift and its
interval is the lift's interval carried through the same formula.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Roi:
    treated: int
    incremental_revenue: float
    incremental_revenue_low: float
    incremental_revenue_high: float
    incremental_margin: float
    cost: float
    net: float
    net_low: float
    net_high: float
    roi: float | None
    roi_low: float | None
    roi_high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def roi(
    revenue_lift: float,
    revenue_low: float,
    revenue_high: float,
    *,
    treated: int,
    margin: float = 1.0,
    cost: float = 0.0,
) -> Roi:
    """ROI with its interval from the revenue lift per treated customer and its interval,
    and the campaign's known ``cost`` (contacts and offers, :func:`costs`)."""
    if not 0 <= margin <= 1:
        raise ValueError(f"the margin rate must lie between 0 and 1, not {margin}")
    n = treated
    inc, lo, hi = revenue_lift * n, revenue_low * n, revenue_high * n
    net, net_lo, net_hi = margin * inc - cost, margin * lo - cost, margin * hi - cost
    if cost > 0:
        r, r_lo, r_hi = net / cost, net_lo / cost, net_hi / cost
    else:
        r = r_lo = r_hi = None
    return Roi(n, inc, lo, hi, margin * inc, cost, net, net_lo, net_hi, r, r_lo, r_hi)


def costs(
    channels: list[str] | tuple[str, ...] | object,
    offers: object,
    converted: object,
    contact_costs: dict[str, float],
    offer_costs: dict[str, float],
) -> tuple[float, float]:
    """Contact costs of the treated (one contact each, at its channel's cost) and offer
    costs of those who converted (pandas Series of channel, offer and 0/1 converted)."""
    import pandas as pd

    ch, of, cv = pd.Series(channels), pd.Series(offers), pd.Series(converted)
    contact = float(ch.map(contact_costs).fillna(0.0).sum())
    offer = float((of.map(offer_costs).fillna(0.0).to_numpy() * cv.to_numpy()).sum())
    return contact, offer
