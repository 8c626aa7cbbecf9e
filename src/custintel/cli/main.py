"""The ``custintel`` command: a thin layer that parses options, calls :class:`Project`
and prints tables (or JSON with ``--json``). Failures print one line and exit 1."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from custintel import __version__
from custintel.core.errors import ConfigError, CustintelError

app = typer.Typer(
    name="custintel",
    help="Customer intelligence for data-driven marketing: ingest, check and report on customer data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ProjectOpt = typer.Option(
    Path("."), "--project", "-p", help="Project folder (holds custintel.yaml)."
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
ProjectionOpt = typer.Option(
    False,
    "--projection",
    help="Allow an as-of date after the data; the rows are recorded as a projection.",
)

F = TypeVar("F", bound=Callable[..., Any])


MAX_MESSAGE = 600
"""Characters of an error shown; a value pasted into a message can be megabytes."""


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line a terminal shows as written: control characters escaped, length bounded."""
    flat = " ".join(text.split("\n")).strip()
    flat = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in flat)
    if len(flat) > limit:
        flat = flat[:limit] + f"... ({len(flat) - limit:,} more characters)"
    return flat


def escape(text: str) -> str:
    """Text for a Rich console: bounded, and brackets shown as brackets, not markup."""
    return _markup_escape(bounded(text))


def _one_line(exc: BaseException) -> str:
    text = bounded(str(exc))
    return text or type(exc).__name__


def guarded(func: F) -> F:
    """Turn any failure into a one-line message on stderr and exit status 1.

    Set CUSTINTEL_DEBUG=1 to see the full traceback of unexpected errors.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except CustintelError as exc:
            err_console.print(
                f"[red]error:[/red] {_markup_escape(_one_line(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _interrupted()
        except ValidationError as exc:
            # An option value a setting refuses (segment fit --k 1): say which and why.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            err_console.print(
                f"[red]error:[/red] invalid option: {escape(problems)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        except Exception as exc:
            if _is_interrupt(exc):
                _interrupted()
            if os.environ.get("CUSTINTEL_DEBUG"):
                raise
            err_console.print(
                f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(_one_line(exc))} "
                "(set CUSTINTEL_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C inside a DuckDB query arrives as DuckDB's own InterruptException (or a
    RuntimeError saying so), not as KeyboardInterrupt."""
    import duckdb

    return isinstance(exc, duckdb.InterruptException) or "Query interrupted" in str(exc)


def _interrupted() -> None:
    err_console.print(
        "[red]interrupted:[/red] stopped before finishing; what was half-done was rolled "
        "back, and running the same command again completes it",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(130)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(label: str, done: int, total: int) -> None:
            source = label.split(":", 1)[0]
            if source not in tasks:
                tasks[source] = bar.add_task(source, total=max(total, 1))
            bar.update(
                tasks[source],
                completed=done if total else 1,
                total=max(total, 1),
                description=label if done < total else source,
            )

        yield update


def _open(project: Path, *, read_only: bool = False) -> Any:
    from custintel.pipeline.project import Project

    return Project.open(project, read_only=read_only)


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
            escape(r["file"]),
            status,
            str(r["rows_in"]),
            str(r["rows_clean"]),
            str(r["rows_quarantined"]),
            str(r["rows_duplicate"]),
            str(sum(r.get("field_counts", {}).values())),
            f"{r['seconds']:.2f}",
        )
    return table


@app.command()
@guarded
def version() -> None:
    """Print the custintel version."""
    console.print(__version__)


def _simulation_features(folder: Path) -> Any:
    """Features of a simulated shop as of its as-of date, with training snapshots at the
    five quarter ends before it and a response label for its latest campaign. Five, not
    three: a churn model learning from three snapshots instead of one scores 0.009 AUC
    higher out of time on the demo, with a calibration error of 0.028 instead of 0.037."""
    import datetime as dt

    from custintel.core.config import FeaturesConfig

    meta = json.loads((folder / "truth" / "simulation.json").read_text())
    as_of = dt.date.fromisoformat(meta["as_of"])
    ends, day = [], as_of
    for _ in range(5):  # the end of the quarter before, five times
        day = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
        ends.append(day)
    labels = list(FeaturesConfig().labels)
    campaigns = meta.get("config", {}).get("campaigns", [])
    if campaigns:
        labels.append(f"response_{campaigns[-1]['campaign_id']}")
    return FeaturesConfig(as_of=as_of, snapshots=sorted(ends), labels=labels)


