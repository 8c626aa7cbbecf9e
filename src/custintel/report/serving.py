"""The report's serving page: what the real-time service answers from, who may ask, and
what it was told (events, opt-outs)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.core import apikeys
from custintel.pipeline.serving_tasks import MANIFEST, current_snapshot
from custintel.report.kit import Section, figure, table


def _snapshot_rows(m: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["snapshot", f"v{m['version']}", f"published {m['published_at']}"],
        ["customers", f"{m['customers']:,}", f"features as of {m['features_as_of']}"],
        [
            "features",
            len(m["features"]) + len(m.get("categorical", [])),
            f"feature set {m['feature_set_version']}",
        ],
    ]
    for name, info in m["models"].items():
        rows.append([f"model {name}", f"v{info['version']}", f"{info['algorithm']}, scores as of {info['as_of']}"])  # fmt: skip
    for part in ("segments", "clv"):
        if m.get(part):
            rows.append([part, f"v{m[part]['model_version']}", f"as of {m[part]['as_of']}"])
    if m.get("nba"):
        n = m["nba"]
        rows.append(
            [
                "next-best action",
                f"{n['customers']:,} rows",
                f"as of {n['as_of']}; {n['carried_events']:,} later events carried",
            ]
        )
    return rows


def _segments_figure(m: dict[str, Any]) -> str:
    fb = m["fallbacks"]
    counts = fb.get("counts", {})
    if not counts:
        return ""
    names = [fb.get("names", {}).get(k) or k for k in counts]
    fig = go.Figure(go.Bar(x=names, y=list(counts.values()), name="customers"))
    fig.update_layout(title="Customers by segment, as GET /v1/segments answers")
    return figure(fig, height=320)


def _events(project: Any) -> str:
    wh = project.warehouse
    if not wh.exists("serving", "events"):
        return "<p>No events recorded through the service yet.</p>"
    e = wh.table("serving", "events")
    daily = (
        e.group_by(day=e.received_at.date(), kind=e.kind)
        .aggregate(n=e.count())
        .order_by("day")
        .execute()
    )
    fig = go.Figure(
        [
            go.Bar(x=part.day.astype(str), y=part.n, name=kind)
            for kind, part in daily.groupby("kind")
        ]
    )
    fig.update_layout(barmode="stack", title="Events recorded through the service, by day")
    c = e.filter(e.kind == "consent")
    withdrawn = c.filter(c.status == "withdrawn").count().execute()
    total = daily.n.sum()
    return (
        f"<p>{total:,} events in <code>serving.events</code>, of which opt-outs: "
        f"{withdrawn:,}. An opt-out counts in the service from the next request, and in "
        "campaigns and training sets once flushed.</p>" + figure(fig, height=320)
    )


def body(project: Any, m: dict[str, Any]) -> str:
    keys = apikeys.read(apikeys.keys_path(project.dir))
    roles = Counter(k.role for k in keys if k.revoked_at is None)
    parts = [
        "<h2>Serving snapshot</h2>",
        table(["part", "version", "detail"], _snapshot_rows(m)),
        _segments_figure(m),
        "<h2>API keys</h2>",
        "<p>Active keys by role (only their hashes are stored; "
        f"{sum(1 for k in keys if k.revoked_at):,} revoked).</p>",
        table(["role", "keys"], [[r, n] for r, n in sorted(roles.items())], numeric={1})
        if roles
        else "<p>No keys yet: <code>custintel apikey create --role ROLE --name NAME</code>.</p>",
        "<h2>Events and opt-outs</h2>",
        _events(project),
        "<p>Start the service with <code>custintel serve</code>; endpoints and roles are in "
        "docs/serving.md, the schema at <code>/openapi.json</code>.</p>",
    ]
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    folder = current_snapshot(project.dir)
    if folder is None or not (folder / MANIFEST).exists():
        return None
    m = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return Section(
        "serving.html",
        "Real-time service",
        f"snapshot v{m['version']}: {m['customers']:,} customers, "
        f"{len(m['models'])} model(s){', next-best action' if m.get('nba') else ''}",
        body(project, m),
    )
