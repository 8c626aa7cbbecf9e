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
            f"{s['spend']:,.2f} spent ({html.escape(_method(s['allocation']))} allocation).</p>"
        )
        parts.append(_allocation(s["allocation"]))
        why = sorted(s["excluded_by"].items(), key=lambda kv: -kv[1])
        fig = go.Figure(go.Bar(x=[v for _, v in why], y=[k for k, _ in why], orientation="h"))
        fig.update_layout(title="Why customers got nothing (the rule that excluded them)")
        fig.update_yaxes(autorange="reversed")
        parts.append(figure(fig, height=120 + 24 * len(why)))
        rows = [[k, f"{v:,}"] for k, v in s["by_action"].items()]
        parts.append(table(["offer / channel", "treated"], rows, {1}))
        parts.append(_delivery(run.get("deliveries")))
        parts.append(_truth(run.get("truth")))
    return "".join(parts)


def _method(allocation: Any) -> str:
    return allocation["method"] if isinstance(allocation, dict) else str(allocation)


def _allocation(a: Any) -> str:
    """The allocation's expected value against the bound and, when small, the optimum."""
    if not isinstance(a, dict) or a.get("bound") is None:
        return ""
    rows = [[f"{a['method']} (this run)", f"{a['value']:,.2f}", "-"]]
    if a.get("exact") is not None:
        gap = 100 * (1 - a["value"] / a["exact"]) if a["exact"] else 0.0
        rows.append([f"exact optimum (HiGHS, {a['exact_seconds']:.1f} s)",
                     f"{a['exact']:,.2f}", f"{gap:.3f} % above this run"])  # fmt: skip
    rows.append(["upper bound (linear relaxation)", f"{a['bound']:,.2f}",
                 f"{a['below_bound_pct']:.3f} % above this run"])  # fmt: skip
    note = "" if a.get("exact") is not None else (
        f"<p>{a['candidates']:,} candidates: too many for the exact solver in seconds; the "
        "bound is above every allocation, so the run is at most that far from the optimum.</p>"
    )  # fmt: skip
    return (
        "<h3>Allocation against the optimum</h3>"
        + table(["allocation", "expected value", "gap"], rows, {1})
        + note
    )


def _delivery(d: Any) -> str:
    if d is None or len(d) == 0:
        return ""
    rows = []
    for (channel, kind, target), g in d.groupby(["channel", "kind", "target"], sort=True):
        if kind == "file":
            rows.append([channel, "file", target, f"{int(g.rows.iloc[-1]):,} rows", "written"])
            continue
        last = g.sort_values("at").drop_duplicates("key", keep="last")
        sent = last[last.status == "sent"]
        failed = last[last.status != "sent"]
        of = int(g["of"].max())
        rows.append([channel, "webhook", target, f"{int(sent.rows.sum()):,} contacts",
                     f"{len(sent)} of {of} batches sent" + (f", {len(failed)} failed"
                                                           if len(failed) else "")])  # fmt: skip
    return "<h3>Delivery</h3>" + table(["channel", "kind", "to", "size", "status"], rows)


def _truth(t: Any) -> str:
    """Simulated projects: the targeting against every customer's true incremental value."""
    if t is None or len(t) == 0:
        return ""
    fig = go.Figure(go.Bar(x=list(t.policy), y=list(t.value_per_contact),
                           text=[f"{v:.2f}x random" for v in t.vs_random]))  # fmt: skip
    fig.update_layout(title="True incremental value per contact (simulation, played out)",
                      yaxis_title="expected value per contact")  # fmt: skip
    rows = [[r.policy, f"{r.contacts:,}", f"{r.value_per_contact:.3f}", f"{r.vs_random:.2f}x",
             f"{r.vs_everyone:.2f}x"] for r in t.itertuples()]  # fmt: skip
    return (
        "<h3>Targeting against the truth</h3><p>The run played out in the simulation "
        "(<code>custintel campaign play-out</code>): each policy's contacts judged by every "
        "customer's true incremental value under the simulator's effect model. by_propensity "
        "and by_value take as many contacts from the campaign's audience by one factor alone; "
        "random draws them from all customers.</p>"
        + figure(fig, height=360)
        + table(
            ["targeting", "contacts", "value per contact", "vs random", "vs everyone"],
            rows,
            {1, 2, 3, 4},
        )
    )


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
    runs = []
    for r in t.itertuples():
        run = {"campaign_id": r.campaign_id, "as_of": r.as_of, "summary": json.loads(r.summary)}
        for key, name in (("deliveries", "deliveries"), ("truth", "truth_check")):
            if wh.exists("campaign", name):
                x = wh.table("campaign", name)
                run[key] = x.filter(
                    (x.campaign_id == r.campaign_id) & (x.as_of == r.as_of)
                ).execute()
        runs.append(run)
    line = ", ".join(f"{r['campaign_id']} ({r['summary']['treatment']:,} treated)" for r in runs)
    return Section("campaigns.html", "Campaigns", line, body(runs))
