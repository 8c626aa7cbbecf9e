"""``custintel model`` and ``custintel score``: train, compare, promote, explain and score propensity models."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common
from custintel.core.errors import ConfigError

model_app = typer.Typer(
    help="Propensity models: train with out-of-time evaluation, list the registry.",
    no_args_is_help=True,
)
common.app.add_typer(model_app, name="model")


@model_app.command("train")
@common.guarded
def model_train(
    label: str = typer.Argument(..., help="A label with a training table, e.g. churn_90d."),
    project: Path = common.ProjectOpt,
    force: bool = typer.Option(
        False,
        "--force",
        help="Train and register even when nothing changed since the last version.",
    ),
    table: Path | None = typer.Option(
        None, "--table", help="Your own prepared table (CSV or Parquet); LABEL names the model."
    ),
    target: str = typer.Option(
        "label",
        "--target",
        help="With --table: the target column (0/1, true/false, T/F, yes/no, Y/N).",
    ),
    positive: str | None = typer.Option(
        None,
        "--positive",
        help="With --table: the target's positive value, when spelled otherwise.",
    ),
    time_column: str | None = typer.Option(
        None, "--time-column", help="With --table: snapshot dates, for a split by time."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Train on earlier snapshots, calibrate and choose on the next, test on the latest;
    or on your own table with --table."""
    with common.open_project(project) as proj, common.progress_bar(not as_json) as progress:
        if table is not None:
            result = proj.model_train_table(
                label,
                table,
                target,
                time_column=time_column,
                positive=positive,
                progress=progress,
            )
        else:
            result = proj.model_train(label, force=force, progress=progress)
    if as_json:
        common.print_json(result)
        return
    split = result["split"]
    if result["unchanged"]:
        common.console.print(
            "unchanged: the latest version was trained on these rows with these settings",
            highlight=False,
        )
    crossfitted = split.get("kind") == "crossfit"
    if crossfitted:
        est = result["estimate"]
        common.console.print(
            f"{result['name']} v{result['version']}: {result['algorithm']} "
            f"({result['chosen_because']}), calibration {result['calibration']}; trained on "
            f"{', '.join(split['train'])}; estimated {split['test']}: AUC "
            f"{est['auc_mean']:.4f} ± {est['auc_sd']:.4f}, Brier {est['brier_mean']:.4f} "
            f"± {est['brier_sd']:.4f} over the folds ({est['seconds']:.1f} s)",
            highlight=False,
        )
    else:
        common.console.print(
            f"{result['name']} v{result['version']}: {result['algorithm']} "
            f"({result['chosen_because']}); trained on {', '.join(split['train'])}, "
            + ("tested on " if "random" in split["test"] else "tested out of time on ")
            + f"{split['test']} ({result['rows']['test']:,} customers)",
            highlight=False,
        )
    from custintel.report.wording import CANDIDATE_COLUMNS, candidate_cells

    table = Table(
        title="Out-of-fold estimate (every row predicted by a model that never saw it)"
        if crossfitted
        else "Out-of-time test"
    )
    for col in CANDIDATE_COLUMNS:
        table.add_column(col, justify="left" if col == "candidate" else "right")
    for name, c in result["candidates"].items():
        table.add_row(*candidate_cells(name, c, result["algorithm"]))
    common.console.print(table)
    tuning = result.get("tuning")
    if tuning:
        common.console.print(
            f"tuned: {tuning['trials']} Optuna trials in {tuning['seconds']} s "
            f"(stopped by the {tuning['stopped_by']} budget), best early-stopping AUC "
            f"{tuning['best_auc']:.4f}",
            highlight=False,
        )
    if result.get("imbalance"):
        from custintel.report.wording import IMBALANCE_COLUMNS, imbalance_cells

        table = Table(title="Class imbalance (out-of-time test, after calibration)")
        for col in IMBALANCE_COLUMNS:
            table.add_column(col, justify="left" if col == "strategy" else "right")
        for row in result["imbalance"]:
            table.add_row(*imbalance_cells(row))
        common.console.print(table)
    onnx = result.get("onnx") or {}
    if onnx.get("available"):
        common.console.print(
            f"ONNX: model.onnx, largest difference from native {onnx['max_abs_difference']:.1e} "
            f"on {onnx['parity_rows']:,} test customers",
            highlight=False,
        )
    elif onnx:
        common.console.print(f"ONNX: none ({onnx.get('reason')})", highlight=False)
    for note in result["notes"]:
        common.console.print(f"note: {note}", highlight=False)
    if not result["unchanged"]:
        common.console.print(f"model card: {result['card']}", highlight=False)


