"""Holdouts: who is held out of a campaign, from a stable hash of campaign and customer.

A customer's unit value u in [0, 1) comes from BLAKE2b of ``"<group>:<customer_id>"``, so
it is the same on every run, machine and backend, and independent across groups. A
customer is held out when u is below the group's threshold: the holdout share, or, for a
stratified holdout, the share's quantile of u within each stratum, frozen at the first
run (exactly the share of each stratum then, and nobody moves afterwards).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def units(group: str, customer_ids: np.ndarray | list[str]) -> np.ndarray:
    """The unit value of each customer in a group (hashlib is stable across versions,
    unlike a warehouse's own hash function)."""
    prefix = f"{group}:".encode()
    out = np.empty(len(customer_ids), dtype=np.float64)
    for i, cid in enumerate(customer_ids):
        digest = hashlib.blake2b(prefix + str(cid).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def thresholds(u: np.ndarray, strata: np.ndarray, share: float) -> dict[str, float]:
    """Per stratum, the threshold that holds out ``round(share * n)`` of its members."""
    out = {}
    frame = pd.DataFrame({"u": u, "s": pd.Series(strata).astype(str).to_numpy()})
    for s, g in frame.groupby("s", sort=True):
        k = round(share * len(g))
        values = np.sort(g.u.to_numpy())
        out[str(s)] = float(values[k - 1]) if k > 0 else -1.0
    return out


def held_out(
    u: np.ndarray,
    share: float,
    strata: np.ndarray | None = None,
    frozen: dict[str, float] | None = None,
) -> np.ndarray:
    """Whether each customer is in the control group. Unstratified: u < share.
    Stratified: u at or below the stratum's frozen threshold (a new stratum: u < share)."""
    if strata is None or frozen is None:
        return u < share
    s = pd.Series(strata).astype(str)
    limit = s.map(frozen).to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(limit), u < share, u <= limit)
