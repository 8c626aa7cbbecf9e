"""``custintel features``: customer features as of a date, training tables, stability."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common

features_app = typer.Typer(
    help="Customer features as of a date, training tables and stability.", no_args_is_help=True
)
common.app.add_typer(features_app, name="features")


@features_app.command("build")
@common.guarded
def features_build(
    project: Path = common.ProjectOpt,
    as_of: str | None = typer.Option(
        None, "--as-of", help="Date (YYYY-MM-DD); features read only events before it."
    ),
    projection: bool = common.ProjectionOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Compute every customer's features as of a date into features.customer."""
    day = common.parse_date(as_of, "--as-of") if as_of else None
    with common.open_project(project) as proj, common.err_console.status("building features"):
        result = proj.features_build(day, projection=projection)
    if as_json:
        common.print_json(result.as_dict())
        return
    common.console.print(
        f"features.customer as of {result.as_of}: {result.rows:,} customers x "
        f"{result.features} features (feature set version {result.version}, amounts in "
        f"{result.currency or 'the orders currency'}) in {result.seconds} s"
        + (f"\n{result.note}" if result.note else "")
    )


@features_app.command("training-set")
@common.guarded
def features_training_set(
    project: Path = common.ProjectOpt,
    label: str = typer.Option(
        ...,
        "--label",
        help="churn_90d, purchase_30d, spend_365d, new_category_90d, response_<campaign>.",
    ),
    snapshots: str | None = typer.Option(
        None, "--snapshots", help="Comma-separated as-of dates (default: features.snapshots)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Build features.train_<label>: one row per customer and snapshot, label attached."""
    days = (
        [common.parse_date(d, "--snapshots") for d in snapshots.split(",") if d.strip()]
        if snapshots
        else None
    )
    with (
        common.open_project(project) as proj,
        common.err_console.status(f"building the training table for {label}"),
    ):
        result = proj.features_training_set(label, days)
    if as_json:
        common.print_json(result.as_dict())
        return
    table = Table(title=f"{result.table}: {result.rows:,} rows in {result.seconds} s")
    for col in ("as of", "rows", "label mean", "opted out of profiling"):
        table.add_column(col, justify="right")
    for snap in result.snapshots:
        table.add_row(
            snap["as_of"],
            f"{snap['rows']:,}",
            f"{snap['label_mean']:.4f}",
            f"{snap['opted_out']:,}",
        )
    common.console.print(table)


@features_app.command("stability")
@common.guarded
def features_stability(
    project: Path = common.ProjectOpt,
    reference: str = typer.Option(..., "--from", help="Reference as-of date (bins come from it)."),
    current: str = typer.Option(..., "--to", help="Later as-of date to compare."),
    top: int = typer.Option(15, "--top", help="Features to list (highest PSI first)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """PSI per feature between two as-of dates; writes the features report page."""
    from custintel.report import write_reports

    ref, cur = common.parse_date(reference, "--from"), common.parse_date(current, "--to")
    with (
        common.open_project(project) as proj,
        common.err_console.status("comparing feature distributions"),
    ):
        result = proj.features_stability(ref, cur)
        index = write_reports(proj)
    page = index.parent / "features.html"
    if as_json:
        common.print_json({**result, "report": str(page)})
        return
    rows = result["features"]
    counts = {k: sum(1 for r in rows if r["flag"] == k) for k in ("unstable", "watch", "stable")}
    table = Table(
        title=f"PSI {result['reference']} -> {result['current']}: {counts['unstable']} unstable "
        f"(> 0.25), {counts['watch']} to watch (> 0.1), {counts['stable']} stable"
    )
    for col in ("feature", "PSI", "flag", "missing before", "missing after"):
        table.add_column(col, justify="left" if col in ("feature", "flag") else "right")
    for r in rows[:top]:
        colour = {"unstable": "red", "watch": "yellow", "stable": "green"}[r["flag"]]
        table.add_row(
            r["feature"],
            f"{r['psi']:.4f}",
            f"[{colour}]{r['flag']}[/]",
            f"{r['missing_ref']:.1%}",
            f"{r['missing_cur']:.1%}",
        )
    common.console.print(table)
    common.console.print(f"Report: {page}")


@features_app.command("list")
@common.guarded
def features_list(
    project: Path = common.ProjectOpt,
    family: str | None = typer.Option(
        None, "--family", help="Only one family (rfm, windows, trends, mix, engagement)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """The feature catalog: every feature with its family, type and meaning."""
    with common.open_project(project) as proj:
        catalog = proj.features_catalog()
    if family:
        catalog = catalog[catalog.family == family]
    if as_json:
        common.print_json(catalog.to_dict(orient="records"))
        return
    version = catalog.version.iloc[0] if len(catalog) else ""
    table = Table(title=f"Feature set customer, version {version}: {len(catalog)} features")
    for col in ("name", "family", "type", "description"):
        table.add_column(col)
    for r in catalog.itertuples():
        table.add_row(r.name, r.family, r.dtype, r.description)
    common.console.print(table)
