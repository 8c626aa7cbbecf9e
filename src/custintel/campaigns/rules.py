"""The rules a (customer, offer, channel) candidate meets, in the order they apply.

Eligibility (is the offer for this customer?), then reachability (can we reach them on
this channel?), then the contact policy (may we, now?), then selection (did this action
win its customer, its budget and the caps?). A candidate's rules are kept as a bit mask;
the first rule it failed is the one that excluded it, and the others are those that
would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    name: str
    stage: str
    meaning: str


RULES: tuple[Rule, ...] = (
    Rule("audience", "eligibility", "not in the campaign's audience"),
    Rule("offer_rules", "eligibility", "fails the offer's own eligibility condition"),
    Rule("no_score", "eligibility", "no score for the offer's label (not scored, or opted out of profiling)"),
    Rule("no_address", "reachability", "no usable address on the channel (no valid, unbounced e-mail; no phone; no postal address)"),
    Rule("consent", "policy", "marketing on the channel withdrawn (or never granted under opt-in)"),
    Rule("do_not_contact", "policy", "on a do-not-contact list that has not expired"),
    Rule("global_control", "policy", "in the global control group"),
    Rule("running_control", "policy", "in another campaign's control group that is still running"),
    Rule("recent_purchase", "policy", "bought the offer's category (or anything) recently"),
    Rule("open_ticket", "policy", "has an open or pending support ticket"),
    Rule("cooling_off", "policy", "contacted too recently"),
    Rule("fatigue", "policy", "engagement falling: the lowered cap is already reached"),
    Rule("frequency_cap", "policy", "the channel's or the overall cap is already reached"),
    Rule("arbitration", "selection", "another action won this customer or channel"),
    Rule("frequency_cap_in_run", "selection", "the cap is reached with the actions planned in this run"),
    Rule("budget", "selection", "the offer's, channel's or campaign's budget is spent"),
    Rule("inventory", "selection", "the offer's inventory is used up"),
    # Last, so the bits of runs recorded before it keep their meaning; only candidates
    # that failed nothing earlier reach selection, so it is still named first when alone.
    Rule("sleeping_dog", "eligibility", "predicted to buy less if contacted (negative uplift)"),
)  # fmt: skip

NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
BIT: dict[str, int] = {r.name: 1 << i for i, r in enumerate(RULES)}
OVERRIDABLE = ("do_not_contact", "cooling_off", "recent_purchase", "open_ticket")


def names(mask: int) -> list[str]:
    """The rules a mask holds, in order."""
    return [r.name for i, r in enumerate(RULES) if mask >> i & 1]


def first(masks: np.ndarray) -> np.ndarray:
    """Index of the first rule of each mask (-1 for none)."""
    m = masks.astype(np.int64)
    low = m & -m
    out = np.full(len(m), -1, dtype=np.int64)
    nz = low > 0
    out[nz] = np.log2(low[nz]).astype(np.int64)
    return out
