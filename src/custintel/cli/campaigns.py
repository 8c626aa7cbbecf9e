"""``custintel campaign`` and ``custintel nba``: plan, run and explain campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from custintel.cli import common

campaign_app = typer.Typer(
    help="Campaigns: audiences, contact policy, arbitration, budgets, holdouts, decisions.",
    no_args_is_help=True,
)
common.app.add_typer(campaign_app, name="campaign")


def _show(result: dict[str, Any], title: str) -> None:
    common.console.print(
        f"{title}: {result['customers']:,} customers, {result['audience']:,} in the audience; "
        f"{result['treatment']:,} treated, {result['control']:,} held out, "
        f"{result['excluded']:,} excluded; expected value {result['expected_value']:,.2f} "
        f"for {result['spend']:,.2f}",
        highlight=False,
    )
    table = Table(title="excluded by (first rule)")
    table.add_column("rule")
    table.add_column("customers", justify="right")
    for k, v in sorted(result["excluded_by"].items(), key=lambda kv: -kv[1]):
        table.add_row(k, f"{v:,}")
    common.console.print(table)
    actions = Table(title="actions")
    actions.add_column("offer/channel")
    actions.add_column("treated", justify="right")
    for k, v in result["by_action"].items():
        actions.add_row(k, f"{v:,}")
    common.console.print(actions)


@campaign_app.command("plan")
@common.guarded
def campaign_plan(
    name: str = typer.Argument(..., help="Campaign name in custintel.yaml."),
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Decision date."),
    allocation: str | None = typer.Option(None, "--allocation", help="greedy or exact."),
    as_json: bool = common.JsonOpt,
) -> None:
    """What a run would decide (audience sizes, exclusions, actions); writes nothing."""
    with common.open_project(project, read_only=True) as proj:
        result = proj.campaign_plan(
            name, common.parse_date(as_of, "--as-of"), allocation=allocation
        )
    if as_json:
        common.print_json(result)
        return
    _show(result, f"plan {name} as of {result['as_of']}")


@campaign_app.command("run")
@common.guarded
def campaign_run(
    name: str = typer.Argument(..., help="Campaign name in custintel.yaml."),
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Decision date."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Decide, and record the decision log and the contact history."""
    with common.open_project(project) as proj:
        result = proj.campaign_run(name, common.parse_date(as_of, "--as-of"))
    if as_json:
        common.print_json(result)
        return
    _show(result, f"run {name} as of {result['as_of']} ({result['run_id']})")
    _show_delivery(result.get("delivery", {}))


def _show_delivery(delivery: dict[str, Any]) -> None:
    for channel, d in delivery.items():
        parts = [f"{channel}: {d['contacts']:,} treated"]
        if "file" in d:
            parts.append(f"{d['file']['path']} ({d['file']['rows']:,} rows, {d['file']['format']})")
        if "webhook" in d:
            w = d["webhook"]
            parts.append(
                f"webhook {w['sent']} of {w['batches']} batches sent"
                + (f", {w['already_sent']} already sent before" if w["already_sent"] else "")
            )
        common.console.print("; ".join(parts), highlight=False)


@campaign_app.command("deliver")
@common.guarded
def campaign_deliver(
    name: str = typer.Argument(..., help="Campaign name in custintel.yaml."),
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Date of the recorded run."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Export and post a recorded run's treated contacts again; batches a webhook already
    accepted are skipped, so after a failure this sends only what is pending."""
    with common.open_project(project) as proj:
        result = proj.campaign_deliver(name, common.parse_date(as_of, "--as-of"))
    if as_json:
        common.print_json(result)
        return
    _show_delivery(result)


@campaign_app.command("why")
@common.guarded
def campaign_why(
    name: str = typer.Argument(..., help="Campaign name."),
    customer_id: str = typer.Argument(..., help="Customer id."),
    project: Path = common.ProjectOpt,
    as_of: str | None = typer.Option(None, "--as-of", help="Run date (default: the latest)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Every rule a customer met in a campaign's run."""
    with common.open_project(project, read_only=True) as proj:
        result = proj.campaign_why(
            name, customer_id, common.parse_date(as_of, "--as-of") if as_of else None
        )
    if as_json:
        common.print_json(result)
        return
    for o in result["outcome"]:
        what = (
            f"{o['outcome']}: {o['offer']} on {o['channel']}"
            if o["outcome"] != "excluded"
            else f"excluded by {o['rule']}"
        )
        common.console.print(f"{customer_id} in {name} as of {result['as_of']}: {what}")
    table = Table(title="candidates")
    for col in ("offer", "channel", "rules failed", "priority", "cost"):
        table.add_column(col, justify="right" if col in ("priority", "cost") else "left")
    for c in result["candidates"]:
        table.add_row(
            c["offer"], c["channel"], ", ".join(c["failed"]) or "-", f"{c['priority']:.3f}",
            f"{c['cost']:.2f}",
        )  # fmt: skip
    common.console.print(table)


@campaign_app.command("play-out")
@common.guarded
def campaign_play_out(
    name: str = typer.Argument(..., help="Campaign name in custintel.yaml."),
    project: Path = common.ProjectOpt,
    as_of: str | None = typer.Option(None, "--as-of", help="Run date (default: the latest)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Simulated projects: play a run out in the simulation and compare its targeting
    with the truth (by propensity, by value, random, everyone)."""
    with common.open_project(project) as proj:
        result = proj.campaign_play_out(
            name, common.parse_date(as_of, "--as-of") if as_of else None
        )
    if as_json:
        common.print_json(result)
        return
    table = Table(title=f"{name} as of {result['as_of']}: true incremental value per contact")
    for col in ("targeting", "contacts", "value per contact", "vs random", "vs everyone"):
        table.add_column(col, justify="left" if col == "targeting" else "right")
    for r in result["policies"]:
        table.add_row(
            r["policy"], f"{r['contacts']:,}", f"{r['value_per_contact']:.3f}",
            f"{r['vs_random']:.2f}x", f"{r['vs_everyone']:.2f}x",
        )  # fmt: skip
    common.console.print(table)
    common.console.print(
        f"held out: {result['holdout_share']:.2%} of those chosen; played-out files: "
        f"{result['played_out']}",
        highlight=False,
    )


@common.app.command("nba")
@common.guarded
def nba(
    project: Path = common.ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Decision date."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Every customer's next-best action across all offers (campaign.nba)."""
    with common.open_project(project) as proj:
        result = proj.nba(common.parse_date(as_of, "--as-of"))
    if as_json:
        common.print_json(result)
        return
    _show(result, f"next-best action as of {result['as_of']}")
