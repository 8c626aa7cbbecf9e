"""The page kit: layout, tables, figures and number formatting shared by every page.

A page module turns a stage's summary into a *fragment* (HTML without ``<html>`` or
``<head>``), so the same fragment can be written into a report file by
:func:`document` or served inside a web dashboard as it is. Figures need ``plotly.min.js``
on the page that shows them; the report writes it beside the pages (no CDN).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go

from custintel import __version__

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232b;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2e8;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e6e9ee;padding:.3rem .6rem;text-align:left;vertical-align:top;max-width:26rem;overflow-wrap:anywhere}
th{background:#f4f6f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.raw{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}
pre{white-space:pre-wrap}.ok{color:#18794e}.bad{color:#c4320a}.muted{color:#6b7785}
"""
"""One style sheet for every page (a dashboard includes it once)."""


@dataclass(frozen=True)
class Section:
    """One stage's page: the file it is written to, its title, the line the index shows
    and the body fragment."""

    file: str
    title: str
    summary: str
    body: str
    plotly: bool = True


def document(title: str, body: str, *, plotly: bool = False) -> str:
    """A whole HTML page around a fragment, stamped with the version and the time."""
    script = '<script src="plotly.min.js"></script>' if plotly else ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{script}</head><body><h1>{html.escape(title)}</h1>{body}"
        f"<p class=muted>custintel {__version__}, written {stamp}.</p></body></html>"
    )


def table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    """An HTML table; every cell escaped, the ``numeric`` columns right-aligned."""
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=n>{html.escape(str(v))}</td>"
            if i in numeric
            else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(fig: go.Figure, height: int = 360, top: int = 40) -> str:
    """A Plotly figure as a fragment in the report's look (plotly.js loaded by the page)."""
    fig.update_layout(
        margin={"l": 40, "r": 20, "t": top, "b": 40}, height=height, template="plotly_white"
    )
    return fig.to_html(include_plotlyjs=False, full_html=False)


def versions_table(
    versions: Any, headers: tuple[str, str, str], last: Callable[[dict[str, Any]], str]
) -> str:
    """A registry's versions (``core.registry``) as a table: version, algorithm, the dates
    it learnt from, when, aliases, and ``last`` of its stored metrics. ``headers`` name
    the algorithm, dates and last columns as the page speaks of them."""
    algorithm, dates, metric = headers
    return table(
        ["version", algorithm, dates, "created", "aliases", metric],
        [
            [
                int(r.version),
                r.algorithm,
                ", ".join(json.loads(r.snapshots)),
                str(r.created_at)[:19],
                r.aliases,
                last(json.loads(r.metrics)),
            ]
            for r in versions.itertuples()
        ],
        numeric={0},
    )


def p_value(p: float) -> str:
    """p-values below double precision print as a bound, not as a misleading 0."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"
