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
import pyarrow as pa

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


def _sources_sql(records: pd.DataFrame) -> str:
    """The sorted, comma-separated sources of a group, as one flag per source: the few
    source names are known, and flags aggregate in constant memory where collecting a
    list per group of a million does not."""
    names = sorted(records["source"].dropna().unique())
    if not names:
        return "NULL"
    flags = ", ".join(
        f"CASE WHEN bool_or(source = '{n.replace(chr(39), chr(39) * 2)}') THEN '{n.replace(chr(39), chr(39) * 2)}' END"
        for n in names
    )
    return f"concat_ws(',', {flags})"


def golden_records(
    records: pd.DataFrame, rules: dict[str, str], priority: list[str]
) -> pd.DataFrame:
    """``customer.profile`` from normalised profiles that carry their ``customer_id``."""
    frame = _ranked(records, priority)
    con = duckdb.connect()
    con.register("records", records[["customer_id", "source", "created_at"]])
    # Grouped in DuckDB: a per-group Python join of the sources takes seconds per
    # hundred thousand customers.
    out = _arrow_frame(
        con,
        f"SELECT customer_id, count(*) AS profiles, {_sources_sql(records)} AS sources, "
        "min(created_at) AS first_seen FROM records GROUP BY customer_id",
    )
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
    frames = []
    for kind in CONTACT_KINDS:  # one kind at a time keeps the grouping's memory small
        frames.append(
            _arrow_frame(
                con,
                f"""
                WITH agg AS (
                    SELECT customer_id, {kind} AS value, {_sources_sql(records)} AS sources,
                        count(*) AS profiles, min(created_at) AS first_seen
                    FROM records WHERE {kind} IS NOT NULL GROUP BY customer_id, {kind}
                )
                SELECT a.customer_id, '{kind}' AS kind, a.value, a.sources, a.profiles,
                    coalesce(a.value = g.{kind}, false) AS is_primary, a.first_seen
                FROM agg a LEFT JOIN golden g ON g.customer_id = a.customer_id
                """,
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["first_seen"] = pd.to_datetime(out["first_seen"], utc=True)
    return out.astype({"profiles": "int64"})


def _arrow_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result with Arrow-backed text columns: DuckDB's ``df()`` makes a Python
    object of every string, several hundred megabytes for a million rows."""
    table = con.execute(sql).fetch_arrow_table()
    return table.to_pandas(types_mapper=_text_as_string)


def _text_as_string(dtype: pa.DataType) -> pd.StringDtype | None:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return pd.StringDtype("pyarrow")
    return None
