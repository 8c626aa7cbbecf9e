"""``custintel measure``: what a campaign caused, and how big a test must be."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common
from custintel.core.errors import ConfigError

measure_app = typer.Typer(
    help="Measurement: lift with intervals from randomized holdouts, ROI, test planning.",
    no_args_is_help=True,
)
common.app.add_typer(measure_app, name="measure")


def parse_window(text: str | None) -> int | None:
    """``14d``, ``2w`` or ``14`` as days."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"--window: expected days like 14d or weeks like 2w, not {text!r}")
    return int(m.group(1)) * (7 if m.group(2) == "w" else 1)


@measure_app.command("campaign")
@common.guarded
def measure_campaign(
    name: str = typer.Argument(..., help="Campaign id, as in the contact history."),
    project: Path = common.ProjectOpt,
    window: str | None = typer.Option(
        None,
        "--window",
        help="Outcome window after the send, e.g. 14d or 4w (default: measurement.window_days).",
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Lift per arm against the control group: absolute and relative, 95 % intervals,
    p-values (raw and with CUPED), checks, and ROI. Recorded in measure.*."""
    with common.open_project(project) as proj:
        m = proj.measure_campaign(name, window_days=parse_window(window))
    if as_json:
        common.print_json(
            {
                "campaign_id": m.campaign_id,
                "status": m.status,
                "reason": m.reason,
                "sentence": m.sentence,
                "counts": m.counts,
                "srm": m.srm,
                "roi": m.roi,
                "lift": m.lift.to_dict(orient="records"),
                "balance": m.balance.to_dict(orient="records"),
                "breakdown": m.breakdown.to_dict(orient="records"),
            }
        )
        return
    if len(m.lift):
        table = Table(title=f"{name}: {m.status}")
        for col in ("metric", "CUPED", "treated / control", "lift", "95 % interval", "p"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for r in m.lift.itertuples():
            scale, unit = (100, " pts") if r.metric == "converted" else (1, "")
            label = str(r.metric) if r.arm == "treatment" else f"{r.metric}: {r.arm}"
            table.add_row(
                label,
                "yes" if r.cuped else "",
                f"{scale * r.mean_treated:.3g} / {scale * r.mean_control:.3g}",
                f"{scale * r.lift:+.3g}{unit}",
                f"{scale * r.low:+.3g} to {scale * r.high:+.3g}",
                f"{r.p_adjusted:.2g}",
            )
        common.console.print(table)
    common.console.print(m.sentence, highlight=False)


@measure_app.command("plan")
@common.guarded
def measure_plan(
    baseline: float = typer.Option(..., "--baseline", help="Control's rate (or mean)."),
    mde: float | None = typer.Option(
        None, "--mde", help="Smallest absolute lift worth detecting: gives the sample size."
    ),
    n: int | None = typer.Option(
        None, "--n", help="Customers in the test: gives the detectable lift instead."
    ),
    power: float = typer.Option(0.8, "--power"),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
    control_share: float = typer.Option(0.5, "--control-share", help="Share held out."),
    sd: float | None = typer.Option(None, "--sd", help="Outcome's standard deviation (means)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Sample size for a lift (--mde), or the lift a test of --n customers can detect.
    Rates by default; give --sd for a mean such as revenue per customer."""
    from custintel.pipeline.measure_tasks import plan_test

    kind = "mean" if sd is not None else "proportion"
    plan = plan_test(
        baseline, mde=mde, n=n, sd=sd, power=power, alpha=alpha, control_share=control_share
    )
    if as_json:
        common.print_json(plan.as_dict())
        return
    unit = " points" if kind == "proportion" else ""
    scale = 100 if kind == "proportion" else 1
    common.console.print(
        f"{plan.n_treated:,} treated + {plan.n_control:,} held out = {plan.total:,} customers "
        f"detect a lift of {scale * plan.mde:.3g}{unit} over {scale * baseline:.3g}"
        f"{'%' if kind == 'proportion' else ''} with {power:.0%} power at a two-sided "
        f"{alpha:g} level.",
        highlight=False,
    )


uplift_app = typer.Typer(
    help="Uplift models: who is persuadable, learned from past randomized campaigns.",
    no_args_is_help=True,
)
common.app.add_typer(uplift_app, name="uplift")


@uplift_app.command("train")
@common.guarded
def uplift_train(
    name: str = typer.Argument(..., help="The campaign the model serves (model uplift_NAME)."),
    project: Path = common.ProjectOpt,
    campaigns: str | None = typer.Option(
        None,
        "--campaigns",
        help="Past campaigns to learn from, comma-separated "
        "(default: every one with a control group and a closed window).",
    ),
    outcome: str = typer.Option("orders", "--outcome", help="orders, revenue or converted."),
    top: float = typer.Option(0.3, "--top", help="Share treated by the policy compared."),
    folds: int = typer.Option(3, "--folds", min=2, max=10),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = common.JsonOpt,
) -> None:
    """T-, X- and DR-learners (causalml on LightGBM) compared out of fold with the known
    assignment probability; the best refitted and registered as uplift_NAME."""
    names = [c.strip() for c in campaigns.split(",") if c.strip()] if campaigns else None
    with common.open_project(project) as proj:
        result = proj.uplift_train(
            name, campaigns=names, outcome=outcome, top=top, folds=folds, seed=seed
        )
    if as_json:
        common.print_json(result)
        return
    table = Table(
        title=f"{result['name']} v{result['version']}: {result['rows']:,} customers of "
        f"{len(result['campaigns'])} campaigns, outcome {result['outcome']}"
    )
    for col in ("learner", "AUUC", f"gain, top {top:.0%}", "gain, everyone"):
        table.add_column(col, justify="left" if col == "learner" else "right")
    for r in result["learners"]:
        mark = " (chosen)" if r["learner"] == result["chosen"] else ""
        table.add_row(
            r["name"] + mark,
            f"{r['auuc']:.4f}",
            f"{r['policy_value_top']:.4f}",
            f"{r['policy_value_all']:.4f}",
        )
    common.console.print(table)
    common.console.print(
        "Gains are the outcome gained per customer against treating no one, estimated out "
        "of fold from the randomized groups.",
        highlight=False,
    )


@uplift_app.command("score")
@common.guarded
def uplift_score(
    name: str = typer.Argument(..., help="The campaign whose uplift model scores."),
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Score on the features as of this date."),
    version: int | None = typer.Option(None, "--version"),
    as_json: bool = common.JsonOpt,
) -> None:
    """Every customer's predicted uplift into scores.uplift_NAME (negative: a sleeping
    dog, left alone by a campaign with sleeping_dogs: exclude)."""
    with common.open_project(project) as proj:
        result = proj.uplift_score(name, common.parse_date(as_of, "--as-of"), version=version)
    if as_json:
        common.print_json(result)
        return
    common.console.print(
        f"{result['name']} v{result['version']} as of {result['as_of']}: "
        f"{result['customers']:,} customers, mean uplift {result['mean_uplift']:.4f}, "
        f"{result['sleeping_dogs']:,} sleeping dogs (negative uplift)",
        highlight=False,
    )


@common.app.command("attribution")
@common.guarded
def attribution(
    project: Path = common.ProjectOpt,
    model: str = typer.Option(
        "calibrated",
        "--model",
        help="Method shown: first, last, linear, position, time_decay, markov, shapley, "
        "model or calibrated (all are computed and recorded).",
    ),
    from_date: str | None = typer.Option(
        None, "--from", help="First day of the journeys' ends (default: the config's or all)."
    ),
    to_date: str | None = typer.Option(None, "--to", help="Day after the last (default: all)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Channel credit for the purchases of the web journeys (utm-tagged sessions) by every
    method, recorded in measure.attribution; the calibrated method sets each channel's
    total to its holdout experiment's lift (measurement.attribution.experiments)."""
    from custintel.pipeline.attribution_tasks import METHODS

    if model not in METHODS:
        raise ConfigError(f"--model: choose from {', '.join(METHODS)}, not {model!r}")
    start = common.parse_date(from_date, "--from") if from_date else None
    end = common.parse_date(to_date, "--to") if to_date else None
    with common.open_project(project) as proj:
        result = proj.attribute(start=start, end=end)
    credit = result["credit"]
    chosen = credit[credit.method == model].sort_values("credit", ascending=False)
    if as_json:
        common.print_json(
            {
                **{k: v for k, v in result.items() if k not in ("credit", "calibration")},
                "model": model,
                "channels": chosen[["channel", "credit", "share"]].to_dict(orient="records"),
                "calibration": result["calibration"].reset_index().to_dict(orient="records"),
            }
        )
        return
    cal = result["calibration"]
    table = Table(
        title=f"{model}: {result['conversions']:,} conversions of {result['journeys']:,} "
        f"journeys ({result['paths']:,} unique paths)"
    )
    for col in ("channel", "credit", "share", "measured lift (95 %)"):
        table.add_column(col, justify="left" if col == "channel" else "right")
    for r in chosen.itertuples():
        lift = ""
        if r.channel in cal.index and bool(cal.loc[r.channel, "calibrated"]):
            c = cal.loc[r.channel]
            lift = f"{100 * c.lift:+.2f} pts ({100 * c.lift_low:+.2f} to {100 * c.lift_high:+.2f})"
        elif r.channel in cal.index and bool(cal.loc[r.channel, "base"]) and model == "calibrated":
            lift = "base: no credit"
        table.add_row(str(r.channel), f"{r.credit:,.0f}", f"{100 * r.share:.1f} %", lift)
    common.console.print(table)
    if model == "calibrated":
        common.console.print(
            f"{result['incremental']:,.0f} of {result['conversions']:,} conversions are "
            "credited as caused by marketing; the rest would have happened anyway. "
            "Channels with an experiment: " + (", ".join(result["calibrated"]) or "none") + ".",
            highlight=False,
        )
