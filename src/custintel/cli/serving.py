"""``custintel publish``, ``custintel serve`` and ``custintel apikey``: the real-time
service and what it answers from (docs/serving.md)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from custintel.cli import common
from custintel.core import apikeys
from custintel.core.config import load_config
from custintel.core.errors import ConfigError

apikey_app = typer.Typer(help="API keys of the real-time service.", no_args_is_help=True)
common.app.add_typer(apikey_app, name="apikey")
events_app = typer.Typer(help="Events recorded by the real-time service.", no_args_is_help=True)
common.app.add_typer(events_app, name="events")


@common.app.command("publish")
@common.guarded
def publish(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Write a serving snapshot from the warehouse (features, champion scores, segments,
    CLV); running servers swap to it within a second."""
    with common.open_project(project) as proj:
        out = proj.publish(keep=proj.config.serving.keep_snapshots)
    if as_json:
        common.print_json(out)
        return
    models = ", ".join(f"{k} v{v}" for k, v in out["models"].items()) or "no models"
    common.console.print(
        f"Published snapshot v{out['version']}: {out['customers']:,} customers, "
        f"{out['features']} features, {models} in {out['seconds']} s -> {out['folder']}",
        highlight=False,
    )


@events_app.command("flush")
@common.guarded
def events_flush(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Move the events the service recorded (contacts, responses, consent) into
    serving.events; publish and campaign runs do it too."""
    with common.open_project(project) as proj:
        out = proj.events_flush()
    if as_json:
        common.print_json(out)
        return
    common.console.print(
        f"Flushed {out['events']:,} events from {out['batches']} batch(es): "
        f"{out['added']:,} new in serving.events",
        highlight=False,
    )


@common.app.command("serve")
@common.guarded
def serve(
    project: Path = common.ProjectOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
) -> None:
    """Serve scores, segments and CLV over HTTP from the published snapshot."""
    import uvicorn

    project = project.resolve()
    load_config(project)  # a broken config fails here, once, not in every worker
    os.environ["CUSTINTEL_PROJECT"] = str(project)
    metrics_dir = Path(tempfile.mkdtemp(prefix="custintel-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # one /metrics for all workers
    try:
        uvicorn.run(
            "custintel.service.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # paths carry customer ids: no personal data in logs
            log_level="warning",
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@apikey_app.command("create")
@common.guarded
def apikey_create(
    project: Path = common.ProjectOpt,
    role: str = typer.Option(
        ..., "--role", help="marketer, analyst, engineer, privacy_officer or admin."
    ),
    name: str = typer.Option(..., "--name", help="What uses the key, such as 'website'."),
) -> None:
    """Make a key and print it once; only its hash is kept."""
    load_config(project)
    try:
        key, record = apikeys.create(apikeys.keys_path(project), name, role)
    except ValueError as exc:
        raise ConfigError(f"--role: {exc}") from None
    common.err_console.print(
        f"Key {record.key_id} ({record.name}, {record.role}); shown once, store it now:"
    )
    typer.echo(key)


@apikey_app.command("list")
@common.guarded
def apikey_list(project: Path = common.ProjectOpt, as_json: bool = common.JsonOpt) -> None:
    """Keys with their role and dates (never the keys themselves)."""
    records = apikeys.read(apikeys.keys_path(project))
    rows = [
        {k: getattr(r, k) for k in ("key_id", "name", "role", "created_at", "revoked_at")}
        for r in records
    ]
    if as_json:
        common.print_json(rows)
        return
    table = Table(title="API keys")
    for col in ("key_id", "name", "role", "created_at", "revoked_at"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(v or "") for v in r.values()])
    common.console.print(table)


@apikey_app.command("revoke")
@common.guarded
def apikey_revoke(
    name: str = typer.Argument(..., help="The key's name or id."),
    project: Path = common.ProjectOpt,
) -> None:
    """Revoke a key: running servers refuse it within a second."""
    record = apikeys.revoke(apikeys.keys_path(project), name)
    common.console.print(f"Revoked {record.key_id} ({record.name}).", highlight=False)
