"""Classic named RFM segments from the recency and frequency scores (1 to 5).

The usual recency x frequency grid of RFM practice: each of the 25 cells belongs to one
named segment; customers without a purchase have no scores and form their own segment.
Written as an Ibis expression, so it runs in the warehouse on DuckDB and Spark.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

NO_PURCHASE = "No Purchase Yet"


@dataclass(frozen=True)
class RfmSegment:
    name: str
    recency: tuple[int, int]  # inclusive score range
    frequency: tuple[int, int]
    meaning: str

    def holds(self, r: int, f: int) -> bool:
        return (
            self.recency[0] <= r <= self.recency[1] and self.frequency[0] <= f <= self.frequency[1]
        )


RFM_SEGMENTS: tuple[RfmSegment, ...] = (
    RfmSegment("Champions", (5, 5), (4, 5), "bought recently and buy often"),
    RfmSegment("Loyal", (3, 4), (4, 5), "buy often, not quite the most recently"),
    RfmSegment("Potential Loyalists", (4, 5), (2, 3), "recent, with a few purchases"),
    RfmSegment("New Customers", (5, 5), (1, 1), "first purchase very recently"),
    RfmSegment("Promising", (4, 4), (1, 1), "recent first purchase"),
    RfmSegment("Need Attention", (3, 3), (3, 3), "average recency and frequency"),
    RfmSegment("About to Sleep", (3, 3), (1, 2), "slipping, with few purchases"),
    RfmSegment("Can't Lose Them", (1, 2), (5, 5), "bought most often, but long ago"),
    RfmSegment("At Risk", (1, 2), (3, 4), "bought often, but long ago"),
    RfmSegment("Hibernating", (1, 2), (1, 2), "few purchases, long ago"),
)


def segment_of(r: int | None, f: int | None) -> str:
    """The segment of one pair of scores (None: no purchase)."""
    if r is None or f is None:
        return NO_PURCHASE
    for s in RFM_SEGMENTS:
        if s.holds(r, f):
            return s.name
    raise ValueError(f"RFM scores out of range: R={r}, F={f}")


def rfm_segment(recency_score: ir.IntegerValue, frequency_score: ir.IntegerValue) -> ir.StringValue:
    """The segment name as an Ibis expression over the two score columns."""
    cases = [
        (
            recency_score.between(*s.recency) & frequency_score.between(*s.frequency),
            s.name,
        )
        for s in RFM_SEGMENTS
    ]
    return ibis.cases(*cases, else_=NO_PURCHASE)
