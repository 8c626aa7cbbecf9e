"""Ingest commands: load the sources, show what was rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from custintel.cli import common


def _ingest_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="Ingest")
    numbers = ("in", "clean", "quarantined", "duplicates", "values cleared", "seconds")
    for col in ("source", "file", "status", *numbers):
        table.add_column(col, justify="right" if col in numbers else "left")
    for r in results:
        status = {
            "loaded": "[green]loaded[/]",
            "skipped": "[dim]skipped[/]",
            "failed": "[red]failed[/]",
            "ignored": "[yellow]ignored[/]",
            "missing": "[yellow]missing[/]",
            "removed": "[yellow]removed[/]",
        }.get(r["status"], r["status"])
        table.add_row(
            r["source"],
            common.escape(r["file"]),
            status,
            str(r["rows_in"]),
            str(r["rows_clean"]),
            str(r["rows_quarantined"]),
            str(r["rows_duplicate"]),
            str(sum(r.get("field_counts", {}).values())),
            f"{r['seconds']:.2f}",
        )
    return table


@common.app.command()
@common.guarded
def ingest(
    project: Path = common.ProjectOpt,
    source: list[str] = typer.Option(
        None, "--source", "-s", help="Only these sources (repeatable)."
    ),
    strict: bool = typer.Option(
        None,
        "--strict/--no-strict",
        help="A source whose path matches no file fails (default: ingest.strict).",
        show_default=False,
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Load every configured source: contracts, quality rules, quarantine, lineage."""
    with common.open_project(project) as proj, common.progress_bar(not as_json) as progress:
        summary = proj.ingest(source or None, progress=progress, strict=strict)
    data = summary.as_dict()
    if as_json:
        common.print_json(data)
    else:
        common.console.print(_ingest_table(data["results"]))
        common.console.print(
            f"run {data['run_id']}: {data['rows_in']} rows in = {data['rows_clean']} clean + "
            f"{data['rows_quarantined']} quarantined + {data['rows_duplicate']} duplicates"
        )
        for warning in summary.warnings:
            common.err_console.print(
                f"[yellow]warning:[/yellow] {common.escape(warning)}",
                highlight=False,
                soft_wrap=True,
            )
    if summary.failed:
        for r in summary.failed:
            common.err_console.print(
                f"[red]failed:[/red] {common.escape(r.message)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(1)


@common.app.command()
@common.guarded
def quality(
    project: Path = common.ProjectOpt,
    examples: int = typer.Option(3, help="Example rows to show per rule."),
    as_json: bool = common.JsonOpt,
) -> None:
    """What was rejected, by source and rule, with example rows."""
    with common.open_project(project, read_only=True) as proj:
        data = proj.quality()
    if as_json:
        common.print_json(data)
        return
    table = Table(title="Quality by source")
    for col in (
        "source",
        "files",
        "in",
        "clean",
        "quarantined",
        "duplicates",
        "rules broken",
        "extra columns",
    ):
        table.add_column(col)
    for name, s in data["sources"].items():
        rules = ", ".join(f"{k}={v}" for k, v in s["rules"].items()) or "-"
        table.add_row(
            name,
            str(s["files"]),
            str(s["rows_in"]),
            str(s["rows_clean"]),
            str(s["rows_quarantined"]),
            str(s["rows_duplicate"]),
            rules,
            ", ".join(s["extra_columns"]) or "-",
        )
    common.console.print(table)
    ex = Table(title="Examples of quarantined rows")
    for col in ("source", "rule", "file:line", "message"):
        ex.add_column(col)
    shown: dict[tuple[str, str], int] = {}
    for e in data["examples"]:
        key = (e["source"], e["rule"])
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= examples:
            ex.add_row(e["source"], e["rule"], f"{e['file']}:{e['line']}", e["message"])
    common.console.print(ex)
