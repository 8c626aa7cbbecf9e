"""Conditions written in SQL in the config (an audience's ``where``, an offer's
``eligible``), checked against the columns a customer has and evaluated on a frame.

SQL because it is what marketing analysts already write; sqlglot reads it to find the
columns it names, so a misspelt column fails before anything runs, with the known ones.
"""

from __future__ import annotations

import difflib

import duckdb
import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp

from custintel.core.errors import ConfigError


def columns_of(condition: str, where: str) -> list[str]:
    """The columns a condition names (lower case), or a ConfigError naming ``where``."""
    try:
        tree = sqlglot.parse_one(condition, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {condition!r} is not a SQL condition: {first}") from None
    if isinstance(tree, exp.Select | exp.Union) or tree.find(exp.Select):
        raise ConfigError(f"{where}: {condition!r}: a condition, not a query")
    return sorted({c.name.lower() for c in tree.find_all(exp.Column)})


def check(condition: str, where: str, known: list[str]) -> list[str]:
    """The columns a condition names, all of them known, else a ConfigError."""
    named = columns_of(condition, where)
    lower = {k.lower() for k in known}
    for c in named:
        if c not in lower:
            near = difflib.get_close_matches(c, sorted(lower), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ConfigError(f"{where}: no column {c!r} for {condition!r}{hint}")
    return named


def evaluate(frame: pd.DataFrame, condition: str, where: str) -> np.ndarray:
    """Whether each row meets the condition (NULL counts as not met)."""
    check(condition, where, list(frame.columns))
    con = duckdb.connect()
    try:
        con.register("customers", frame)
        # DuckDB keeps the frame's row order in a plain projection
        sql = f"SELECT coalesce(({condition})::BOOLEAN, false) AS ok FROM customers"
        result = con.execute(sql).fetch_arrow_table()
        return np.asarray(result.column(0).to_numpy(zero_copy_only=False), dtype=bool)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {condition!r} fails: {first}") from None
    finally:
        con.close()
