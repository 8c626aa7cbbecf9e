"""Project-wide commands: create, simulate, run every stage, status, report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from custintel import __version__
from custintel.cli import common


@common.app.command()
@common.guarded
def version() -> None:
    """Print the custintel version."""
    common.console.print(__version__)


@common.app.command()
@common.guarded
def init(
    directory: Path = typer.Argument(Path("."), help="Project folder to create."),
    with_sample: bool = typer.Option(
        False, "--with-sample", help="Also write a small sample retailer (messy files) and map it."
    ),
    from_simulation: Path | None = typer.Option(
        None, "--from-simulation", help="Map the files `custintel simulate` wrote to this folder."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing custintel.yaml."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Create a project: custintel.yaml and the warehouse."""
    from custintel.pipeline.project import init_project
    from custintel.pipeline.simulation import sample_project, simulation_project

    config = None
    if from_simulation is not None:
        config = simulation_project(from_simulation, directory)
    elif with_sample:
        config = sample_project(directory)
    path = init_project(directory, config, force=force)
    if as_json:
        common.print_json(
            {"config": str(path), "sample": with_sample, "simulation": str(from_simulation or "")}
        )
    else:
        common.console.print(
            f"Created {path}" + (" with a sample retailer in data/" if with_sample else "")
        )


@common.app.command()
@common.guarded
def simulate(
    out: Path = typer.Option(Path("data"), "--out", help="Folder for the source files and truth/."),
    customers: int | None = typer.Option(
        None, "--customers", min=1, help="People to simulate (default 50,000)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same files (default 7)."),
    config_file: Path | None = typer.Option(
        None, "--config", help="YAML file with any simulator knobs (docs/simulator.md)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Simulate a retailer: source files with noisy identities, and the truth behind them."""
    from custintel.pipeline.simulation import simulation_settings, write_simulation

    config = simulation_settings(config_file, customers=customers, seed=seed)
    with common.err_console.status(f"simulating {config.customers:,} customers"):
        summary = write_simulation(out, config)
    if as_json:
        common.print_json({"out": str(out), "as_of": str(config.as_of), **summary})
    else:
        common.console.print(
            f"Wrote {summary['people']:,} people, {summary['records']:,} source profiles, "
            f"{summary['orders']:,} orders, {summary['email_events']:,} e-mail and "
            f"{summary['web_events']:,} web events to {out} ({summary['faulty_rows']:,} faulty "
            f"order rows injected; as-of date {config.as_of}; truth in {out / 'truth'})"
        )


@common.app.command()
@common.guarded
def status(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Tables with row counts and the last runs."""
    with common.open_project(project, read_only=True) as proj:
        data = proj.status()
    if as_json:
        common.print_json(data)
        return
    table = Table(title=f"Warehouse {data['warehouse']}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for t in data["tables"]:
        table.add_row(t["table"], str(t["rows"]))
    common.console.print(table)
    runs = Table(title="Last ingest runs")
    for col in (
        "run_id",
        "started_at",
        "status",
        "loaded",
        "skipped",
        "failed",
        "rows in",
        "reconciled",
    ):
        runs.add_column(col)
    for r in data["ingest_runs"]:
        runs.add_row(
            r["run_id"],
            r["started_at"],
            r["status"],
            str(r["files_loaded"]),
            str(r["files_skipped"]),
            str(r["files_failed"]),
            str(r["rows_in"]),
            str(r["reconciled"]),
        )
    common.console.print(runs)


@common.app.command()
@common.guarded
def run(
    project: Path = common.ProjectOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the last run if it failed."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Run every configured stage in order (the nightly batch)."""
    with common.open_project(project) as proj, common.progress_bar(not as_json) as progress:
        result = proj.run(resume=resume, progress=progress)
    if as_json:
        common.print_json(
            {
                "run_id": result.run_id,
                "ok": result.ok,
                "stages": [s.__dict__ for s in result.stages],
            }
        )
    else:
        for s in result.stages:
            colour = {"ok": "green", "failed": "red", "skipped": "dim"}[s.status]
            common.console.print(
                f"[{colour}]{s.status:>7}[/] {s.stage} {common.escape(s.message)}", highlight=False
            )
        common.console.print(f"run {result.run_id}: {'ok' if result.ok else 'failed'}")
    if not result.ok:
        failed = next(s for s in result.stages if s.status == "failed")
        common.err_console.print(
            f"[red]error:[/red] stage {failed.stage} failed: {common.escape(failed.message)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@common.app.command()
@common.guarded
def report(
    project: Path = common.ProjectOpt,
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the pages (default: the project's reports_dir)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write the HTML reports; prints where reports/index.html is. Only reads the
    warehouse, so a read-only project can be reported on with --out elsewhere."""
    from custintel.report import write_reports

    with common.open_project(project, read_only=True) as proj:
        index = write_reports(proj, out)
    if as_json:
        common.print_json({"index": str(index)})
    else:
        common.console.print(f"Report: {index.resolve()}")
