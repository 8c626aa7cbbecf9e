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
    contact_cost: float = 0.0,
    contacts: int | None = None,
    offer_cost: float = 0.0,
    redemptions: int = 0,
) -> Roi:
    """ROI with its interval from the revenue lift per treated customer and its interval.
    ``contacts`` defaults to one per treated customer."""
    if not 0 <= margin <= 1:
        raise ValueError(f"the margin rate must lie between 0 and 1, not {margin}")
    n = treated
    inc, lo, hi = revenue_lift * n, revenue_low * n, revenue_high * n
    cost = contact_cost * (n if contacts is None else contacts) + offer_cost * redemptions
    net, net_lo, net_hi = margin * inc - cost, margin * lo - cost, margin * hi - cost
    if cost > 0:
        r, r_lo, r_hi = net / cost, net_lo / cost, net_hi / cost
    else:
        r = r_lo = r_hi = None
    return Roi(n, inc, lo, hi, margin * inc, cost, net, net_lo, net_hi, r, r_lo, r_hi)
