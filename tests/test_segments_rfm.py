"""Classic RFM segments: every score cell has exactly one segment; the warehouse
expression agrees with the table."""

from __future__ import annotations

import ibis
import pandas as pd

from custintel.segments.rfm import NO_PURCHASE, RFM_SEGMENTS, rfm_segment, segment_of


def test_every_cell_has_exactly_one_segment() -> None:
    for r in range(1, 6):
        for f in range(1, 6):
            assert sum(s.holds(r, f) for s in RFM_SEGMENTS) == 1, (r, f)
    assert segment_of(5, 5) == "Champions" and segment_of(1, 1) == "Hibernating"
    assert segment_of(1, 5) == "Can't Lose Them" and segment_of(5, 1) == "New Customers"
    assert segment_of(None, None) == NO_PURCHASE


def test_warehouse_expression_matches_the_table() -> None:
    cells = [(r, f) for r in range(1, 6) for f in range(1, 6)] + [(None, None)]
    frame = pd.DataFrame(cells, columns=["r", "f"]).astype("Int64")
    t = ibis.memtable(frame)
    got = t.select(segment=rfm_segment(t.r, t.f)).execute().segment.tolist()
    assert got == [segment_of(r, f) for r, f in cells]
