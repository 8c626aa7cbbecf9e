"""``custintel clv``: fit and validate customer lifetime value."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common

clv_app = typer.Typer(
    help="Customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma; fit and validate.",
    no_args_is_help=True,
)
common.app.add_typer(clv_app, name="clv")


@clv_app.command("fit")
@common.guarded
def clv_fit(
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Fit on the purchases before this date."),
    model: str | None = typer.Option(
        None, "--model", help="bgnbd, mbgnbd or pareto (default: clv.model)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Fit a purchase model and Gamma-Gamma for spend; registered as the model clv."""
    with common.open_project(project) as proj:
        result = proj.clv_fit(common.parse_date(as_of, "--as-of"), model=model)
    if as_json:
        common.print_json(result)
        return
    table = Table(
        title=f"clv v{result['version']}: {result['model']} + Gamma-Gamma as of {result['as_of']}"
    )
    for col in ("part", "parameter", "estimate", "standard error"):
        table.add_column(col, justify="left" if col in ("part", "parameter") else "right")
    for part in ("purchases", "spend"):
        for k, v in result[part]["params"].items():
            table.add_row(part, k, f"{v:.4f}", f"{result[part]['standard_errors'][k]:.4f}")
    common.console.print(table)
    common.console.print(
        f"{result['customers']:,} customers ({result['repeat_buyers']:,} repeat buyers; "
        f"{result['left_out_no_history']:,} first bought on the last day, left out); "
        f"log-likelihood {result['purchases']['log_likelihood']:,.1f}; correlation of "
        f"frequency and mean spend {result['spend']['frequency_spend_correlation']:.2f} "
        "(Gamma-Gamma assumes about 0)",
        highlight=False,
    )


@clv_app.command("validate")
@common.guarded
def clv_validate(
    project: Path = common.ProjectOpt,
    calibration_end: str = typer.Option(..., "--calibration-end", help="Last calibration day."),
    holdout_end: str = typer.Option(..., "--holdout-end", help="Last holdout day."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Every purchase model fitted on the calibration period, judged on the holdout."""
    with common.open_project(project) as proj:
        result = proj.clv_validate(
            common.parse_date(calibration_end, "--calibration-end"),
            common.parse_date(holdout_end, "--holdout-end"),
        )
    if as_json:
        common.print_json(result)
        return
    cal, hold = result["periods"]["calibration"], result["periods"]["holdout"]
    common.console.print(
        f"calibration to {result['calibration_end']}: {cal['customers']:,} customers, "
        f"{cal['purchases']:,} purchase days ({cal['repeat_purchases']:,} repeat)"
        + (
            f"; {result['left_out_no_history']:,} first bought on the last day, left out"
            if result["left_out_no_history"]
            else ""
        )
        + f"\nholdout to {result['holdout_end']}: {hold['purchases']:,} purchase days by "
        f"{hold['customers_buying']:,} of them",
        highlight=False,
    )
    table = Table(
        title=f"Holdout {result['calibration_end']} to {result['holdout_end']}: repeat purchases"
    )
    from custintel.report.wording import HOLDOUT_COLUMNS, SPEND_COLUMNS, holdout_cells, spend_cells

    for col in HOLDOUT_COLUMNS:
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result["models"].items():
        table.add_row(*holdout_cells(name, m))
    common.console.print(table)
    spend = result.get("spend") or {}
    if "btyd" in spend:
        table = Table(title=f"Holdout spend, {spend['actual_total']:,.0f} in all")
        for col in SPEND_COLUMNS:
            table.add_column(col, justify="left" if col == "prediction" else "right")
        for way in ("btyd", "lightgbm"):
            table.add_row(*spend_cells(spend[way]))
        common.console.print(table)
    elif spend.get("skipped"):
        common.console.print(spend["skipped"], highlight=False)
