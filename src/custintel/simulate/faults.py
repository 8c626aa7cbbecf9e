"""Data faults injected into the simulated order files at known rates.

Real feeds repeat rows, lose or garble timestamps, carry impossible amounts and odd
currency codes, and now and then a line that is not valid CSV. :func:`plan_faults` picks
which rows of a file get which fault (each row at most one, so every faulty line has one
reason) and where exact duplicates are inserted; the writer applies the plan while
formatting the file and records each faulty line in ``truth/faults.parquet`` with the
outcome ingestion should reach (``quarantine`` or ``duplicate``).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

FAULTS = (
    "missing_timestamp",
    "future_timestamp",
    "negative_amount",
    "absurd_amount",
    "unknown_currency",
    "malformed_line",
)
UNKNOWN_CURRENCIES = ("GPB", "UKP", "EURO", "XXX")
ABSURD_AMOUNT = 2_500_000.0  # far above any plausible order (the default limit is 100,000)
FUTURE_WEEKS = 52 * 75  # a timestamp some 75 years ahead


class Faults(BaseModel):
    """Share of rows of each order file given each fault (0 turns a fault off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duplicate: float = Field(default=0.004, ge=0, le=0.2, description="exact repeated rows")
    missing_timestamp: float = Field(default=0.002, ge=0, le=0.2)
    future_timestamp: float = Field(default=0.001, ge=0, le=0.2)
    negative_amount: float = Field(default=0.002, ge=0, le=0.2, description="on purchases")
    absurd_amount: float = Field(default=0.001, ge=0, le=0.2)
    unknown_currency: float = Field(default=0.001, ge=0, le=0.2, description="files with currency")
    malformed_line: float = Field(default=0.001, ge=0, le=0.2, description="an extra field")


def plan_faults(
    n: int,
    is_return: np.ndarray,
    has_currency: bool,
    rates: Faults,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to write, in order, and the fault code of each written row.

    Returns ``(rows, fault)``: ``rows`` indexes the clean frame (a duplicated row appears
    twice, the copy right after the original); ``fault`` is -1 for a sound row, the index
    of its fault in :data:`FAULTS`, or ``len(FAULTS)`` for the copy of a duplicate.
    """
    order = rng.permutation(n)
    code = np.full(n, -1, dtype=np.int64)
    taken = 0
    for i, name in enumerate(FAULTS):
        rate = getattr(rates, name)
        if name == "unknown_currency" and not has_currency:
            rate = 0.0
        k = int(rng.binomial(n, rate)) if rate else 0
        chosen = order[taken : taken + k]
        if name == "negative_amount":
            chosen = chosen[~is_return[chosen]]  # a negative return is legitimate
        code[chosen] = i
        taken += k
    sound = order[taken:]
    k = int(rng.binomial(n, rates.duplicate)) if rates.duplicate else 0
    duplicated = np.sort(sound[:k])
    rows = np.insert(
        np.arange(n), np.searchsorted(np.arange(n), duplicated, side="right"), duplicated
    )
    fault = code[rows]
    copies = np.flatnonzero(np.r_[False, rows[1:] == rows[:-1]])
    fault[copies] = len(FAULTS)
    return rows, fault
