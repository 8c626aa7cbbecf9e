"""The project report: ``reports/index.html`` linking one page per stage.

Each stage names its page module in :mod:`custintel.core.stages`; the module's
``section(project, out)`` returns a :class:`~custintel.report.kit.Section` (or None when
the stage has not run), so a new stage's page joins the index with no edit here.
"""

from __future__ import annotations

import html
import importlib
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from custintel.core.errors import StageError
from custintel.core.stages import STAGES
from custintel.report.kit import Section, document, table


def sections(project: Any, out: Path) -> list[Section]:
    """Every stage's section that has something to show, in the order of the stages."""
    found = []
    for stage in STAGES:
        made = importlib.import_module(stage.page).section(project, out)
        if made is not None:
            found.append(made)
    return found


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".custintel-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StageError(
            f"report: cannot write into {out} ({exc.strerror}); give another folder with --out"
        ) from None


def index_body(project: Any, pages: list[Section]) -> str:
    """The index fragment: the last run, a link per page, every table with its rows."""
    status = project.status()
    run = project.last_run()
    run_line = (
        f"Last pipeline run {html.escape(run['run_id'])}: "
        + ", ".join(f"{html.escape(s['stage'])} {html.escape(s['status'])}" for s in run["stages"])
        if run
        else "No pipeline run yet."
    )
    items = "".join(
        f"<li><a href='{p.file}'>{html.escape(p.title)}</a> "
        f"<span class=muted>{html.escape(p.summary)}</span></li>"
        for p in pages
    )
    return (
        f"<p>Project <code>{html.escape(project.config.name)}</code>, warehouse "
        f"<code>{html.escape(status['warehouse'])}</code>. {run_line}</p><h2>Stages</h2><ol>{items}</ol>"
        "<h2>Tables</h2>"
        + table(["table", "rows"], [[x["table"], x["rows"]] for x in status["tables"]], numeric={1})
    )


def write_reports(project: Any, out: Path | None = None) -> Path:
    """Write every stage's page and the index (into ``out``, default the project's
    reports folder); returns the index path."""
    out = Path(out) if out is not None else project.reports_dir
    _writable(out)
    js = out / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    pages = sections(project, out)
    for page in pages:
        (out / page.file).write_text(
            document(page.title, page.body, plotly=page.plotly), encoding="utf-8"
        )
    index = out / "index.html"
    index.write_text(document("custintel report", index_body(project, pages)), encoding="utf-8")
    return index
