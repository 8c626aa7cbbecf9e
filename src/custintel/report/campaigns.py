"""The report's campaigns page: each campaign's last run, who got what, and why the
others got nothing."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, table


def body(runs: list[dict[str, Any]]) -> str:
    parts = []
    for run in runs:
        s = run["summary"]
        parts.append(
            f"<h2>{html.escape(run['campaign_id'])} as of {html.escape(str(run['as_of']))}</h2>"
            f"<p>{s['customers']:,} customers considered, {s['audience']:,} in the audience; "
            f"{s['treatment']:,} treated with {s['actions']:,} actions, {s['control']:,} held "
            f"out as control (share {_share(s['control_share'])}), {s['excluded']:,} got "
            f"nothing. Expected incremental value {s['expected_value']:,.2f} for "
            f"{s['spend']:,.2f} spent ({html.escape(s['allocation'])} allocation).</p>"
        )
        why = sorted(s["excluded_by"].items(), key=lambda kv: -kv[1])
        fig = go.Figure(go.Bar(x=[v for _, v in why], y=[k for k, _ in why], orientation="h"))
        fig.update_layout(title="Why customers got nothing (the rule that excluded them)")
        fig.update_yaxes(autorange="reversed")
        parts.append(figure(fig, height=120 + 24 * len(why)))
        rows = [[k, f"{v:,}"] for k, v in s["by_action"].items()]
        parts.append(table(["offer / channel", "treated"], rows, {1}))
    return "".join(parts)


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def section(project: Any, out: Path) -> Section | None:
    wh = project.warehouse
    if not wh.exists("campaign", "runs"):
        return None
    t = wh.table("campaign", "runs").execute()
    if t.empty:
        return None
    t = t.sort_values("as_of").drop_duplicates("campaign_id", keep="last")
    runs = [
        {"campaign_id": r.campaign_id, "as_of": r.as_of, "summary": json.loads(r.summary)}
        for r in t.itertuples()
    ]
    line = ", ".join(f"{r['campaign_id']} ({r['summary']['treatment']:,} treated)" for r in runs)
    return Section("campaigns.html", "Campaigns", line, body(runs))
