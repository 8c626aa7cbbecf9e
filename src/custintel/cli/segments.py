"""``custintel segment``: fit, assign, compare and export customer segments."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common

segment_app = typer.Typer(
    help="Customer segments: fit, assign new snapshots, compare dates, export rules.",
    no_args_is_help=True,
)
common.app.add_typer(segment_app, name="segment")


def _segment_table(title: str, segments: dict[str, int]) -> Table:
    total = sum(segments.values()) or 1
    table = Table(title=title)
    for col in ("segment", "customers", "share"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for name, count in segments.items():
        table.add_row(name, f"{count:,}", f"{count / total:.1%}")
    return table


@segment_app.command("fit")
@common.guarded
def segment_fit(
    project: Path = common.ProjectOpt,
    as_of: str | None = typer.Option(
        None, "--as-of", help="Features as of this date (default: features.as_of)."
    ),
    method: str | None = typer.Option(
        None, "--method", help="kmeans, gmm, ward, hdbscan, dbscan or rfm (default: config)."
    ),
    k: int | None = typer.Option(None, "--k", help="Fix the number of segments."),
    force: bool = typer.Option(
        False, "--force", help="Fit and register even when nothing changed since the last fit."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Fit segments, register the model as active, assign everyone, write the report."""
    from custintel.report import write_reports

    day = common.parse_date(as_of, "--as-of") if as_of else None
    with common.open_project(project) as proj, common.progress_bar(not as_json) as progress:
        result = proj.segment_fit(day, method=method, k=k, force=force, progress=progress)
        index = write_reports(proj)
    page = index.parent / "segments.html"
    if as_json:
        common.print_json({**result, "report": str(page)})
        return
    m = result["metrics"]
    if result["unchanged"]:
        common.console.print(
            f"unchanged: v{result['version']} was fitted on these customers with these "
            "settings; it stays active and its assignments were written again",
            highlight=False,
        )
    common.console.print(
        f"segments v{result['version']} ({result['method']}) as of {result['as_of']}: "
        f"k={result['k']} on {result['clustered']:,} of {result['customers']:,} customers "
        f"(the rest have a rule segment)\n{result['reason']}",
        highlight=False,
    )
    extra = []
    if "bootstrap_ari" in m:
        extra.append(f"bootstrap ARI {m['bootstrap_ari']:.3f}")
    extra.append(f"surrogate tree fidelity {m['surrogate_fidelity']:.1%}")
    common.console.print(", ".join(extra), highlight=False)
    for merge in result["merges"]:
        common.console.print(
            f"merged segment {merge['segment']} into {merge['into']}: {merge['reason']}",
            highlight=False,
        )
    common.console.print(_segment_table("Segments", result["segments"]))
    common.console.print(f"Report: {page}")


@segment_app.command("assign")
@common.guarded
def segment_assign(
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Snapshot date to assign (YYYY-MM-DD)."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Place every customer of a snapshot with the fitted model (no refit)."""
    with common.open_project(project) as proj, common.err_console.status("assigning segments"):
        result = proj.segment_assign(common.parse_date(as_of, "--as-of"), version=version)
    if as_json:
        common.print_json(result)
        return
    common.console.print(
        _segment_table(
            f"segments v{result['version']} as of {result['as_of']}: "
            f"{result['customers']:,} customers",
            result["segments"],
        )
    )


@segment_app.command("compare")
@common.guarded
def segment_compare(
    project: Path = common.ProjectOpt,
    start: str = typer.Option(..., "--from", help="Earlier as-of date."),
    end: str = typer.Option(..., "--to", help="Later as-of date."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Migration between two dates with the same model, and the shift in segment shares."""
    from custintel.report import write_reports

    with common.open_project(project) as proj, common.err_console.status("comparing segments"):
        result = proj.segment_compare(
            common.parse_date(start, "--from"), common.parse_date(end, "--to"), version=version
        )
        index = write_reports(proj)
    if as_json:
        common.print_json(result)
        return
    table = Table(
        title=f"{result['from']} -> {result['to']}: {result['stayed']:.1%} of "
        f"{result['in_both']:,} customers at both dates stayed in their segment"
    )
    for col in ("segment", "share before", "share after", "change"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for name, s in result["shares"].items():
        table.add_row(
            name, f"{s['from']:.1%}", f"{s['to']:.1%}", f"{100 * (s['to'] - s['from']):+.1f} pt"
        )
    common.console.print(table)
    common.console.print(f"Migration matrix: {index.parent / 'segments.html'}")


@segment_app.command("export-rules")
@common.guarded
def segment_export_rules(
    project: Path = common.ProjectOpt,
    fmt: str = typer.Option("sql", "--format", help="sql (a CASE expression), text or json."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Rules that place a customer in a segment from the feature table's columns."""
    with common.open_project(project) as proj:
        text = proj.segment_rules(fmt, version=version)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        common.err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text + "\n")
