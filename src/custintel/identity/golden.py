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

import duckdb
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
    con = duckdb.connect()
    con.register("records", records[["customer_id", "source", "created_at"]])
    # Grouped in DuckDB: a per-group Python join of the sources takes seconds per
    # hundred thousand customers.
    out = con.execute(
        "SELECT customer_id, count(*) AS profiles, "
        "array_to_string(list_sort(list_distinct(list(source))), ',') AS sources, "
        "min(created_at) AS first_seen FROM records GROUP BY customer_id"
    ).df()
    out = out.set_index("customer_id")
    out["first_seen"] = pd.to_datetime(out["first_seen"], utc=True)
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
    con = duckdb.connect()
    con.register("records", records[["customer_id", "source", "created_at", *CONTACT_KINDS]])
    con.register("golden", golden[["customer_id", *CONTACT_KINDS]])
    values = " UNION ALL ".join(
        f"SELECT customer_id, '{k}' AS kind, {k} AS value, source, created_at "
        f"FROM records WHERE {k} IS NOT NULL"
        for k in CONTACT_KINDS
    )
    chosen = " ".join(f"WHEN '{k}' THEN g.{k}" for k in CONTACT_KINDS)
    out = con.execute(
        f"""
        WITH v AS ({values}),
        agg AS (
            SELECT customer_id, kind, value,
                array_to_string(list_sort(list_distinct(list(source))), ',') AS sources,
                count(*) AS profiles, min(created_at) AS first_seen
            FROM v GROUP BY customer_id, kind, value
        )
        SELECT a.customer_id, a.kind, a.value, a.sources, a.profiles,
            coalesce(a.value = CASE a.kind {chosen} END, false) AS is_primary, a.first_seen
        FROM agg a LEFT JOIN golden g ON g.customer_id = a.customer_id
        ORDER BY a.customer_id, a.kind, a.value
        """
    ).df()
    out["first_seen"] = pd.to_datetime(out["first_seen"], utc=True)
    return out.astype(
        {"value": "string", "kind": "string", "sources": "string", "profiles": "int64"}
    )
