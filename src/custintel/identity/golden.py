"""The golden record: one row per customer, each attribute chosen by a survivorship rule.

Rules per attribute (``identity.survivorship``):

- ``source_priority``: the value from the most trusted source that has one
  (``identity.source_priority``), the most recent among equals;
- ``most_recent``: the value of the most recently updated (then created) profile;
- ``most_frequent``: the value most profiles agree on, ties broken by source priority.

Missing values never win. Every distinct e-mail, phone and address of a customer is also
kept in ``identity.contact_points`` for the identity graph, with the sources that gave it
and whether it is the one the golden record chose.
"""

from __future__ import annotations

from typing import get_args

import pandas as pd

from custintel.core.config import GoldenAttribute

ATTRIBUTES: tuple[str, ...] = get_args(GoldenAttribute)
CONTACT_KINDS = ("email", "phone", "address")


def _ranked(frame: pd.DataFrame, priority: list[str]) -> pd.DataFrame:
    """Profiles with a source rank (0 = most trusted) and a recency time."""
    rank = {s: i for i, s in enumerate(priority)}
    when = pd.to_datetime(frame["updated_at"], utc=True).fillna(
        pd.to_datetime(frame["created_at"], utc=True)
    )
    return frame.assign(
        _rank=frame["source"].map(rank).fillna(len(rank)).astype(int),
        _when=when.fillna(pd.Timestamp(0, tz="UTC")),
    )


def _pick(frame: pd.DataFrame, attribute: str, rule: str) -> pd.Series:
    """The surviving value of ``attribute`` per customer."""
    part = frame[["customer_id", attribute, "_rank", "_when"]].dropna(subset=[attribute])
    if rule == "most_frequent":
        counts = part.groupby(["customer_id", attribute]).agg(
            n=("_rank", "size"), best=("_rank", "min")
        )
        counts = counts.reset_index().sort_values(
            ["customer_id", "n", "best"], ascending=[True, False, True]
        )
        return counts.drop_duplicates("customer_id").set_index("customer_id")[attribute]
    if rule == "most_recent":
        order, ascending = ["customer_id", "_when", "_rank"], [True, False, True]
    else:  # source_priority
        order, ascending = ["customer_id", "_rank", "_when"], [True, True, False]
    part = part.sort_values(order, ascending=ascending, kind="stable")
    return part.drop_duplicates("customer_id").set_index("customer_id")[attribute]


def golden_records(
    records: pd.DataFrame, rules: dict[str, str], priority: list[str]
) -> pd.DataFrame:
    """``customer.profile`` from normalised profiles that carry their ``customer_id``."""
    frame = _ranked(records, priority)
    grouped = frame.groupby("customer_id")
    out = pd.DataFrame(
        {
            "profiles": grouped.size(),
            "sources": grouped["source"].agg(lambda s: ",".join(sorted(set(s)))),
            "first_seen": pd.to_datetime(grouped["created_at"].min(), utc=True),
        }
    )
    for attribute in ATTRIBUTES:
        out[attribute] = _pick(frame, attribute, rules.get(attribute, "source_priority"))
    for name in ("first_name", "last_name", "city"):
        out[name] = out[name].str.title()
    out = out.reset_index()
    return out[["customer_id", *ATTRIBUTES, "profiles", "sources", "first_seen"]].astype(
        {a: "string" for a in ATTRIBUTES}
    )


def contact_points(records: pd.DataFrame, golden: pd.DataFrame) -> pd.DataFrame:
    """Every distinct e-mail, phone and address of each customer."""
    frames = []
    chosen = golden.set_index("customer_id")
    for kind in CONTACT_KINDS:
        part = records[["customer_id", "source", kind, "created_at"]].dropna(subset=[kind])
        agg = part.groupby(["customer_id", kind]).agg(
            sources=("source", lambda s: ",".join(sorted(set(s)))),
            profiles=("source", "size"),
            first_seen=("created_at", "min"),
        )
        agg = agg.reset_index().rename(columns={kind: "value"})
        agg["kind"] = kind
        agg["is_primary"] = (
            agg["value"].to_numpy() == chosen[kind].reindex(agg["customer_id"]).to_numpy()
        )
        frames.append(agg)
    out = pd.concat(frames, ignore_index=True)
    out["first_seen"] = pd.to_datetime(out["first_seen"], utc=True)
    cols = ["customer_id", "kind", "value", "sources", "profiles", "is_primary", "first_seen"]
    return out[cols].astype({"value": "string", "kind": "string", "sources": "string"})
