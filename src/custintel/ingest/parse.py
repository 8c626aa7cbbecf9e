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
from custintel.core.sqltext import ident as _q
from custintel.core.sqltext import literal as _lit
from custintel.ingest.readers import Scan

DECIMAL_TEXT = r"[+-]?([0-9]+(\.[0-9]{0,4}0*)?|\.[0-9]{1,4}0*)"
"""The text a decimal column accepts: DECIMAL(18,4) holds it exactly."""
INTEGER_TEXT = r"[+-]?[0-9]+(\.0*)?"
"""The text an integer column accepts: a whole number, zeros after a decimal point allowed."""
TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")


@dataclass(frozen=True)
class Mapping:
    """Where each contract column's text comes from, and which source columns are extra."""

    sources: dict[str, str]  # contract column -> source column
    constants: dict[str, str]  # contract column -> fixed text
    extra: list[str]  # source columns no contract column uses (schema drift)
    line_key: str | None = None  # key column numbered by file and line (not in the source)


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
    line_key = None
    if contract.line_key and contract.line_key not in sources | constants:
        line_key = contract.line_key
    missing = [
        c.name
        for c in contract.columns
        if c.required and c.name not in sources | constants and c.name != line_key
    ]
    if missing:
        raise SourceError(
            f"{where}: missing required column(s) {missing} for contract {contract.name!r}; "
            f"the file has {columns} (map them under sources.<name>.columns)"
        )
    used = set(sources.values())
    extra = [c for c in columns if c not in used]
    return Mapping(sources, constants, extra, line_key)


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
        # Plain digits with at most four decimals (zeros after them are exact): no
        # exponent, no digit separators, nothing DECIMAL(18,4) would round.
        return (
            f"CASE WHEN regexp_full_match({raw}, {_lit(DECIMAL_TEXT)}) "
            f"THEN TRY_CAST({raw} AS DECIMAL(18,4)) END"
        )
    if col.type == "integer":
        # Whole numbers only; "3.0" is accepted as 3, "2.5" and "1e2" are not numbers here.
        return (
            f"CASE WHEN regexp_full_match({raw}, {_lit(INTEGER_TEXT)}) "
            f"THEN TRY_CAST(split_part({raw}, '.', 1) AS BIGINT) END"
        )
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


def keeps_raw(col: Column) -> bool:
    """Whether the parsed table keeps the raw text beside the value.

    Plain text columns are their own raw text (trimmed), so only typed columns and
    columns with an allowed list (whose case is normalised) carry a ``__raw`` twin.
    """
    return col.type != "string" or col.allowed is not None


def parsed_select(
    contract: Contract,
    source: SourceConfig,
    mapping: Mapping,
    scan: Scan,
    *,
    system: str,
    source_name: str,
    file_label: str,
    load_id: str,
) -> str:
    """SELECT over a reader's scan giving typed contract columns plus lineage columns.

    Output columns: each contract column ``c`` (typed) and, where :func:`keeps_raw`,
    ``c__raw`` (text); ``source``, ``_source``, ``_file``, ``_load_id``, ``_malformed``,
    ``_raw_line``, ``_extra`` (JSON of extra source columns or NULL) and ``_line`` when
    the scan numbers its records (else :func:`numbered` adds it).
    """
    parts = []
    for col in contract.columns:
        raw = _raw(col, mapping, source)
        if keeps_raw(col):
            parts.append(f"{raw} AS {_q(col.name + '__raw')}")
        parts.append(f"{parse_expression(col, raw, source)}::{col.sql_type} AS {_q(col.name)}")
    malformed = "_malformed" if scan.marks_malformed else "NULL::VARCHAR"
    if mapping.extra:
        packed = ", ".join(f"{_lit(c)}: {_q(c)}" for c in mapping.extra)
        parts.append(
            f"CASE WHEN {malformed} IS NULL THEN to_json({{{packed}}})::VARCHAR END AS _extra"
        )
    else:
        parts.append("NULL::VARCHAR AS _extra")
    parts += [
        f"{_lit(system)} AS source",
        f"{_lit(source_name)} AS _source",
        f"{_lit(file_label)} AS _file",
        f"{_lit(load_id)} AS _load_id",
        f"{malformed} AS _malformed",
        f"{'_raw_line' if scan.marks_malformed else 'NULL::VARCHAR'} AS _raw_line",
    ]
    if scan.numbered:
        parts.append(f"(_ord + {scan.header_lines})::BIGINT AS _line")
    return f"SELECT {', '.join(parts)} FROM ({scan.sql})"


def numbered(table: str, header_lines: int) -> str:
    """Number the records of a table filled from an unnumbered scan.

    DuckDB keeps insertion order (``preserve_insertion_order``), so a fresh table's
    ``rowid`` is the record's position in the file.
    """
    return f"SELECT *, (rowid + 1 + {header_lines})::BIGINT AS _line FROM {_q(table)}"


def with_malformed(
    parsed: str, malformed: str, header_lines: int, constants: dict[str, str]
) -> str:
    """Rebuild a parsed table when the scan rejected lines: shift each good record's line
    by the malformed lines before it and add the malformed lines as records.

    The i-th good record sits on line header + i + (malformed lines before it); malformed
    line j is preceded by ``_before`` good records, so an as-of join finds the count.
    """
    lit = ", ".join(f"{_lit(v)} AS {_q(k)}" for k, v in constants.items())
    return (
        f"WITH bad AS ({malformed}), "
        f"steps AS (SELECT _before, max(_j) AS _j FROM bad GROUP BY _before), "
        f"good AS (SELECT *, _line - {header_lines} AS _o FROM {_q(parsed)}) "
        f"SELECT good.* EXCLUDE (_o, _line), good._line + coalesce(steps._j, 0) AS _line "
        f"FROM good ASOF LEFT JOIN steps ON good._o > steps._before "
        f"UNION ALL BY NAME SELECT {lit}, _line, _malformed, _raw_line FROM bad"
    )
