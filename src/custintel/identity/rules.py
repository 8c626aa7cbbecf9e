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


def rule_links(con: duckdb.DuckDBPyConnection, table: str, rule: MatchRule) -> pd.DataFrame:
    """Pairs (rid_l < rid_r) linked by ``rule`` over the records in ``table``."""
    present = " AND ".join(f"{f} IS NOT NULL" for f in rule.fields)
    same = " AND ".join(f"a.{f} = b.{f}" for f in rule.fields)
    extra = f" AND {COMPATIBLE_FIRST_NAME}" if rule.compatible_first_name else ""
    sql = f"""
        WITH k AS (SELECT * FROM {table} WHERE {present})
        SELECT a.rid AS rid_l, b.rid AS rid_r
        FROM k a JOIN k b ON {same} AND a.rid < b.rid{extra}
    """
    pairs = con.execute(sql).df()
    pairs["rule"] = rule.name
    return pairs


def deterministic_links(
    con: duckdb.DuckDBPyConnection, table: str, rules: list[MatchRule]
) -> pd.DataFrame:
    """Every rule's pairs; a pair found by several rules keeps the first rule's name."""
    frames = [rule_links(con, table, rule) for rule in rules]
    links = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["rid_l", "rid_r", "rule"])
    )
    return links.drop_duplicates(["rid_l", "rid_r"], keep="first").reset_index(drop=True)
