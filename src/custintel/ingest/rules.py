"""Quality rules as Ibis expressions, so they run unchanged on DuckDB and on Spark.

A rule is data (:class:`Rule`): an id, the column it checks, whether it rejects or only
flags, a predicate that is true for a *bad* row, and a message built from the row's raw
text. :func:`rules_for` derives the default rules from a contract and the quality
config; :func:`check` evaluates them and marks each row's first failing rule;
:func:`classify` adds the duplicate and key-conflict decisions and gives each row exactly
one outcome: ``clean``, ``quarantine`` or ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir

from custintel.core.config import QualityConfig
from custintel.core.contracts import Contract

EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
PHONE_PATTERN = r"^\+?[0-9 ()./-]{6,24}$"

Predicate = Callable[[ir.Table], ir.BooleanValue]
Message = Callable[[ir.Table], ir.StringValue]


@dataclass(frozen=True)
class Rule:
    """One quality rule. ``bad(t)`` is true for rows that break it."""

    id: str
    column: str
    action: Literal["reject", "flag", "clear"]
    description: str
    bad: Predicate
    message: Message


def raw_of(t: ir.Table, column: str) -> ir.StringValue:
    """The raw text of a column: its ``__raw`` twin when the parser kept one, else itself."""
    twin = f"{column}__raw"
    return t[twin] if twin in t.columns else t[column]


def _text(t: ir.Table, column: str) -> ir.StringValue:
    return raw_of(t, column).fill_null("")


def _say(column: str, template: str) -> Message:
    """A message ``<column>: '<raw value>' <template>``."""
    return lambda t: ibis.literal(f"{column}: '") + _text(t, column) + ibis.literal(f"' {template}")


NUMBER_NOTE = {
    "decimal": " written plainly with at most 4 decimals (no exponent, no digit separators: "
    "nothing is rounded).",
    "integer": " (a whole number; 2.5 or 1e2 is refused, not rounded).",
}


def _type_message(column: str, kind: str) -> Message:
    """Why a value is not of its type; numbers say what exactly is wrong with them."""
    plain = _say(column, f"is not a valid {kind}")
    if kind not in NUMBER_NOTE:
        return plain

    def message(t: ir.Table) -> ir.StringValue:
        text = _text(t, column)
        cases = [
            (
                text.re_search(r"^[+-]?[0-9.]+[eE][+-]?[0-9]+$"),
                "is in scientific notation; write the digits out",
            ),
            (
                text.re_search(r"^[+-]?[0-9][0-9_, '.]*$") & text.re_search(r"[_, ']"),
                "is written with digit separators",
            ),
        ]
        if kind == "decimal":
            cases.append(
                (
                    text.re_search(r"^[+-]?[0-9]*\.[0-9]{5,}$"),
                    "has more than 4 decimals (it would be rounded)",
                )
            )
        else:
            cases.append((text.re_search(r"^[+-]?[0-9]*\.[0-9]+$"), "is not a whole number"))
        return (
            ibis.literal(f"{column}: '")
            + text
            + ibis.literal("' ")
            + ibis.cases(
                *[(cond, ibis.literal(words)) for cond, words in cases],
                else_=ibis.literal(f"is not a valid {kind}"),
            )
        )

    return message


def rules_for(contract: Contract, quality: QualityConfig, now: datetime) -> list[Rule]:
    """The default rules of a contract, in the order they are tried."""
    rules: list[Rule] = [
        Rule(
            "malformed",
            "*",
            "reject",
            "The line could not be split into the header's columns or is not valid text.",
            lambda t: t._malformed.notnull(),
            lambda t: t._malformed,
        )
    ]
    for col in contract.columns:
        if not col.nullable:
            rules.append(
                Rule(
                    f"not_null.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must not be empty.",
                    lambda t, c=col.name: raw_of(t, c).isnull(),
                    lambda t, c=col.name: ibis.literal(f"{c}: required value is empty"),
                )
            )
    for col in contract.columns:
        if col.type != "string":
            rules.append(
                Rule(
                    f"type.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must be a valid {col.type}" + NUMBER_NOTE.get(col.type, "."),
                    lambda t, c=col.name: t[f"{c}__raw"].notnull() & t[c].isnull(),
                    _type_message(col.name, col.type),
                )
            )
    for col in contract.columns:
        allowed = quality.allowed_values.get(col.name, col.allowed)
        if allowed is not None:
            values = [v.upper() if col.name == "currency" else v.lower() for v in allowed]
            shown = ", ".join(values[:8]) + (" ..." if len(values) > 8 else "")
            rules.append(
                Rule(
                    f"allowed.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must be one of: {shown}.",
                    lambda t, c=col.name, v=tuple(values): t[c].notnull() & ~t[c].isin(v),
                    _say(col.name, f"is not an allowed value ({shown})"),
                )
            )
    for col in contract.columns:
        low, high = col.minimum, col.maximum
        if col.name == "amount":
            high = quality.max_amount
        if low is not None:
            rules.append(
                Rule(
                    f"range.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must be at least {low:g}.",
                    lambda t, c=col.name, lo=low: t[c] < lo,
                    _say(col.name, f"is below the minimum {low:g}"),
                )
            )
        if high is not None:
            rules.append(
                Rule(
                    f"range.{col.name}.max",
                    col.name,
                    "reject",
                    f"{col.name} must be at most {high:g}.",
                    lambda t, c=col.name, hi=high: t[c].abs() > hi if c == "amount" else t[c] > hi,
                    _say(col.name, f"is above the plausible maximum {high:g}"),
                )
            )
    latest = now + timedelta(hours=quality.future_tolerance_hours)
    earliest = datetime.fromisoformat(quality.earliest_timestamp).replace(tzinfo=now.tzinfo)
    for col in contract.columns:
        if col.type == "timestamp":
            rules.append(
                Rule(
                    f"future.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must not lie in the future (tolerance "
                    f"{quality.future_tolerance_hours:g} h).",
                    lambda t, c=col.name: t[c] > ibis.literal(latest),
                    _say(col.name, "lies in the future"),
                )
            )
        if col.type in ("timestamp", "date"):
            # Event times before `earliest_timestamp` are implausible; dates (birth dates)
            # only before 1900. Dates in the future are as wrong as future timestamps.
            if col.type == "timestamp":
                lowest, floor_text = ibis.literal(earliest), quality.earliest_timestamp
            else:
                lowest, floor_text = ibis.literal(date(1900, 1, 1)), "1900-01-01"
                rules.append(
                    Rule(
                        f"future.{col.name}",
                        col.name,
                        "reject",
                        f"{col.name} must not lie in the future.",
                        lambda t, c=col.name: t[c] > ibis.literal(latest.date()),
                        _say(col.name, "lies in the future"),
                    )
                )
            rules.append(
                Rule(
                    f"range.{col.name}",
                    col.name,
                    "reject",
                    f"{col.name} must not be before {floor_text}.",
                    lambda t, c=col.name, lo=lowest: t[c] < lo,
                    _say(col.name, f"is before {floor_text}"),
                )
            )
    if contract.amount_rule:
        # A negative purchase is a return written without its flag... or an error; a
        # purchase of 0 is real (a free sample, a fully discounted order, a loyalty
        # reward): it counts as a purchase and is flagged, not quarantined.
        rules.append(
            Rule(
                "amount.sign",
                "amount",
                "reject",
                "amount must not be negative for a purchase, nor zero for a return.",
                lambda t: ibis.ifelse(t.is_return.fill_null(False), t.amount == 0, t.amount < 0),
                _say("amount", "must not be negative for a purchase (nor zero for a return)"),
            )
        )
        rules.append(
            Rule(
                "amount.zero",
                "amount",
                "flag",
                "a purchase of amount 0 (flagged, row kept).",
                lambda t: ~t.is_return.fill_null(False) & (t.amount == 0),
                _say("amount", "is a purchase of amount 0"),
            )
        )
    for col in contract.columns:
        if col.syntax is not None:
            pattern = EMAIL_PATTERN if col.syntax == "email" else PHONE_PATTERN
            rules.append(
                Rule(
                    f"syntax.{col.name}",
                    col.name,
                    "flag",
                    f"{col.name} does not look like a valid {col.syntax} (flagged, row kept).",
                    lambda t, c=col.name, p=pattern: t[c].notnull() & ~t[c].re_search(p),
                    _say(col.name, f"does not look like a valid {col.syntax}"),
                )
            )
    cleared = {c.name for c in contract.columns if c.field_level}
    return [_field_level(r) if r.column in cleared else r for r in rules]


def _field_level(rule: Rule) -> Rule:
    """The rule of an optional attribute: a bad value is cleared, the row kept."""
    if rule.action == "flag":
        description = rule.description.replace("(flagged, row kept)", "(cleared, row kept)")
    else:
        description = rule.description.rstrip(".") + " (else the value is cleared, row kept)."
    return Rule(rule.id, rule.column, "clear", description, rule.bad, rule.message)


def check(t: ir.Table, rules: list[Rule]) -> ir.Table:
    """Add ``_rule``, ``_column``, ``_message`` (first rejecting rule), ``_flags`` and
    ``_cleared`` (``,rule,rule,``: the field-level rules that cleared a value), with each
    cleared value set to null (its text kept in the ``__raw`` twin)."""
    rejecting = [r for r in rules if r.action == "reject"]
    flagging = [r for r in rules if r.action == "flag"]
    clearing = [r for r in rules if r.action == "clear"]
    # A malformed row has no values, so only the malformed rule may judge it.
    ok = t._malformed.isnull()

    def first(pick: Callable[[Rule], ir.Value]) -> ir.Value:
        branches = [(rejecting[0].bad(t), pick(rejecting[0]))]
        branches += [(ok & r.bad(t).fill_null(False), pick(r)) for r in rejecting[1:]]
        return ibis.cases(*branches, else_=ibis.null("string"))

    flags = [ibis.ifelse(ok & r.bad(t).fill_null(False), r.id, None) for r in flagging]
    flag_text = ibis.literal(",").join(flags) if flags else None
    clears = {r.id: ok & r.bad(t).fill_null(False) for r in clearing}
    changed: dict[str, ir.Value] = {}
    for column in dict.fromkeys(r.column for r in clearing):
        bad = ibis.literal(False)
        for r in clearing:
            if r.column == column:
                bad = bad | clears[r.id]
        changed[column] = ibis.ifelse(bad, ibis.null(t[column].type()), t[column])
        if f"{column}__raw" not in t.columns:
            changed[f"{column}__raw"] = t[column]
    cleared_text: ir.StringValue = ibis.null("string")
    if clears:
        joined = ibis.literal(",") + ibis.literal("").join(
            [ibis.ifelse(c, rid + ",", "") for rid, c in clears.items()]
        )
        cleared_text = ibis.ifelse(joined == ",", ibis.null("string"), joined)
    return t.mutate(
        **changed,
        _cleared=cleared_text,
        _rule=first(lambda r: ibis.literal(r.id)),
        _column=first(lambda r: ibis.literal(r.column)),
        _message=first(lambda r: r.message(t)),
        _flags=ibis.null("string")
        if flag_text is None
        else ibis.ifelse(flag_text == "", ibis.null("string"), flag_text),
    )


def _same(t: ir.Table, columns: list[str], prefix: str) -> ir.BooleanValue:
    """Null-safe equality of every column with its ``prefix``-ed twin."""
    same = ibis.literal(True)
    for c in columns:
        same = same & t[c].identical_to(t[prefix + c])
    return same


EXCEPTION_COLUMNS = ("_line", "_outcome", "_rule", "_column", "_message", "_prior")


def _matches(
    left: ir.Table, right: ir.Table, keys: list[str], prefix: str
) -> list[ir.BooleanValue]:
    """Join predicates: each key column equals its ``prefix``-ed twin, NULL matching NULL."""
    return [left[k].identical_to(right[prefix + k]) for k in keys]


def exceptions(checked: ir.Table, contract: Contract, existing: ir.Table | None) -> ir.Table:
    """The rows that are not simply clean, with their outcome and reason.

    One row per ``_line`` of a quarantined or duplicate record (every other record is
    clean), columns :data:`EXCEPTION_COLUMNS`:

    - a row that breaks a rule goes to quarantine under its first rule;
    - among rows that pass, a row whose key (source system and contract key) was already
      loaded from another file (``existing``: ``source``, ``_source``, ``_file``,
      ``_line`` and the contract columns) is a duplicate if its values are identical,
      else it breaks the key (``unique.key``); ``_prior`` names that file as
      ``<source name>:<file>``, so the loader knows which loads depend on which;
    - otherwise the first row of a key in this file (lowest line) wins; a later row with
      identical values is a duplicate, one with different values breaks the key.

    Keys and values are compared exactly, column by column (NULL equals NULL), and values
    only for keys that repeat: a hash aggregate finds those, so the common case (unique
    keys) costs one grouping and the result stays small, however large the load.
    """
    cols = contract.names
    keys = ["source", *contract.key]
    valid = checked.filter(checked._rule.isnull()).select("source", "_line", *cols)
    parts = [
        checked.filter(checked._rule.notnull()).select(
            _line=checked._line,
            _outcome=ibis.literal("quarantine"),
            _rule=checked._rule,
            _column=checked._column,
            _message=checked._message,
            _prior=ibis.null("string"),
        )
    ]
    if existing is not None:
        prior = existing.select(
            _prior_source=existing._source,
            _prior_file=existing._file,
            _prior_line=existing._line,
            **{f"_p_{c}": existing[c] for c in ["source", *cols]},
        )
        hit = valid.join(prior, _matches(valid, prior, keys, "_p_"))
        where = (
            ibis.literal("key already loaded from ")
            + hit._prior_file
            + ibis.literal(" line ")
            + hit._prior_line.cast("string")
        )
        parts.append(
            _key_decision(
                hit, _same(hit, cols, "_p_"), where, hit._prior_source + ":" + hit._prior_file
            )
        )
        valid = valid.anti_join(prior, _matches(valid, prior, keys, "_p_"))
    repeated = (
        valid.group_by(keys)
        .agg(_n=valid.count(), _first_line=valid._line.min())
        .filter(lambda r: r._n > 1)
    )
    firsts = valid.join(
        repeated, [*_matches(valid, repeated, keys, ""), valid._line == repeated._first_line]
    ).select(_first_line=valid._line, **{f"_f_{c}": valid[c] for c in ["source", *cols]})
    later = valid.join(firsts, _matches(valid, firsts, keys, "_f_")).filter(
        lambda r: r._line > r._first_line
    )
    where = ibis.literal("same key as line ") + later._first_line.cast("string") + " of this file"
    parts.append(_key_decision(later, _same(later, cols, "_f_"), where, ibis.null("string")))
    return ibis.union(*parts)


def _key_decision(
    t: ir.Table, same: ir.BooleanValue, where: ir.StringValue, prior: ir.StringValue
) -> ir.Table:
    """A row whose key was seen before: a duplicate when its values are the same, else
    quarantined for breaking the key, saying ``where`` the key was seen."""
    return t.select(
        _line=t._line,
        _outcome=ibis.ifelse(same, "duplicate", "quarantine"),
        _rule=ibis.ifelse(same, ibis.null("string"), "unique.key"),
        _column=ibis.ifelse(same, ibis.null("string"), "*"),
        _message=ibis.ifelse(same, ibis.null("string"), where + " with different values"),
        _prior=prior,
    )
