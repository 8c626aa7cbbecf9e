"""The segments page: the choice of k, profiles, stability and rules."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, p_value, table, versions_table


def _k_curves(selection: list[dict[str, Any]], chosen: int) -> str:
    """Every index per candidate k in small panels, the chosen k marked."""
    from plotly.subplots import make_subplots

    panels = [
        ("inertia", "inertia (elbow)"),
        ("silhouette", "silhouette (higher is better)"),
        ("calinski_harabasz", "Calinski-Harabasz (higher)"),
        ("davies_bouldin", "Davies-Bouldin (lower)"),
    ]
    if selection and "bic" in selection[0]:
        panels.append(("bic", "mixture BIC (lower)"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    ks = [r["k"] for r in selection]
    for i, (key, _) in enumerate(panels, start=1):
        fig.add_scatter(
            x=ks,
            y=[r[key] for r in selection],
            mode="lines+markers",
            row=1,
            col=i,
            showlegend=False,
            marker_color="#134074",
        )
        fig.add_vline(x=chosen, line_dash="dash", line_color="#c4320a", row=1, col=i)
    fig.update_layout(title=f"Choosing k (chosen: {chosen})")
    return figure(fig, top=80)


def _metrics_text(m: dict[str, Any]) -> str:
    labels = {
        "k": ("k", "{}"),
        "clustered": ("clustered", "{:,}"),
        "silhouette": ("silhouette", "{:.3f}"),
        "bootstrap_ari": ("bootstrap ARI", "{:.3f}"),
        "surrogate_fidelity": ("rule fidelity", "{:.1%}"),
    }
    return ", ".join(
        f"{label} {fmt.format(m[key])}" for key, (label, fmt) in labels.items() if key in m
    )


def body(data: dict[str, Any]) -> str:
    """Segments of the active model: how k was chosen, sizes, profiles, stability, rules."""
    entry, s = data["entry"], data["summary"]
    profiles = s.get("profiles", [])
    parts = [
        f"<p>Model <code>segments v{entry.version}</code> ({html.escape(entry.algorithm)}), "
        f"fitted as of {html.escape(entry.snapshots[0])} on feature set version "
        f"<code>{html.escape(entry.feature_set_version)}</code>: {s.get('k')} clustered segments "
        f"over {s.get('clustered', 0):,} of {s.get('customers', 0):,} customers; customers "
        "with too few purchases to cluster have a rule segment.</p>",
        f"<p>{html.escape(str(s.get('reason', ''))[:1].upper() + str(s.get('reason', ''))[1:])}.</p>",
    ]
    clipped = {f: v for f, v in (s.get("clipped") or {}).items() if v > 0}
    if clipped:
        parts.append(
            "<p>Outliers clipped (share of clustered customers beyond the clip): "
            + html.escape(", ".join(f"{f} {v:.2%}" for f, v in clipped.items()))
            + ".</p>"
        )
    if s.get("explained_variance"):
        ev = s["explained_variance"]
        parts.append(
            f"<p>PCA kept {len(ev)} components explaining {sum(ev):.1%} of the variance "
            f"({html.escape(', '.join(f'{v:.1%}' for v in ev))}).</p>"
        )
    if s.get("selection"):
        parts.append(_k_curves(s["selection"], int(s["k"])))
    names = [p["segment_name"] for p in profiles]
    sizes = go.Figure()
    sizes.add_bar(
        x=names, y=[p["share"] for p in profiles], name="customers", marker_color="#8da9c4"
    )
    if profiles and profiles[0].get("revenue_share") is not None:
        sizes.add_bar(
            x=names,
            y=[p.get("revenue_share") or 0 for p in profiles],
            name="revenue",
            marker_color="#134074",
        )
    sizes.update_layout(
        title="Share of customers and of net revenue", barmode="group", yaxis_tickformat=".0%"
    )
    parts.append("<h2>Sizes</h2>" + figure(sizes))
    index_cols = [
        c
        for c in (profiles[0] if profiles else {})
        if c.startswith("index_") and any(p.get(c) is not None for p in profiles)
    ]
    if index_cols:
        z = [[p.get(c) for c in index_cols] for p in profiles]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=[c[6:] for c in index_cols],
                y=names,
                colorscale="RdBu",
                zmin=0,
                zmax=200,  # colour saturates at half and twice the base; the text is exact
                text=[[("" if v is None else f"{v:.0f}") for v in row] for row in z],
                texttemplate="%{text}",
                colorbar={"title": "index"},
            )
        )
        fig.update_layout(
            title="Profile: segment mean against the base (100 = base mean)",
            yaxis={"autorange": "reversed"},
        )
        parts.append("<h2>Profiles</h2>" + figure(fig, height=max(360, 40 * len(names) + 120)))
    snake = s.get("snake")
    if snake:
        fig = go.Figure()
        for name, means in snake["means"].items():
            fig.add_scatter(x=snake["features"], y=means, mode="lines+markers", name=name)
        fig.update_layout(
            title="Snake plot: standardised feature means per clustered segment",
            yaxis_title="standard deviations from the base",
        )
        parts.append(figure(fig))
    rows = []
    for p in profiles:
        top = "; ".join(f"{f} {d:+.2f} sd" for f, d in p.get("distinguishing", []))
        rows.append(
            [
                p["segment_id"],
                p["segment_name"],
                f"{p['customers']:,}",
                f"{p['share']:.1%}",
                "" if p.get("revenue_share") is None else f"{p['revenue_share']:.1%}",
                top,
            ]
        )
    parts.append(
        table(
            ["id", "segment", "customers", "share", "revenue", "most distinguishing"],
            rows,
            numeric={2, 3, 4},
        )
    )
    proj = s.get("projection")
    if proj:
        fig = go.Figure()
        for name in dict.fromkeys(proj["segment"]):
            idx = [i for i, v in enumerate(proj["segment"]) if v == name]
            fig.add_scattergl(
                x=[proj["x"][i] for i in idx],
                y=[proj["y"][i] for i in idx],
                mode="markers",
                name=name,
                marker={"size": 4, "opacity": 0.6},
            )
        fig.update_layout(
            title=f"Two principal components of {len(proj['x']):,} sampled customers",
            xaxis_title="PC 1",
            yaxis_title="PC 2",
            height=480,
        )
        parts.append("<h2>Projection</h2>" + figure(fig, height=480))
    boot = s.get("bootstrap")
    if boot:
        lookup = {p["segment_id"]: p["segment_name"] for p in profiles}
        parts.append(
            f"<h2>Stability</h2><p>{boot['rounds']} bootstrap refits on {boot['rows']:,} "
            f"customers: adjusted Rand index mean {boot['ari_mean']:.3f}, lowest "
            f"{boot['ari_min']:.3f}. Per segment, the mean best Jaccard overlap (above 0.75: "
            "stable; below 0.5: dissolving):</p>"
        )
        parts.append(
            table(
                ["segment", "Jaccard"],
                [[lookup.get(k, k), f"{v:.3f}"] for k, v in boot["jaccard"].items()],
                numeric={1},
            )
        )
    dist = s.get("distinctness")
    if dist:
        parts.append(
            "<h2>Distinctness per feature</h2><p>With many customers every p-value "
            "is tiny; the effect sizes (share of variance or of rank variance "
            "between segments) say how much a feature separates them.</p>"
        )
        parts.append(
            table(
                ["feature", "ANOVA F", "eta squared", "Kruskal-Wallis H", "epsilon squared", "p"],
                [
                    [
                        d["feature"],
                        f"{d['anova_f']:,.0f}",
                        f"{d['eta_squared']:.3f}",
                        f"{d['kruskal_h']:,.0f}",
                        f"{d['epsilon_squared']:.3f}",
                        p_value(max(d["anova_p"], d["kruskal_p"])),
                    ]
                    for d in dist
                ],
                numeric={1, 2, 3, 4, 5},
            )
        )
    migration = data.get("migration")
    if migration is not None and len(migration):
        order = [p["segment_name"] for p in profiles]
        grid = migration.pivot_table(
            index="segment_from",
            columns="segment_to",
            values="customers",
            aggfunc="sum",
            fill_value=0,
        )
        rows = [n for n in [*order, "(not yet a customer)"] if n in grid.index]
        cols = [n for n in [*order, "(gone)"] if n in grid.columns]
        rows += [n for n in grid.index if n not in rows]
        cols += [n for n in grid.columns if n not in cols]
        grid = grid.loc[rows, cols]
        share = grid.div(grid.sum(axis=1).where(grid.sum(axis=1) > 0, 1), axis=0)
        frm = str(migration.from_date.iloc[0])[:10]
        to = str(migration.to_date.iloc[0])[:10]
        fig = go.Figure(
            go.Heatmap(
                z=share.values,
                x=list(grid.columns),
                y=list(grid.index),
                colorscale="Blues",
                text=grid.values,
                texttemplate="%{text}",
                colorbar={"title": "row share"},
            )
        )
        fig.update_layout(
            title=f"Migration {frm} (rows) to {to} (columns)", yaxis={"autorange": "reversed"}
        )
        parts.append("<h2>Migration</h2>" + figure(fig, height=max(420, 45 * len(grid) + 140)))
    sur = s.get("surrogate", {})
    parts.append("<h2>Rules for new customers</h2>")
    if "features" in sur:
        parts.append(
            f"<p>A decision tree of depth {sur['depth']} on {', '.join(sur['features'])} "
            f"places customers as the clustering does for {sur['fidelity']:.1%} of held-out "
            f"clustered customers ({sur['leaves']} leaves). "
            "<code>custintel segment export-rules --format sql</code> prints it as a SQL "
            "CASE that gives exactly the tree's answers.</p>"
        )
    parts.append("<pre class=raw>" + html.escape("\n".join(s.get("rules", []))) + "</pre>")
    if s.get("merges") or s.get("overrides"):
        parts.append("<h2>Business rules applied</h2>")
        parts.append(
            table(
                ["merged segment", "into", "customers", "why"],
                [
                    [m["segment"], m["into"], m["customers"], m["reason"]]
                    for m in s.get("merges", [])
                ],
                numeric={2},
            )
        )
        parts.append(
            table(
                ["segment", "automatic name", "name from the configuration"],
                [[o["segment_id"], o["automatic"], o["name"]] for o in s.get("overrides", [])],
            )
        )
    versions = data["versions"]
    parts.append("<h2>Model versions</h2>")
    parts.append(versions_table(versions, ("method", "as of", "metrics"), _metrics_text))
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    segments = project.segments_summary()
    if segments is None:
        return None
    s = segments["summary"]
    return Section(
        "segments.html",
        "Customer segments",
        f"v{segments['entry'].version} {segments['entry'].algorithm}: "
        + ", ".join(p["segment_name"] for p in s.get("profiles", [])),
        body(segments),
    )