@model_app.command("list")
@common.guarded
def model_list(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Every registered model version: algorithm, snapshots, aliases, metrics."""
    with common.open_project(project, read_only=True) as proj:
        versions = proj.model_list()
    rows = [
        {
            "name": r.name,
            "version": int(r.version),
            "kind": r.kind,
            "algorithm": r.algorithm,
            "snapshots": json.loads(r.snapshots),
            "created_at": str(r.created_at)[:19],
            "aliases": r.aliases,
            "metrics": json.loads(r.metrics),
        }
        for r in versions.itertuples()
    ]
    if as_json:
        common.print_json(rows)
        return
    table = Table(title=f"{len(rows)} model versions")
    for col in ("name", "version", "kind", "algorithm", "snapshots", "created", "aliases", "AUC"):
        table.add_column(col, justify="right" if col in ("version", "AUC") else "left")
    for r in rows:
        auc = r["metrics"].get("auc")
        table.add_row(
            r["name"],
            str(r["version"]),
            r["kind"],
            r["algorithm"],
            ", ".join(r["snapshots"]),
            r["created_at"],
            r["aliases"],
            "" if auc is None else f"{auc:.4f}",
        )
    common.console.print(table)


@model_app.command("promote")
@common.guarded
def model_promote(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    version: int = typer.Option(..., "--version", help="Version to make the champion."),
    project: Path = common.ProjectOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Make a version the champion if it meets every out-of-time gate (models.gates)."""
    with common.open_project(project) as proj:
        result = proj.model_promote(label, version)
    if as_json:
        common.print_json(result)
        return
    before = f" (was v{result['previous']})" if result["previous"] else ""
    common.console.print(f"{label}: v{result['champion']} is the champion{before}", highlight=False)


@common.app.command()
@common.guarded
def score(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d, or clv."),
    project: Path = common.ProjectOpt,
    as_of: str | None = typer.Option(None, "--as-of", help="Score the features as of this date."),
    version: int | None = typer.Option(None, "--version", help="Version (default: champion)."),
    table: Path | None = typer.Option(
        None, "--table", help="A model trained on your own table: score this file's rows."
    ),
    out: Path | None = typer.Option(None, "--out", help="With --table: CSV or Parquet to write."),
    id_column: str | None = typer.Option(
        None, "--id", help="With --table: a column passed through to the output."
    ),
    use_onnx: bool = typer.Option(False, "--onnx", help="With --table: score with the ONNX graph."),
    horizon: int | None = typer.Option(
        None, "--horizon", help="clv: days ahead (clv.horizon_days)."
    ),
    discount: float | None = typer.Option(None, "--discount", help="clv: annual discount rate."),
    margin: float | None = typer.Option(
        None, "--margin", help="clv: share of spend that is profit."
    ),
    projection: bool = common.ProjectionOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Score every eligible customer into scores.<label> with deciles, tiers and reasons;
    `score clv` writes lifetime values into scores.clv; `score NAME --table FILE --out
    FILE` scores the rows of a table like the one NAME was trained on."""
    if table is not None:
        if out is None:
            raise ConfigError("score --table: say where the scores go with --out FILE")
        with common.open_project(project, read_only=True) as proj:
            result = proj.score_table(
                label, table, out, id_column=id_column, version=version, use_onnx=use_onnx
            )
        if as_json:
            common.print_json(result)
            return
        common.console.print(
            f"{result['out']}: {result['rows']:,} rows scored by {result['model']} "
            f"v{result['version']} ({result['engine']}; mean score {result['mean_score']:.4f})",
            highlight=False,
        )
        return
    if as_of is None:
        raise ConfigError("score: give --as-of DATE (or --table FILE for your own table)")
    if label == "clv":
        with common.open_project(project) as proj:
            result = proj.score_clv(
                common.parse_date(as_of, "--as-of"),
                horizon_days=horizon,
                discount=discount,
                margin=margin,
                version=version,
                projection=projection,
            )
        if as_json:
            common.print_json(result)
            return
        common.console.print(
            f"scores.clv: {result['customers']:,} customers as of {result['as_of']} by v"
            f"{result['version']}: {result['horizon_days']} days ahead, discount "
            f"{result['discount']:g} a year, margin {result['margin']:g}; total CLV "
            f"{result['total_clv']:,.0f}, mean {result['mean_clv']:,.2f}, the top tenth holds "
            f"{result['top_decile_share']:.0%}; mean P(alive) {result['mean_p_alive']:.3f} "
            f"({result['left_out_no_history']:,} first bought on the last day, "
            f"{result['opted_out']:,} opted out of profiling: not scored)",
            highlight=False,
        )
        return
    with common.open_project(project) as proj, common.progress_bar(not as_json) as progress:
        result = proj.score(
            label,
            common.parse_date(as_of, "--as-of"),
            version=version,
            progress=progress,
            projection=projection,
        )
    if as_json:
        common.print_json(result)
        return
    common.console.print(
        f"{result['table']}: {result['customers']:,} customers as of {result['as_of']} by "
        f"v{result['version']} (mean score {result['mean_score']:.4f}; "
        f"{result['opted_out']:,} opted out of profiling, not scored)",
        highlight=False,
    )


@model_app.command("threshold")
@common.guarded
def model_threshold(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = common.ProjectOpt,
    cost: float | None = typer.Option(None, "--cost", help="Cost per contact."),
    value: float | None = typer.Option(None, "--value", help="Value per success."),
    version: int | None = typer.Option(None, "--version", help="Version (default: champion)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """What if we contact the top share by score? Volume, positives, cost, value and ROI."""
    from custintel.report.wording import THRESHOLD_COLUMNS, threshold_cells

    with common.open_project(project) as proj:
        result = proj.model_threshold(label, cost=cost, value=value, version=version)
    if as_json:
        common.print_json(result)
        return
    table = Table(
        title=f"{label} v{result['version']}: cost {result['cost_per_contact']:g} per contact, "
        f"value {result['value_per_success']:g} per success (out-of-time test, "
        f"{result['customers']:,} customers)"
    )
    for col in THRESHOLD_COLUMNS:
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(*threshold_cells(r))
    common.console.print(table)


@model_app.command("card")
@common.guarded
def model_card(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = common.ProjectOpt,
    version: int | None = typer.Option(None, "--version", help="Version (default: champion)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write a version's model card (Markdown and HTML) and print where it is."""
    with common.open_project(project) as proj:
        result = proj.model_card(label, version)
    result = {k: str(v) if isinstance(v, Path) else v for k, v in result.items()}
    if as_json:
        common.print_json(result)
        return
    common.console.print(
        f"{label} v{result['version']} model card: {result['markdown']} and {result['html']}",
        highlight=False,
    )


@model_app.command("evaluate")
@common.guarded
def model_evaluate(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = common.ProjectOpt,
    version: int = typer.Option(..., "--version", help="Version to evaluate."),
    as_of: str = typer.Option(..., "--as-of", help="A snapshot date of the training table."),
    as_json: bool = common.JsonOpt,
) -> None:
    """A version's figures on one snapshot (out of time when it did not learn from it)."""
    with common.open_project(project) as proj:
        result = proj.model_evaluate(label, version, common.parse_date(as_of, "--as-of"))
    if as_json:
        common.print_json(result)
        return
    m = result["metrics"]
    common.console.print(
        f"{label} v{version} on {result['as_of']} ({m['rows']:,} customers, "
        f"{m['positive_rate']:.1%} positive): AUC {m['auc']:.4f}, PR AUC {m['pr_auc']:.4f}, "
        f"KS {m['ks']:.3f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}, "
        f"top-decile lift {m['top_decile_lift']:.2f}",
        highlight=False,
    )
    if result["warning"]:
        common.err_console.print(f"[yellow]warning:[/yellow] {result['warning']}", highlight=False)


@model_app.command("compare")
@common.guarded
def model_compare(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = common.ProjectOpt,
    challenger: int | None = typer.Option(
        None, "--challenger", help="Version to compare (default: the latest non-champion)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Champion against a challenger: paired bootstrap of the AUC difference."""
    with common.open_project(project) as proj:
        r = proj.model_compare(label, challenger)
    if as_json:
        common.print_json(r)
        return
    verdict = "better" if r["better"] else "not shown better"
    common.console.print(
        f"{label} on {r['as_of']} ({r['rows']:,} customers): champion v{r['champion']} AUC "
        f"{r['champion_auc']:.4f}, challenger v{r['challenger']} AUC {r['challenger_auc']:.4f}; "
        f"difference {r['difference']:+.4f}, 95 % interval {r['ci_low']:+.4f} to "
        f"{r['ci_high']:+.4f} over {r['rounds']} paired resamples: the challenger is {verdict}",
        highlight=False,
    )