@app.command()
@guarded
def init(
    directory: Path = typer.Argument(Path("."), help="Project folder to create."),
    with_sample: bool = typer.Option(
        False, "--with-sample", help="Also write a small sample retailer (messy files) and map it."
    ),
    from_simulation: Path | None = typer.Option(
        None, "--from-simulation", help="Map the files `custintel simulate` wrote to this folder."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing custintel.yaml."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a project: custintel.yaml and the warehouse."""
    from custintel.pipeline.project import init_project
    from custintel.simulate.sample import sample_config, write_sample
    from custintel.simulate.writer import simulation_config

    config = None
    if from_simulation is not None:
        if not (from_simulation / "truth" / "simulation.json").is_file():
            raise ConfigError(
                f"{from_simulation}: no simulation here (run `custintel simulate --out {from_simulation}`)"
            )
        data = os.path.relpath(from_simulation.resolve(), directory.resolve())
        config = simulation_config(Path(data).as_posix(), directory.resolve().name)
        config = config.model_copy(update={"features": _simulation_features(from_simulation)})
    elif with_sample:
        data = directory / "data"
        write_sample(data)
        config = sample_config(data, directory).model_copy(
            update={"name": directory.resolve().name}
        )
    path = init_project(directory, config, force=force)
    if as_json:
        _print_json(
            {"config": str(path), "sample": with_sample, "simulation": str(from_simulation or "")}
        )
    else:
        console.print(
            f"Created {path}" + (" with a sample retailer in data/" if with_sample else "")
        )


@app.command()
@guarded
def simulate(
    out: Path = typer.Option(Path("data"), "--out", help="Folder for the source files and truth/."),
    customers: int | None = typer.Option(
        None, "--customers", min=1, help="People to simulate (default 50,000)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same files (default 7)."),
    config_file: Path | None = typer.Option(
        None, "--config", help="YAML file with any simulator knobs (docs/simulator.md)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate a retailer: source files with noisy identities, and the truth behind them."""
    from custintel.core.config import validate_yaml
    from custintel.simulate.writer import SimulationConfig
    from custintel.simulate.writer import simulate as run_simulation

    config = SimulationConfig()
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: no such file")
        text = config_file.read_text(encoding="utf-8")
        config, _ = validate_yaml(text, str(config_file), SimulationConfig)
    overrides = {k: v for k, v in (("customers", customers), ("seed", seed)) if v is not None}
    config = SimulationConfig.model_validate({**config.model_dump(), **overrides})
    with err_console.status(f"simulating {config.customers:,} customers"):
        summary = run_simulation(out, config)
    if as_json:
        _print_json({"out": str(out), "as_of": str(config.as_of), **summary})
    else:
        console.print(
            f"Wrote {summary['people']:,} people, {summary['records']:,} source profiles, "
            f"{summary['orders']:,} orders, {summary['email_events']:,} e-mail and "
            f"{summary['web_events']:,} web events to {out} ({summary['faulty_rows']:,} faulty "
            f"order rows injected; as-of date {config.as_of}; truth in {out / 'truth'})"
        )


@app.command()
@guarded
def ingest(
    project: Path = ProjectOpt,
    source: list[str] = typer.Option(
        None, "--source", "-s", help="Only these sources (repeatable)."
    ),
    strict: bool = typer.Option(
        None,
        "--strict/--no-strict",
        help="A source whose path matches no file fails (default: ingest.strict).",
        show_default=False,
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Load every configured source: contracts, quality rules, quarantine, lineage."""
    with _open(project) as proj, _progress(not as_json) as progress:
        summary = proj.ingest(source or None, progress=progress, strict=strict)
    data = summary.as_dict()
    if as_json:
        _print_json(data)
    else:
        console.print(_ingest_table(data["results"]))
        console.print(
            f"run {data['run_id']}: {data['rows_in']} rows in = {data['rows_clean']} clean + "
            f"{data['rows_quarantined']} quarantined + {data['rows_duplicate']} duplicates"
        )
        for warning in summary.warnings:
            err_console.print(
                f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True
            )
    if summary.failed:
        for r in summary.failed:
            err_console.print(
                f"[red]failed:[/red] {escape(r.message)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(1)


@app.command()
@guarded
def quality(
    project: Path = ProjectOpt,
    examples: int = typer.Option(3, help="Example rows to show per rule."),
    as_json: bool = JsonOpt,
) -> None:
    """What was rejected, by source and rule, with example rows."""
    with _open(project, read_only=True) as proj:
        data = proj.quality()
    if as_json:
        _print_json(data)
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
    console.print(table)
    ex = Table(title="Examples of quarantined rows")
    for col in ("source", "rule", "file:line", "message"):
        ex.add_column(col)
    shown: dict[tuple[str, str], int] = {}
    for e in data["examples"]:
        key = (e["source"], e["rule"])
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= examples:
            ex.add_row(e["source"], e["rule"], f"{e['file']}:{e['line']}", e["message"])
    console.print(ex)


@app.command()
@guarded
def status(project: Path = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """Tables with row counts and the last runs."""
    with _open(project, read_only=True) as proj:
        data = proj.status()
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"Warehouse {data['warehouse']}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for t in data["tables"]:
        table.add_row(t["table"], str(t["rows"]))
    console.print(table)
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
    console.print(runs)


@app.command()
@guarded
def run(
    project: Path = ProjectOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the last run if it failed."),
    as_json: bool = JsonOpt,
) -> None:
    """Run every configured stage in order (the nightly batch)."""
    with _open(project) as proj, _progress(not as_json) as progress:
        result = proj.run(resume=resume, progress=progress)
    if as_json:
        _print_json(
            {
                "run_id": result.run_id,
                "ok": result.ok,
                "stages": [s.__dict__ for s in result.stages],
            }
        )
    else:
        for s in result.stages:
            colour = {"ok": "green", "failed": "red", "skipped": "dim"}[s.status]
            console.print(
                f"[{colour}]{s.status:>7}[/] {s.stage} {escape(s.message)}", highlight=False
            )
        console.print(f"run {result.run_id}: {'ok' if result.ok else 'failed'}")
    if not result.ok:
        failed = next(s for s in result.stages if s.status == "failed")
        err_console.print(
            f"[red]error:[/red] stage {failed.stage} failed: {escape(failed.message)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


features_app = typer.Typer(
    help="Customer features as of a date, training tables and stability.", no_args_is_help=True
)
app.add_typer(features_app, name="features")


def _date(value: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (write YYYY-MM-DD)") from None


@features_app.command("build")
@guarded
def features_build(
    project: Path = ProjectOpt,
    as_of: str | None = typer.Option(
        None, "--as-of", help="Date (YYYY-MM-DD); features read only events before it."
    ),
    projection: bool = ProjectionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compute every customer's features as of a date into features.customer."""
    day = _date(as_of, "--as-of") if as_of else None
    with _open(project) as proj, err_console.status("building features"):
        result = proj.features_build(day, projection=projection)
    if as_json:
        _print_json(result.as_dict())
        return
    console.print(
        f"features.customer as of {result.as_of}: {result.rows:,} customers x "
        f"{result.features} features (feature set version {result.version}, amounts in "
        f"{result.currency or 'the orders currency'}) in {result.seconds} s"
        + (f"\n{result.note}" if result.note else "")
    )


@features_app.command("training-set")
@guarded
def features_training_set(
    project: Path = ProjectOpt,
    label: str = typer.Option(
        ...,
        "--label",
        help="churn_90d, purchase_30d, spend_365d, new_category_90d, response_<campaign>.",
    ),
    snapshots: str | None = typer.Option(
        None, "--snapshots", help="Comma-separated as-of dates (default: features.snapshots)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Build features.train_<label>: one row per customer and snapshot, label attached."""
    days = (
        [_date(d, "--snapshots") for d in snapshots.split(",") if d.strip()] if snapshots else None
    )
    with _open(project) as proj, err_console.status(f"building the training table for {label}"):
        result = proj.features_training_set(label, days)
    if as_json:
        _print_json(result.as_dict())
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
    console.print(table)


@features_app.command("stability")
@guarded
def features_stability(
    project: Path = ProjectOpt,
    reference: str = typer.Option(..., "--from", help="Reference as-of date (bins come from it)."),
    current: str = typer.Option(..., "--to", help="Later as-of date to compare."),
    top: int = typer.Option(15, "--top", help="Features to list (highest PSI first)."),
    as_json: bool = JsonOpt,
) -> None:
    """PSI per feature between two as-of dates; writes the features report page."""
    from custintel.pipeline.report import write_reports

    ref, cur = _date(reference, "--from"), _date(current, "--to")
    with _open(project) as proj, err_console.status("comparing feature distributions"):
        result = proj.features_stability(ref, cur)
        index = write_reports(proj)
    page = index.parent / "features.html"
    if as_json:
        _print_json({**result, "report": str(page)})
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
    console.print(table)
    console.print(f"Report: {page}")


@features_app.command("list")
@guarded
def features_list(
    project: Path = ProjectOpt,
    family: str | None = typer.Option(
        None, "--family", help="Only one family (rfm, windows, trends, mix, engagement)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """The feature catalog: every feature with its family, type and meaning."""
    with _open(project) as proj:
        catalog = proj.features_catalog()
    if family:
        catalog = catalog[catalog.family == family]
    if as_json:
        _print_json(catalog.to_dict(orient="records"))
        return
    version = catalog.version.iloc[0] if len(catalog) else ""
    table = Table(title=f"Feature set customer, version {version}: {len(catalog)} features")
    for col in ("name", "family", "type", "description"):
        table.add_column(col)
    for r in catalog.itertuples():
        table.add_row(r.name, r.family, r.dtype, r.description)
    console.print(table)


@app.command()
@guarded
def report(
    project: Path = ProjectOpt,
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the pages (default: the project's reports_dir)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Write the HTML reports; prints where reports/index.html is. Only reads the
    warehouse, so a read-only project can be reported on with --out elsewhere."""
    from custintel.pipeline.report import write_reports

    with _open(project, read_only=True) as proj:
        index = write_reports(proj, out)
    if as_json:
        _print_json({"index": str(index)})
    else:
        console.print(f"Report: {index.resolve()}")


def main() -> None:  # pragma: no cover - entry point
    app()


identity_app = typer.Typer(
    help="Link customer profiles into customers with persistent ids.", no_args_is_help=True
)
app.add_typer(identity_app, name="identity")


@identity_app.command("resolve")
@guarded
def identity_resolve(
    project: Path = ProjectOpt,
    full: bool = typer.Option(
        False, "--full", help="Link every profile again (ids still kept by overlap)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Link the profiles: rules, then Splink; ids carried over from the last run.

    The first run links everything; later runs link only new and changed profiles."""
    with _open(project) as proj, err_console.status("resolving identities"):
        result = proj.identity_resolve(full=full)
    data = result.as_dict()
    if as_json:
        _print_json(data)
        return
    links = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.links.items()))
    how = (
        f"full ({result.mode_reason})"
        if result.mode == "full"
        else f"incremental: {result.delta_records:,} new or changed profiles, "
        f"{result.reclustered_records:,} re-clustered"
    )
    console.print(
        f"{how}\n{result.records:,} profiles -> {result.customers:,} customers "
        f"({result.created:,} new ids, {result.merged:,} merged, {result.split:,} split) "
        f"in {result.seconds} s\nlinks: {links or 'none'}; {result.non_keys} placeholder or "
        f"shared values set aside; {result.empty_records} profiles with nothing to match on"
        f"\nprobabilistic: {escape(result.probabilistic)}"
        + "".join(f"\n  - {escape(note)}" for note in result.notes)
        + (
            "\ndevices: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(result.devices.items()))
            if result.devices
            else ""
        )
    )


@identity_app.command("explain")
@guarded
def identity_explain(
    what: list[str] = typer.Argument(
        ...,
        help="A customer id (CU00000123), or two profiles as source:source_id "
        "(crm:C000001 webshop:W000002).",
    ),
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why profiles are one customer (a customer id) or why two profiles are or are not
    linked (a pair): the rule, or each field's part of the match weight."""
    from rich.table import Table

    if len(what) not in (1, 2):
        raise ConfigError("identity explain: give one customer id or two source:source_id")
    with _open(project, read_only=True) as proj:
        data = proj.identity_explain(what[0]) if len(what) == 1 else None
        pair = proj.identity_explain_pair(*what) if len(what) == 2 else None
    if as_json:
        _print_json(data or pair)
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
    console.print(profiles)
    links = Table(title="Links (rule, or match weight and each field's part of it)")
    for col in ("left", "right", "linked by", "weight", "parts"):
        links.add_column(col)
    for link in data["links"]:
        parts = ", ".join(f"{k} {v:+.1f}" for k, v in link["weights"].items())
        weight = "" if link["match_weight"] is None else f"{link['match_weight']:.1f}"
        links.add_row(link["left"], link["right"], link["rule"], weight, parts)
    console.print(links if data["links"] else "A single profile: nothing links it.")


def _print_pair(pair: dict) -> None:
    from rich.table import Table

    same = "the same customer" if pair["same_customer"] else "different customers"
    console.print(
        f"{pair['left']} ({pair['customer_ids'][0]}) and {pair['right']} "
        f"({pair['customer_ids'][1]}): {same}\ndecision for this pair: {pair['decision']}"
    )
    console.print(f"rules that hold: {', '.join(pair['rules']) or 'none'}")
    if pair["set_aside"]:
        values = ", ".join(f"{v['field']} {v['value']}" for v in pair["set_aside"])
        console.print(f"not used as keys (placeholder or shared): {values}")
    scored = pair["probabilistic"]
    if scored is None:
        console.print(
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
    console.print(table)


@identity_app.command("report")
@guarded
def identity_report(project: Path = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """Write the report; print the path of its identity page."""
    from custintel.pipeline.report import write_reports

    with _open(project) as proj:
        if proj.identity_summary() is None:
            raise ConfigError("identity: not resolved yet (run `custintel identity resolve`)")
        index = write_reports(proj)
    page = index.parent / "identity.html"
    if as_json:
        _print_json({"report": str(page)})
    else:
        console.print(f"Identity report: {page}")


segment_app = typer.Typer(
    help="Customer segments: fit, assign new snapshots, compare dates, export rules.",
    no_args_is_help=True,
)
app.add_typer(segment_app, name="segment")


def _segment_table(title: str, segments: dict[str, int]) -> Table:
    total = sum(segments.values()) or 1
    table = Table(title=title)
    for col in ("segment", "customers", "share"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for name, count in segments.items():
        table.add_row(name, f"{count:,}", f"{count / total:.1%}")
    return table


@segment_app.command("fit")
@guarded
def segment_fit(
    project: Path = ProjectOpt,
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
    as_json: bool = JsonOpt,
) -> None:
    """Fit segments, register the model as active, assign everyone, write the report."""
    from custintel.pipeline.report import write_reports

    day = _date(as_of, "--as-of") if as_of else None
    with _open(project) as proj, _progress(not as_json) as progress:
        result = proj.segment_fit(day, method=method, k=k, force=force, progress=progress)
        index = write_reports(proj)
    page = index.parent / "segments.html"
    if as_json:
        _print_json({**result, "report": str(page)})
        return
    m = result["metrics"]
    if result["unchanged"]:
        console.print(
            f"unchanged: v{result['version']} was fitted on these customers with these "
            "settings; it stays active and its assignments were written again",
            highlight=False,
        )
    console.print(
        f"segments v{result['version']} ({result['method']}) as of {result['as_of']}: "
        f"k={result['k']} on {result['clustered']:,} of {result['customers']:,} customers "
        f"(the rest have a rule segment)\n{result['reason']}",
        highlight=False,
    )
    extra = []
    if "bootstrap_ari" in m:
        extra.append(f"bootstrap ARI {m['bootstrap_ari']:.3f}")
    extra.append(f"surrogate tree fidelity {m['surrogate_fidelity']:.1%}")
    console.print(", ".join(extra), highlight=False)
    for merge in result["merges"]:
        console.print(
            f"merged segment {merge['segment']} into {merge['into']}: {merge['reason']}",
            highlight=False,
        )
    console.print(_segment_table("Segments", result["segments"]))
    console.print(f"Report: {page}")


@segment_app.command("assign")
@guarded
def segment_assign(
    project: Path = ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Snapshot date to assign (YYYY-MM-DD)."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    as_json: bool = JsonOpt,
) -> None:
    """Place every customer of a snapshot with the fitted model (no refit)."""
    with _open(project) as proj, err_console.status("assigning segments"):
        result = proj.segment_assign(_date(as_of, "--as-of"), version=version)
    if as_json:
        _print_json(result)
        return
    console.print(
        _segment_table(
            f"segments v{result['version']} as of {result['as_of']}: "
            f"{result['customers']:,} customers",
            result["segments"],
        )
    )


@segment_app.command("compare")
@guarded
def segment_compare(
    project: Path = ProjectOpt,
    start: str = typer.Option(..., "--from", help="Earlier as-of date."),
    end: str = typer.Option(..., "--to", help="Later as-of date."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    as_json: bool = JsonOpt,
) -> None:
    """Migration between two dates with the same model, and the shift in segment shares."""
    from custintel.pipeline.report import write_reports

    with _open(project) as proj, err_console.status("comparing segments"):
        result = proj.segment_compare(_date(start, "--from"), _date(end, "--to"), version=version)
        index = write_reports(proj)
    if as_json:
        _print_json(result)
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
    console.print(table)
    console.print(f"Migration matrix: {index.parent / 'segments.html'}")


@segment_app.command("export-rules")
@guarded
def segment_export_rules(
    project: Path = ProjectOpt,
    fmt: str = typer.Option("sql", "--format", help="sql (a CASE expression), text or json."),
    version: int | None = typer.Option(None, "--version", help="Model version (default: active)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Rules that place a customer in a segment from the feature table's columns."""
    with _open(project) as proj:
        text = proj.segment_rules(fmt, version=version)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text + "\n")


clv_app = typer.Typer(
    help="Customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma; fit and validate.",
    no_args_is_help=True,
)
app.add_typer(clv_app, name="clv")


@clv_app.command("fit")
@guarded
def clv_fit(
    project: Path = ProjectOpt,
    as_of: str = typer.Option(..., "--as-of", help="Fit on the purchases before this date."),
    model: str | None = typer.Option(
        None, "--model", help="bgnbd, mbgnbd or pareto (default: clv.model)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Fit a purchase model and Gamma-Gamma for spend; registered as the model clv."""
    with _open(project) as proj:
        result = proj.clv_fit(_date(as_of, "--as-of"), model=model)
    if as_json:
        _print_json(result)
        return
    table = Table(
        title=f"clv v{result['version']}: {result['model']} + Gamma-Gamma as of {result['as_of']}"
    )
    for col in ("part", "parameter", "estimate", "standard error"):
        table.add_column(col, justify="left" if col in ("part", "parameter") else "right")
    for part in ("purchases", "spend"):
        for k, v in result[part]["params"].items():
            table.add_row(part, k, f"{v:.4f}", f"{result[part]['standard_errors'][k]:.4f}")
    console.print(table)
    console.print(
        f"{result['customers']:,} customers ({result['repeat_buyers']:,} repeat buyers; "
        f"{result['left_out_no_history']:,} first bought on the last day, left out); "
        f"log-likelihood {result['purchases']['log_likelihood']:,.1f}; correlation of "
        f"frequency and mean spend {result['spend']['frequency_spend_correlation']:.2f} "
        "(Gamma-Gamma assumes about 0)",
        highlight=False,
    )


@clv_app.command("validate")
@guarded
def clv_validate(
    project: Path = ProjectOpt,
    calibration_end: str = typer.Option(..., "--calibration-end", help="Last calibration day."),
    holdout_end: str = typer.Option(..., "--holdout-end", help="Last holdout day."),
    as_json: bool = JsonOpt,
) -> None:
    """Every purchase model fitted on the calibration period, judged on the holdout."""
    with _open(project) as proj:
        result = proj.clv_validate(
            _date(calibration_end, "--calibration-end"), _date(holdout_end, "--holdout-end")
        )
    if as_json:
        _print_json(result)
        return
    cal, hold = result["periods"]["calibration"], result["periods"]["holdout"]
    console.print(
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
    from custintel.clv.value import HOLDOUT_COLUMNS, SPEND_COLUMNS, holdout_cells, spend_cells

    for col in HOLDOUT_COLUMNS:
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result["models"].items():
        table.add_row(*holdout_cells(name, m))
    console.print(table)
    spend = result.get("spend") or {}
    if "btyd" in spend:
        table = Table(title=f"Holdout spend, {spend['actual_total']:,.0f} in all")
        for col in SPEND_COLUMNS:
            table.add_column(col, justify="left" if col == "prediction" else "right")
        for way in ("btyd", "lightgbm"):
            table.add_row(*spend_cells(spend[way]))
        console.print(table)
    elif spend.get("skipped"):
        console.print(spend["skipped"], highlight=False)


model_app = typer.Typer(
    help="Propensity models: train with out-of-time evaluation, list the registry.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


@model_app.command("train")
@guarded
def model_train(
    label: str = typer.Argument(..., help="A label with a training table, e.g. churn_90d."),
    project: Path = ProjectOpt,
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
    as_json: bool = JsonOpt,
) -> None:
    """Train on earlier snapshots, calibrate and choose on the next, test on the latest;
    or on your own table with --table."""
    with _open(project) as proj, _progress(not as_json) as progress:
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
        _print_json(result)
        return
    split = result["split"]
    if result["unchanged"]:
        console.print(
            "unchanged: the latest version was trained on these rows with these settings",
            highlight=False,
        )
    crossfitted = split.get("kind") == "crossfit"
    if crossfitted:
        est = result["estimate"]
        console.print(
            f"{result['name']} v{result['version']}: {result['algorithm']} "
            f"({result['chosen_because']}), calibration {result['calibration']}; trained on "
            f"{', '.join(split['train'])}; estimated {split['test']}: AUC "
            f"{est['auc_mean']:.4f} ± {est['auc_sd']:.4f}, Brier {est['brier_mean']:.4f} "
            f"± {est['brier_sd']:.4f} over the folds ({est['seconds']:.1f} s)",
            highlight=False,
        )
    else:
        console.print(
            f"{result['name']} v{result['version']}: {result['algorithm']} "
            f"({result['chosen_because']}); trained on {', '.join(split['train'])}, "
            + ("tested on " if "random" in split["test"] else "tested out of time on ")
            + f"{split['test']} ({result['rows']['test']:,} customers)",
            highlight=False,
        )
    from custintel.models.metrics import CANDIDATE_COLUMNS, candidate_cells

    table = Table(
        title="Out-of-fold estimate (every row predicted by a model that never saw it)"
        if crossfitted
        else "Out-of-time test"
    )
    for col in CANDIDATE_COLUMNS:
        table.add_column(col, justify="left" if col == "candidate" else "right")
    for name, c in result["candidates"].items():
        table.add_row(*candidate_cells(name, c, result["algorithm"]))
    console.print(table)
    tuning = result.get("tuning")
    if tuning:
        console.print(
            f"tuned: {tuning['trials']} Optuna trials in {tuning['seconds']} s "
            f"(stopped by the {tuning['stopped_by']} budget), best early-stopping AUC "
            f"{tuning['best_auc']:.4f}",
            highlight=False,
        )
    if result.get("imbalance"):
        from custintel.models.metrics import IMBALANCE_COLUMNS, imbalance_cells

        table = Table(title="Class imbalance (out-of-time test, after calibration)")
        for col in IMBALANCE_COLUMNS:
            table.add_column(col, justify="left" if col == "strategy" else "right")
        for row in result["imbalance"]:
            table.add_row(*imbalance_cells(row))
        console.print(table)
    onnx = result.get("onnx") or {}
    if onnx.get("available"):
        console.print(
            f"ONNX: model.onnx, largest difference from native {onnx['max_abs_difference']:.1e} "
            f"on {onnx['parity_rows']:,} test customers",
            highlight=False,
        )
    elif onnx:
        console.print(f"ONNX: none ({onnx.get('reason')})", highlight=False)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)
    if not result["unchanged"]:
        console.print(f"model card: {result['card']}", highlight=False)


@model_app.command("list")
@guarded
def model_list(project: Path = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """Every registered model version: algorithm, snapshots, aliases, metrics."""
    with _open(project, read_only=True) as proj:
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
        _print_json(rows)
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
    console.print(table)


@model_app.command("promote")
@guarded
def model_promote(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    version: int = typer.Option(..., "--version", help="Version to make the champion."),
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make a version the champion if it meets every out-of-time gate (models.gates)."""
    with _open(project) as proj:
        result = proj.model_promote(label, version)
    if as_json:
        _print_json(result)
        return
    before = f" (was v{result['previous']})" if result["previous"] else ""
    console.print(f"{label}: v{result['champion']} is the champion{before}", highlight=False)


@app.command()
@guarded
def score(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d, or clv."),
    project: Path = ProjectOpt,
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
    projection: bool = ProjectionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Score every eligible customer into scores.<label> with deciles, tiers and reasons;
    `score clv` writes lifetime values into scores.clv; `score NAME --table FILE --out
    FILE` scores the rows of a table like the one NAME was trained on."""
    if table is not None:
        if out is None:
            raise ConfigError("score --table: say where the scores go with --out FILE")
        with _open(project, read_only=True) as proj:
            result = proj.score_table(
                label, table, out, id_column=id_column, version=version, use_onnx=use_onnx
            )
        if as_json:
            _print_json(result)
            return
        console.print(
            f"{result['out']}: {result['rows']:,} rows scored by {result['model']} "
            f"v{result['version']} ({result['engine']}; mean score {result['mean_score']:.4f})",
            highlight=False,
        )
        return
    if as_of is None:
        raise ConfigError("score: give --as-of DATE (or --table FILE for your own table)")
    if label == "clv":
        with _open(project) as proj:
            result = proj.score_clv(
                _date(as_of, "--as-of"),
                horizon_days=horizon,
                discount=discount,
                margin=margin,
                version=version,
                projection=projection,
            )
        if as_json:
            _print_json(result)
            return
        console.print(
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
    with _open(project) as proj, _progress(not as_json) as progress:
        result = proj.score(
            label,
            _date(as_of, "--as-of"),
            version=version,
            progress=progress,
            projection=projection,
        )
    if as_json:
        _print_json(result)
        return
    console.print(
        f"{result['table']}: {result['customers']:,} customers as of {result['as_of']} by "
        f"v{result['version']} (mean score {result['mean_score']:.4f}; "
        f"{result['opted_out']:,} opted out of profiling, not scored)",
        highlight=False,
    )


@model_app.command("threshold")
@guarded
def model_threshold(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = ProjectOpt,
    cost: float | None = typer.Option(None, "--cost", help="Cost per contact."),
    value: float | None = typer.Option(None, "--value", help="Value per success."),
    version: int | None = typer.Option(None, "--version", help="Version (default: champion)."),
    as_json: bool = JsonOpt,
) -> None:
    """What if we contact the top share by score? Volume, positives, cost, value and ROI."""
    from custintel.models.metrics import THRESHOLD_COLUMNS, threshold_cells

    with _open(project) as proj:
        result = proj.model_threshold(label, cost=cost, value=value, version=version)
    if as_json:
        _print_json(result)
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
    console.print(table)


@model_app.command("card")
@guarded
def model_card(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = ProjectOpt,
    version: int | None = typer.Option(None, "--version", help="Version (default: champion)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a version's model card (Markdown and HTML) and print where it is."""
    with _open(project) as proj:
        result = proj.model_card(label, version)
    result = {k: str(v) if isinstance(v, Path) else v for k, v in result.items()}
    if as_json:
        _print_json(result)
        return
    console.print(
        f"{label} v{result['version']} model card: {result['markdown']} and {result['html']}",
        highlight=False,
    )


@model_app.command("evaluate")
@guarded
def model_evaluate(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = ProjectOpt,
    version: int = typer.Option(..., "--version", help="Version to evaluate."),
    as_of: str = typer.Option(..., "--as-of", help="A snapshot date of the training table."),
    as_json: bool = JsonOpt,
) -> None:
    """A version's figures on one snapshot (out of time when it did not learn from it)."""
    with _open(project) as proj:
        result = proj.model_evaluate(label, version, _date(as_of, "--as-of"))
    if as_json:
        _print_json(result)
        return
    m = result["metrics"]
    console.print(
        f"{label} v{version} on {result['as_of']} ({m['rows']:,} customers, "
        f"{m['positive_rate']:.1%} positive): AUC {m['auc']:.4f}, PR AUC {m['pr_auc']:.4f}, "
        f"KS {m['ks']:.3f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}, "
        f"top-decile lift {m['top_decile_lift']:.2f}",
        highlight=False,
    )
    if result["warning"]:
        err_console.print(f"[yellow]warning:[/yellow] {result['warning']}", highlight=False)


@model_app.command("compare")
@guarded
def model_compare(
    label: str = typer.Argument(..., help="Model name (its label), e.g. churn_90d."),
    project: Path = ProjectOpt,
    challenger: int | None = typer.Option(
        None, "--challenger", help="Version to compare (default: the latest non-champion)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Champion against a challenger: paired bootstrap of the AUC difference."""
    with _open(project) as proj:
        r = proj.model_compare(label, challenger)
    if as_json:
        _print_json(r)
        return
    verdict = "better" if r["better"] else "not shown better"
    console.print(
        f"{label} on {r['as_of']} ({r['rows']:,} customers): champion v{r['champion']} AUC "
        f"{r['champion_auc']:.4f}, challenger v{r['challenger']} AUC {r['challenger_auc']:.4f}; "
        f"difference {r['difference']:+.4f}, 95 % interval {r['ci_low']:+.4f} to "
        f"{r['ci_high']:+.4f} over {r['rounds']} paired resamples: the challenger is {verdict}",
        highlight=False,
    )
