"""Mapping a source's own columns onto a contract and parsing text into typed values.

Pure functions that build DuckDB SQL: :func:`resolve_mapping` decides which source column
(or constant) feeds each contract column and fails the source when a required one is
missing; :func:`parsed_select` turns the reader's text table into typed columns, keeping
each raw text beside its parsed value (``<column>__raw``) so rules can tell "empty" from
"unparseable" and quarantine can show what came in.
"""

from __future__ import annotations

from dataclasses import dataclass

from custintel.core.config import SourceConfig
from custintel.core.contracts import Column, Contract
from custintel.core.errors import SourceError

TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")


@dataclass(frozen=True)
class Mapping:
    """Where each contract column's text comes from, and which source columns are extra."""

    sources: dict[str, str]  # contract column -> source column
    constants: dict[str, str]  # contract column -> fixed text
    extra: list[str]  # source columns no contract column uses (schema drift)


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def resolve_mapping(
    contract: Contract, source: SourceConfig, columns: list[str], where: str
) -> Mapping:
    """Match contract columns to source columns: explicit mapping, else same name (any case)."""
    by_lower = {c.lower(): c for c in columns}
    unknown = set(source.columns) - set(contract.names)
    if unknown:
        raise SourceError(
            f"{where}: `columns` maps unknown contract column(s) {sorted(unknown)}; "
            f"contract {contract.name!r} has {contract.names}"
        )
    sources: dict[str, str] = {}
    constants: dict[str, str] = {}
    for col in contract.columns:
        if col.name in source.constants:
            constants[col.name] = source.constants[col.name]
        elif col.name in source.columns:
            wanted = source.columns[col.name]
            if wanted not in columns:
                raise SourceError(
                    f"{where}: column {wanted!r} (mapped to {col.name}) not found; "
                    f"the file has {columns}"
                )
            sources[col.name] = wanted
        elif col.name.lower() in by_lower:
            sources[col.name] = by_lower[col.name.lower()]
        elif col.name == "currency" and source.currency:
            constants[col.name] = source.currency
    missing = [c.name for c in contract.columns if c.required and c.name not in sources | constants]
    if missing:
        raise SourceError(
            f"{where}: missing required column(s) {missing} for contract {contract.name!r}; "
            f"the file has {columns} (map them under sources.<name>.columns)"
        )
    used = set(sources.values())
    extra = [c for c in columns if c not in used]
    return Mapping(sources, constants, extra)


def _raw(col: Column, mapping: Mapping, source: SourceConfig) -> str:
    if col.name in mapping.sources:
        text = f"NULLIF(trim({_q(mapping.sources[col.name])}), '')"
        if col.name == "currency" and source.currency:
            text = f"coalesce({text}, {_lit(source.currency)})"
        return text
    if col.name in mapping.constants:
        return _lit(mapping.constants[col.name])
    return "NULL::VARCHAR"


def _timestamp(raw: str, source: SourceConfig) -> str:
    """Text to TIMESTAMPTZ. Text without an offset is read in the session time zone,
    which the loader sets to the source's ``timezone`` while it parses (far cheaper than
    testing every value for an offset)."""
    fmt = source.timestamp_format
    if fmt:
        return f"try_strptime({raw}, {_lit(fmt)})::TIMESTAMPTZ"
    epoch = f"CASE WHEN regexp_full_match({raw}, '\\d{{9,10}}') THEN to_timestamp(TRY_CAST({raw} AS BIGINT)) END"
    return f"coalesce(TRY_CAST({raw} AS TIMESTAMPTZ), {epoch})"


def parse_expression(col: Column, raw: str, source: SourceConfig) -> str:
    """SQL turning the raw text of ``col`` into its contract type (NULL if unparseable)."""
    if col.type == "string":
        if col.allowed is not None:
            return f"upper({raw})" if col.name == "currency" else f"lower({raw})"
        return raw
    if col.type == "decimal":
        return f"TRY_CAST({raw} AS DECIMAL(18,4))"
    if col.type == "integer":
        return f"coalesce(TRY_CAST({raw} AS BIGINT), TRY_CAST(TRY_CAST({raw} AS DECIMAL(38,6)) AS BIGINT))"
    if col.type == "boolean":
        words_t = ", ".join(_lit(w) for w in TRUE_WORDS)
        words_f = ", ".join(_lit(w) for w in FALSE_WORDS)
        return (
            f"CASE WHEN lower({raw}) IN ({words_t}) THEN true "
            f"WHEN lower({raw}) IN ({words_f}) THEN false END"
        )
    if col.type == "date":
        if source.date_format:
            return f"try_strptime({raw}, {_lit(source.date_format)})::DATE"
        return f"TRY_CAST({raw} AS DATE)"
    if col.type == "timestamp":
        return _timestamp(raw, source)
    raise ValueError(f"unknown column type {col.type!r}")


def parsed_select(
    contract: Contract,
    source: SourceConfig,
    mapping: Mapping,
    read_table: str,
    *,
    system: str,
    source_name: str,
    file_label: str,
    load_id: str,
) -> str:
    """SELECT over the reader's table giving typed contract columns plus lineage columns.

    Output columns: for each contract column ``c``: ``c`` (typed) and ``c__raw`` (text);
    ``source``, ``_source``, ``_file``, ``_line``, ``_load_id``, ``_malformed``,
    ``_raw_line`` and ``_extra`` (JSON of extra source columns, NULL when none).
    """
    parts = []
    for col in contract.columns:
        raw = _raw(col, mapping, source)
        parts.append(f"{raw} AS {_q(col.name + '__raw')}")
        parts.append(f"{parse_expression(col, raw, source)}::{col.sql_type} AS {_q(col.name)}")
    if mapping.extra:
        packed = ", ".join(f"{_lit(c)}: {_q(c)}" for c in mapping.extra)
        parts.append(
            f"CASE WHEN _malformed IS NULL THEN to_json({{{packed}}})::VARCHAR END AS _extra"
        )
    else:
        parts.append("NULL::VARCHAR AS _extra")
    parts += [
        f"{_lit(system)} AS source",
        f"{_lit(source_name)} AS _source",
        f"{_lit(file_label)} AS _file",
        "_line::BIGINT AS _line",
        f"{_lit(load_id)} AS _load_id",
        "_malformed",
        "_raw_line",
    ]
    return f"SELECT {', '.join(parts)} FROM {_q(read_table)}"
