"""Deterministic linking: records equal on a rule's fields are one customer.

Rules run as SQL self-joins in the private DuckDB of a resolve (key groups are small once
shared values are removed, so the pairs stay few). A rule may also require compatible
first names, which keeps a household that shares one e-mail address apart.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from custintel.core.config import MatchRule

COMPATIBLE_FIRST_NAME = """(
    a.first_name IS NULL OR b.first_name IS NULL
    OR a.first_name = b.first_name
    OR list_contains(string_split(b.name_group, ' '), a.first_name)
    OR list_contains(string_split(a.name_group, ' '), b.first_name)
    OR (a.first_name = b.last_name AND a.last_name = b.first_name)
    OR jaro_winkler_similarity(a.first_name, b.first_name) >= 0.9
)"""


def rule_links(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rule: MatchRule,
    link_only: bool = False,
    *,
    new_only: bool = False,
) -> pd.DataFrame:
    """Pairs (rid_l < rid_r) linked by ``rule`` over the records in ``table``; with
    ``link_only``, only pairs from two different sources; with ``new_only``, only the
    pairs touching a record whose ``is_new`` is true (an incremental run joins the new
    records to all, not all to all)."""
    present = " AND ".join(f"{f} IS NOT NULL" for f in rule.fields)
    same = " AND ".join(f"a.{f} = b.{f}" for f in rule.fields)
    extra = f" AND {COMPATIBLE_FIRST_NAME}" if rule.compatible_first_name else ""
    if link_only:
        extra += " AND a.source <> b.source"
    if new_only:
        sql = f"""
            WITH k AS (SELECT * FROM {table} WHERE {present})
            SELECT DISTINCT least(a.rid, b.rid) AS rid_l, greatest(a.rid, b.rid) AS rid_r
            FROM (SELECT * FROM k WHERE is_new) a JOIN k b ON {same} AND a.rid <> b.rid{extra}
        """
    else:
        sql = f"""
            WITH k AS (SELECT * FROM {table} WHERE {present})
            SELECT a.rid AS rid_l, b.rid AS rid_r
            FROM k a JOIN k b ON {same} AND a.rid < b.rid{extra}
        """
    pairs = con.execute(sql).df()
    pairs["rule"] = rule.name
    return pairs


def deterministic_links(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rules: list[MatchRule],
    link_only: bool = False,
    *,
    new_only: bool = False,
) -> pd.DataFrame:
    """Every rule's pairs; a pair found by several rules keeps the first rule's name."""
    frames = [rule_links(con, table, rule, link_only, new_only=new_only) for rule in rules]
    links = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["rid_l", "rid_r", "rule"])
    )
    return links.drop_duplicates(["rid_l", "rid_r"], keep="first").reset_index(drop=True)
