"""``custintel identity``: resolve profiles into customers and explain the links."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common
from custintel.core.errors import ConfigError

identity_app = typer.Typer(
    help="Link customer profiles into customers with persistent ids.", no_args_is_help=True
)
common.app.add_typer(identity_app, name="identity")


@identity_app.command("resolve")
@common.guarded
def identity_resolve(
    project: Path = common.ProjectOpt,
    full: bool = typer.Option(
        False, "--full", help="Link every profile again (ids still kept by overlap)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Link the profiles: rules, then Splink; ids carried over from the last run.

    The first run links everything; later runs link only new and changed profiles."""
    with common.open_project(project) as proj, common.err_console.status("resolving identities"):
        result = proj.identity_resolve(full=full)
    data = result.as_dict()
    if as_json:
        common.print_json(data)
        return
    links = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.links.items()))
    how = (
        f"full ({result.mode_reason})"
        if result.mode == "full"
        else f"incremental: {result.delta_records:,} new or changed profiles, "
        f"{result.reclustered_records:,} re-clustered"
    )
    common.console.print(
        f"{how}\n{result.records:,} profiles -> {result.customers:,} customers "
        f"({result.created:,} new ids, {result.merged:,} merged, {result.split:,} split) "
        f"in {result.seconds} s\nlinks: {links or 'none'}; {result.non_keys} placeholder or "
        f"shared values set aside; {result.empty_records} profiles with nothing to match on"
        f"\nprobabilistic: {common.escape(result.probabilistic)}"
        + "".join(f"\n  - {common.escape(note)}" for note in result.notes)
        + (
            "\ndevices: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(result.devices.items()))
            if result.devices
            else ""
        )
    )


@identity_app.command("explain")
@common.guarded
def identity_explain(
    what: list[str] = typer.Argument(
        ...,
        help="A customer id (CU00000123), or two profiles as source:source_id "
        "(crm:C000001 webshop:W000002).",
    ),
    project: Path = common.ProjectOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Why profiles are one customer (a customer id) or why two profiles are or are not
    linked (a pair): the rule, or each field's part of the match weight."""

    if len(what) not in (1, 2):
        raise ConfigError("identity explain: give one customer id or two source:source_id")
    with common.open_project(project, read_only=True) as proj:
        data = proj.identity_explain(what[0]) if len(what) == 1 else None
        pair = proj.identity_explain_pair(*what) if len(what) == 2 else None
    if as_json:
        common.print_json(data or pair)
        return
    if pair is not None:
        _print_pair(pair)
        return
    customer_id = what[0]
    profiles = Table(title=f"Profiles of {customer_id}")
    for col in data["profile_columns"]:
        profiles.add_column(col)
    for row in data["profiles"]:
        profiles.add_row(*row)
    common.console.print(profiles)
    links = Table(title="Links (rule, or match weight and each field's part of it)")
    for col in ("left", "right", "linked by", "weight", "parts"):
        links.add_column(col)
    for link in data["links"]:
        parts = ", ".join(f"{k} {v:+.1f}" for k, v in link["weights"].items())
        weight = "" if link["match_weight"] is None else f"{link['match_weight']:.1f}"
        links.add_row(link["left"], link["right"], link["rule"], weight, parts)
    common.console.print(links if data["links"] else "A single profile: nothing links it.")


def _print_pair(pair: dict) -> None:

    same = "the same customer" if pair["same_customer"] else "different customers"
    common.console.print(
        f"{pair['left']} ({pair['customer_ids'][0]}) and {pair['right']} "
        f"({pair['customer_ids'][1]}): {same}\ndecision for this pair: {pair['decision']}"
    )
    common.console.print(f"rules that hold: {', '.join(pair['rules']) or 'none'}")
    if pair["set_aside"]:
        values = ", ".join(f"{v['field']} {v['value']}" for v in pair["set_aside"])
        common.console.print(f"not used as keys (placeholder or shared): {values}")
    scored = pair["probabilistic"]
    if scored is None:
        common.console.print(
            f"no probabilistic model: {pair.get('model_status') or 'rules only'}"
            + "".join(f"\n  - {note}" for note in pair.get("model_notes", []))
        )
        return
    table = Table(
        title=f"Match weight {scored['match_weight']:+.2f} "
        f"(probability {scored['match_probability']:.4f})"
    )
    for col in ("comparison", pair["left"], pair["right"], "level", "weight"):
        table.add_column(col)
    table.add_row("prior", "", "", "two random profiles", f"{scored['prior']:+.2f}")
    for part in scored["comparisons"]:
        weight = "" if part["match_weight"] is None else f"{part['match_weight']:+.2f}"
        table.add_row(
            part["comparison"],
            str(part["left"] or ""),
            str(part["right"] or ""),
            part["level"],
            weight,
        )
    common.console.print(table)


@identity_app.command("report")
@common.guarded
def identity_report(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Write the report; print the path of its identity page."""
    from custintel.report import write_reports

    with common.open_project(project) as proj:
        if proj.identity_summary() is None:
            raise ConfigError("identity: not resolved yet (run `custintel identity resolve`)")
        index = write_reports(proj)
    page = index.parent / "identity.html"
    if as_json:
        common.print_json({"report": str(page)})
    else:
        common.console.print(f"Identity report: {page}")
