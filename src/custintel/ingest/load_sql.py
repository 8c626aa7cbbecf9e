"""The SQL of a load, compiled once per source and run: the view of rows other inputs
loaded, the exception plan, the outcome plan, scratch tables and counts. A mixin of
:class:`~custintel.ingest.loader.Loader`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis.expr.types as ir

from custintel.core.config import ProjectConfig
from custintel.core.contracts import Contract
from custintel.core.sqltext import ident as _q
from custintel.core.sqltext import literal as _lit
from custintel.core.warehouse import Warehouse
from custintel.ingest.outcomes import clean_rows, cleared_fields, quarantined_rows
from custintel.ingest.parse import (
    Mapping,
)
from custintel.ingest.results import LoadResult
from custintel.ingest.rules import Rule, check, exceptions, rules_for


class LoadSql:
    """The SQL-building half of :class:`~custintel.ingest.loader.Loader`."""

    wh: Warehouse
    config: ProjectConfig
    duck: Any
    run_id: str
    started: datetime
    _plans: dict[tuple[Any, ...], dict[str, Any]]

    def _existing_view(self, view: str, contract: Contract, name: str, label: str) -> None:
        """The rows other inputs loaded, which this load's keys are checked against."""
        spark = self.wh.kind == "spark"

        def quote(n: str) -> str:
            return f"`{n}`" if spark else _q(n)

        cols = ", ".join(quote(c) for c in ["source", "_source", "_file", "_line", *contract.names])
        table = self.wh.qualified("clean", contract.name)
        where = f"_source <> {_lit(name)} OR _file <> {_lit(label)}"
        kind = "TEMPORARY VIEW" if spark else "TEMP VIEW"
        self.wh.sql(
            f"CREATE OR REPLACE {kind} {quote(view)} AS SELECT {cols} FROM {table} WHERE {where}"
        )

    def _temp(self, name: str) -> ir.Table:
        if self.wh.kind == "duckdb":
            return self.wh.con.table(name, database=("temp", "main"))
        return self.wh.con.table(name)

    def _plan_exceptions(
        self, name: str, contract: Contract, parsed: ir.Table, existing: str | None
    ) -> dict[str, Any]:
        """Compiling Ibis expressions costs far more than running them on a small input
        (half a second a file), so a source's SQL is compiled once per run. The rules'
        "now" is the start of the run for the same reason."""
        rules = rules_for(contract, self.config.quality_for(name), self.started)
        checked = check(parsed, rules)
        table = self._temp(existing) if existing else None
        return {
            "checked": checked,
            "clearing": [r for r in rules if r.action == "clear"],
            "flagging": any(r.action == "flag" for r in rules),
            "exceptions": self.wh.compile(exceptions(checked, contract, table)),
        }

    def _plan_outcomes(
        self,
        checked: ir.Table,
        clearing: list[Rule],
        flagging: bool,
        found: ir.Table,
        contract: Contract,
        mapping: Mapping,
    ) -> dict[str, str]:
        plan = {
            "tally": self.wh.compile(found.group_by(["_outcome", "_rule"]).agg(n=found.count())),
            "prior": self.wh.compile(
                found.filter(found._prior.notnull()).select("_prior").distinct()
            ),
            "clean": self.wh.compile(clean_rows(checked, found, contract)),
            "quarantine": self.wh.compile(
                quarantined_rows(
                    checked, found, contract, mapping.sources, self.run_id, self.started
                )
            ),
            "flags": "",
            "fields": "",
            "field_tally": "",
        }
        if clearing:
            fields = cleared_fields(checked, found, contract, clearing, self.run_id, self.started)
            plan["fields"] = self.wh.compile(fields)
            plan["field_tally"] = self.wh.compile(fields.group_by("rule").agg(n=fields.count()))
        if flagging:
            kept = clean_rows(checked, found, contract).filter(lambda t: t._flags.notnull())
            flags = kept.select(flag=kept._flags.split(",").unnest())
            plan["flags"] = self.wh.compile(flags.group_by("flag").agg(n=flags.count()))
        return plan

    def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        if self.wh.kind == "spark":
            return [tuple(row) for row in self.wh.sql(sql).collect()]
        return list(self.wh.sql(sql).fetchall())

    def _stage_sql(self, name: str, sql: str) -> ir.Table:
        """Materialise a (small) scratch table from SQL where the warehouse can read it."""
        if self.wh.kind == "duckdb":
            self.duck.execute(f"CREATE OR REPLACE TEMP TABLE {_q(name)} AS {sql}")
            return self._temp(name)
        self.wh.replace("staging", name, sql)
        return self.wh.table("staging", name)

    def _count(self, name: str, label: str, parsed: str, plan: dict[str, Any]) -> LoadResult:
        """Outcome, rule and flag counts of a load."""
        table = _q(parsed) if self.wh.kind == "duckdb" else f"`{parsed}`"
        rows_in = int(self._fetch(f"SELECT count(*) FROM {table}")[0][0])
        rule_counts: dict[str, int] = {}
        duplicates = 0
        for outcome, rule, n in self._fetch(plan["tally"]):
            if outcome == "quarantine":
                rule_counts[str(rule)] = int(n)
            elif outcome == "duplicate":
                duplicates += int(n)
        flag_counts = (
            {str(f): int(n) for f, n in self._fetch(plan["flags"])} if plan["flags"] else {}
        )
        field_counts = (
            {str(r): int(n) for r, n in self._fetch(plan["field_tally"])}
            if plan["field_tally"]
            else {}
        )
        rows_quarantined = sum(rule_counts.values())
        return LoadResult(
            name,
            label,
            "loaded",
            rows_in=rows_in,
            rows_clean=rows_in - rows_quarantined - duplicates,
            rows_quarantined=rows_quarantined,
            rows_duplicate=duplicates,
            rule_counts=dict(sorted(rule_counts.items())),
            flag_counts=dict(sorted(flag_counts.items())),
            field_counts=dict(sorted(field_counts.items())),
        )
