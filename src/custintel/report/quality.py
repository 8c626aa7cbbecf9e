"""The data-quality page: counts, a chart of outcomes, rules broken and examples."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, table


def body(quality: dict[str, Any]) -> str:
    """The data-quality report: counts, a chart of outcomes, rules broken and examples."""
    sources = quality["sources"]
    totals = quality["totals"]
    names = list(sources)
    reconciled = (
        totals["rows_in"]
        == totals["rows_clean"] + totals["rows_quarantined"] + totals["rows_duplicate"]
    )
    parts = [
        f"<p>{totals['rows_in']:,} rows read = {totals['rows_clean']:,} clean + "
        f"{totals['rows_quarantined']:,} quarantined + {totals['rows_duplicate']:,} duplicates "
        f"<span class={'ok' if reconciled else 'bad'}>({'reconciled' if reconciled else 'DOES NOT RECONCILE'})</span>.</p>"
    ]
    warnings = quality.get("warnings", [])
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h2>Warnings of the last ingest run</h2><ul class=bad>{items}</ul>")
    if names:
        fig = go.Figure()
        for key, label, colour in (
            ("rows_clean", "clean", "#2f9e72"),
            ("rows_quarantined", "quarantined", "#e0692e"),
            ("rows_duplicate", "duplicate", "#9aa5b1"),
        ):
            fig.add_bar(
                name=label,
                y=names,
                x=[sources[n][key] for n in names],
                orientation="h",
                marker_color=colour,
            )
        fig.update_layout(barmode="stack", title="Rows by outcome and source", xaxis_title="rows")
        parts.append(figure(fig))
    parts.append("<h2>By source</h2>")
    parts.append(
        table(
            [
                "source",
                "files",
                "rows in",
                "clean",
                "quarantined",
                "duplicates",
                "extra columns (schema drift)",
            ],
            [
                [
                    n,
                    s["files"],
                    s["rows_in"],
                    s["rows_clean"],
                    s["rows_quarantined"],
                    s["rows_duplicate"],
                    ", ".join(s["extra_columns"]) or "-",
                ]
                for n, s in sources.items()
            ],
            numeric={1, 2, 3, 4, 5},
        )
    )
    rule_rows = [[n, rule, count] for n, s in sources.items() for rule, count in s["rules"].items()]
    parts.append("<h2>Rules broken</h2>")
    if rule_rows:
        fig = go.Figure(
            go.Bar(
                x=[r[2] for r in rule_rows],
                y=[f"{r[0]} · {r[1]}" for r in rule_rows],
                orientation="h",
                marker_color="#e0692e",
            )
        )
        fig.update_layout(
            title="Quarantined rows by rule",
            xaxis_title="rows",
            height=max(300, 28 * len(rule_rows) + 80),
        )
        parts.append(figure(fig))
        parts.append(table(["source", "rule", "rows"], rule_rows, numeric={2}))
    else:
        parts.append("<p>No row broke a rule.</p>")
    parts.append("<h2>Examples of quarantined rows</h2>")
    parts.append(
        table(
            ["source", "rule", "file", "line", "message", "raw values"],
            [
                [e["source"], e["rule"], e["file"], e["line"], e["message"], e["raw"]]
                for e in quality["examples"]
            ],
            numeric={3},
        )
    )
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    quality = project.quality()
    t = quality["totals"]
    return Section(
        "quality.html",
        "Data quality",
        f"{t['rows_in']:,} rows read, {t['rows_quarantined']:,} quarantined, "
        f"{t['rows_duplicate']:,} duplicates",
        body(quality),
    )
