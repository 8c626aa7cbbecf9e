"""The identity page: how profiles became customers, the links and their weights."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, table


def _waterfall(example: dict[str, Any]) -> go.Figure:
    """How a link's match weight adds up: the prior, then each field's part."""
    names = [name for name, _ in example["parts"]] + ["match weight"]
    values = [value for _, value in example["parts"]] + [example["match_weight"]]
    fig = go.Figure(
        go.Waterfall(
            x=names,
            y=values,
            measure=["relative"] * len(example["parts"]) + ["total"],
            text=[f"{v:+.1f}" for v in values],
        )
    )
    fig.update_layout(title=example["title"], yaxis_title="match weight (log2 Bayes factor)")
    return fig


def _last_full_run(full: dict | None) -> str:
    """Where the ids and links come from: the last full run, and incremental runs since."""
    if not full:
        return ""
    model = (
        f"the probabilistic model was trained on its {full['records']:,} profiles"
        if full["model"]
        else "no probabilistic model was trained (rules only)"
    )
    plan = full.get("plan") or {}
    choices = ""
    if plan:
        rules = "; ".join(" + ".join(r) for r in plan.get("blocking", []))
        choices = (
            f"<p>Compared: {html.escape(', '.join(plan.get('compared', [])))}. "
            f"Blocking rules: {html.escape(rules)}.</p>"
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in full.get("notes", []))
    return (
        f"<p>Last full run {html.escape(full['at'])} UTC: {model}"
        + (f" ({html.escape(full['status'])})" if full.get("status") else "")
        + ". Later runs link only new and changed profiles with it and re-cluster only the "
        "customers they touch; <code>custintel identity resolve --full</code> links "
        f"everything again.</p>{choices}"
        + (f"<p>What was left out or fell back, and why:</p><ul>{notes}</ul>" if notes else "")
    )


def body(summary: dict[str, Any]) -> str:
    """Customers from profiles: sizes, systems, how records were linked, match weights."""
    sizes = go.Figure(
        go.Bar(x=[r[0] for r in summary["sizes"]], y=[r[1] for r in summary["sizes"]])
    )
    sizes.update_layout(
        title="Profiles per customer", xaxis_title="profiles", yaxis_title="customers"
    )
    systems = go.Figure(
        go.Bar(x=[r[0] for r in summary["systems"]], y=[r[1] for r in summary["systems"]])
    )
    systems.update_layout(
        title="Source systems per customer", xaxis_title="systems", yaxis_title="customers"
    )
    weights = go.Figure(go.Histogram(x=summary["weights"], nbinsx=60))
    weights.update_layout(
        title="Match weights of the probabilistic links (log2 Bayes factor)",
        xaxis_title="match weight",
        yaxis_title="pairs",
    )
    parts = [
        f"<p>{summary['records']:,} source profiles resolved into "
        f"{summary['customers']:,} customers.</p>",
        _last_full_run(summary.get("last_full_run")),
        "<h2>How each profile joined its customer</h2>",
        table(["linked by", "profiles"], summary["linked_by"], numeric={1}),
        figure(sizes),
        figure(systems),
        figure(weights),
        *[figure(_waterfall(example)) for example in summary.get("examples", [])],
        "<h2>Values set aside (placeholders and shared values)</h2>",
        table(["field", "value", "profiles", "reason"], summary["non_keys"], numeric={2})
        if summary["non_keys"]
        else "<p>None.</p>",
        "<h2>Cookies and devices</h2>",
        table(["status", "devices"], summary["devices"], numeric={1})
        if summary["devices"]
        else "<p>No web events.</p>",
        "<h2>Id history</h2>",
        table(["event", "ids"], summary["history"], numeric={1}),
    ]
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    summary = project.identity_summary()
    if summary is None:
        return None
    return Section(
        "identity.html",
        "Identity resolution",
        f"{summary['records']:,} profiles -> {summary['customers']:,} customers",
        body(summary),
    )
