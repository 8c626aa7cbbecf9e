"""What ingestion rejected: counts by source and rule, and example rows, read from the warehouse."""

from __future__ import annotations

import json
from typing import Any

from custintel.core.lineage import ensure_ops_tables
from custintel.core.warehouse import Warehouse
from custintel.ingest.results import QUARANTINE_TABLE


def quality_summary(wh: Warehouse, examples_per_rule: int = 5) -> dict[str, Any]:
    """Current state of every loaded input (latest load per file) plus quarantine examples."""
    if not wh.read_only:
        ensure_ops_tables(wh)
    if not wh.exists("ops", "ingested_files"):
        return {
            "totals": dict.fromkeys(
                ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate"), 0
            ),
            "sources": {},
            "examples": [],
        }
    files = wh.table("ops", "ingested_files").order_by(["source", "file"]).execute()
    sources: dict[str, dict[str, Any]] = {}
    for row in files.to_dict("records"):
        entry = sources.setdefault(
            row["source"],
            {
                "files": 0,
                "rows_in": 0,
                "rows_clean": 0,
                "rows_quarantined": 0,
                "rows_duplicate": 0,
                "rules": {},
                "extra_columns": [],
            },
        )
        entry["files"] += 1
        for key in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate"):
            entry[key] += int(row[key])
        for rule, n in json.loads(row["rule_counts"] or "{}").items():
            entry["rules"][rule] = entry["rules"].get(rule, 0) + int(n)
        for col in json.loads(row["extra_columns"] or "[]"):
            if col not in entry["extra_columns"]:
                entry["extra_columns"].append(col)
    examples: list[dict[str, Any]] = []
    if wh.exists("quarantine", QUARANTINE_TABLE):
        q = wh.table("quarantine", QUARANTINE_TABLE)
        ranked = q.mutate(
            _n=q._line.rank().over(group_by=[q._source, q.rule], order_by=[q._file, q._line])
        )
        picked = ranked.filter(ranked._n < examples_per_rule).order_by(
            ["_source", "rule", "_file", "_line"]
        )
        frame = picked.select(
            "_source", "rule", "column_name", "_file", "_line", "message", "raw"
        ).execute()
        examples = [
            {
                "source": r["_source"],
                "rule": r["rule"],
                "column": r["column_name"],
                "file": r["_file"],
                "line": int(r["_line"]),
                "message": r["message"],
                "raw": r["raw"],
            }
            for r in frame.to_dict("records")
        ]
    warnings: list[str] = []
    runs = wh.table("ops", "ingest_runs")
    if "warnings" in runs.columns:
        last = runs.order_by(runs.started_at.desc()).limit(1).select("warnings").execute()
        if len(last) and last.warnings.iloc[0]:
            warnings = json.loads(last.warnings.iloc[0])
    totals = {
        key: sum(s[key] for s in sources.values())
        for key in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")
    }
    return {"totals": totals, "sources": sources, "examples": examples, "warnings": warnings}
