"""What a load writes: the clean rows, the quarantined rows and the cleared values, as
Ibis expressions."""

from __future__ import annotations

import json
from datetime import datetime

import ibis
import ibis.expr.types as ir

from custintel.core.contracts import Contract
from custintel.ingest.rules import Rule, raw_of

CLEAN_LINEAGE = ("source", "_source", "_file", "_line", "_load_id", "_flags", "_extra")


def clean_rows(checked: ir.Table, found: ir.Table, contract: Contract) -> ir.Table:
    """The rows that passed, in contract shape plus lineage columns."""
    kept = checked.anti_join(found, checked._line == found._line)
    return kept.select(*contract.names, *CLEAN_LINEAGE)


def _json_string(value: ir.StringValue) -> ir.StringValue:
    """A JSON string literal for ``value``.

    Written by hand because Ibis has no portable struct-to-JSON: DuckDB and Spark spell
    it differently. Only quarantined rows go through it, so speed does not matter.
    """
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char, code in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        escaped = escaped.replace(char, code)
    return ibis.ifelse(value.isnull(), "null", ibis.literal('"') + escaped + ibis.literal('"'))


def _json_object(pairs: dict[str, ir.StringValue]) -> ir.StringValue:
    if not pairs:
        return ibis.literal("{}")
    parts: list[ir.StringValue] = []
    for i, (key, value) in enumerate(pairs.items()):
        parts.append(ibis.literal(("{" if i == 0 else ",") + json.dumps(key) + ":"))
        parts.append(_json_string(value))
    parts.append(ibis.literal("}"))
    return ibis.literal("").join(parts)


def _origin(t: ir.Table, run_id: str, contract: Contract) -> dict[str, ir.Value]:
    """Where a quarantined row or value came from: the run, the load, the file and line."""
    return {
        "run_id": ibis.literal(run_id),
        "_load_id": t._load_id,
        "contract": ibis.literal(contract.name),
        "source": t.source,
        "_source": t._source,
        "_file": t._file,
        "_line": t._line,
    }


def quarantined_rows(
    checked: ir.Table,
    found: ir.Table,
    contract: Contract,
    sources: dict[str, str],
    run_id: str,
    at: datetime,
) -> ir.Table:
    """Rejected rows with where they came from, the rule, a message and the raw values."""
    bad = found.filter(found._outcome == "quarantine")
    t = checked.join(bad, checked._line == bad._line)
    raw = _json_object({src: raw_of(t, col) for col, src in sources.items()})
    return t.select(
        **_origin(t, run_id, contract),
        rule=bad._rule,
        column_name=bad._column,
        message=bad._message,
        raw=ibis.ifelse(t._malformed.notnull(), _json_object({"line": t._raw_line}), raw),
        extra=t._extra,
        quarantined_at=ibis.literal(at, type="timestamp('UTC')"),
    )


def cleared_fields(
    checked: ir.Table,
    found: ir.Table,
    contract: Contract,
    clearing: list[Rule],
    run_id: str,
    at: datetime,
) -> ir.Table:
    """One row per value a field-level rule cleared on a kept row: where it came from,
    the rule, a message and the raw text, so the value is never silently lost."""
    kept = checked.anti_join(found, checked._line == found._line)
    parts = []
    for rule in clearing:
        hit = kept.filter(kept._cleared.contains(f",{rule.id},"))
        parts.append(
            hit.select(
                **_origin(hit, run_id, contract),
                rule=ibis.literal(rule.id),
                column_name=ibis.literal(rule.column),
                message=rule.message(hit),
                raw_value=raw_of(hit, rule.column),
                quarantined_at=ibis.literal(at, type="timestamp('UTC')"),
            )
        )
    return ibis.union(*parts)
