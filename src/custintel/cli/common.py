"""What every command shares: the root app, consoles, common options, the one place
failures become a one-line message, JSON output, progress bars and opening a project."""

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


def one_line(exc: BaseException) -> str:
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
                f"[red]error:[/red] {_markup_escape(one_line(exc))}",
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
                f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(one_line(exc))} "
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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
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


def open_project(project: Path, *, read_only: bool = False) -> Any:
    from custintel.pipeline.project import Project

    return Project.open(project, read_only=read_only)


def parse_date(value: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (write YYYY-MM-DD)") from None
