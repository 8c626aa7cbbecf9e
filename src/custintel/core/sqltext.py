"""Quoting for the SQL text custintel writes by hand (DuckDB dialect)."""

from __future__ import annotations


def ident(name: str) -> str:
    """A double-quoted identifier; embedded double quotes are doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A single-quoted string literal; embedded single quotes are doubled."""
    return "'" + value.replace("'", "''") + "'"
