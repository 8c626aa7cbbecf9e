"""The project report: ``reports/index.html`` linking one HTML page per stage.

Pages are self-contained apart from ``plotly.min.js``, which is written beside them from
the installed plotly package, so the report opens offline with no CDN.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from custintel import __version__
from custintel.core.errors import StageError
from custintel.models.metrics import (
    CANDIDATE_COLUMNS,
    IMBALANCE_COLUMNS,
    THRESHOLD_COLUMNS,
    candidate_cells,
    imbalance_cells,
    threshold_cells,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232b;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2e8;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e6e9ee;padding:.3rem .6rem;text-align:left;vertical-align:top;max-width:26rem;overflow-wrap:anywhere}
th{background:#f4f6f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.raw{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}
pre{white-space:pre-wrap}.ok{color:#18794e}.bad{color:#c4320a}.muted{color:#6b7785}
"""


def _page(title: str, body: str, *, plotly: bool = False) -> str:
    script = '<script src="plotly.min.js"></script>' if plotly else ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{script}</head><body><h1>{html.escape(title)}</h1>{body}"
        f"<p class=muted>custintel {__version__}, written {stamp}.</p></body></html>"
    )


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
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


def _figure(fig: go.Figure, height: int = 360, top: int = 40) -> str:
    fig.update_layout(
        margin={"l": 40, "r": 20, "t": top, "b": 40}, height=height, template="plotly_white"
    )
    return fig.to_html(include_plotlyjs=False, full_html=False)


def quality_page(quality: dict[str, Any]) -> str:
    """The data-quality report: counts, a chart of outcomes, rules broken and examples."""
    sources = quality["sources"]
    totals = quality["totals"]
    names = list(sources)
    reconciled = (
        totals["rows_in"]
        == totals["rows_clean"] + totals["rows_quarantined"] + totals["rows_duplicate"]
    )
    parts = [
        f"<p>{totals['rows_in']:,} rows read = {totals['rows_clean']:,} clean + "
        f"{totals['rows_quarantined']:,} quarantined + {totals['rows_duplicate']:,} duplicates "
        f"<span class={'ok' if reconciled else 'bad'}>({'reconciled' if reconciled else 'DOES NOT RECONCILE'})</span>.</p>"
    ]
    warnings = quality.get("warnings", [])
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h2>Warnings of the last ingest run</h2><ul class=bad>{items}</ul>")
    if names:
        fig = go.Figure()
        for key, label, colour in (
            ("rows_clean", "clean", "#2f9e72"),
            ("rows_quarantined", "quarantined", "#e0692e"),
            ("rows_duplicate", "duplicate", "#9aa5b1"),
        ):
            fig.add_bar(
                name=label,
                y=names,
                x=[sources[n][key] for n in names],
                orientation="h",
                marker_color=colour,
            )
        fig.update_layout(barmode="stack", title="Rows by outcome and source", xaxis_title="rows")
        parts.append(_figure(fig))
    parts.append("<h2>By source</h2>")
    parts.append(
        _table(
            [
                "source",
                "files",
                "rows in",
                "clean",
                "quarantined",
                "duplicates",
                "extra columns (schema drift)",
            ],
            [
                [
                    n,
                    s["files"],
                    s["rows_in"],
                    s["rows_clean"],
                    s["rows_quarantined"],
                    s["rows_duplicate"],
                    ", ".join(s["extra_columns"]) or "-",
                ]
                for n, s in sources.items()
            ],
            numeric={1, 2, 3, 4, 5},
        )
    )
    rule_rows = [[n, rule, count] for n, s in sources.items() for rule, count in s["rules"].items()]
    parts.append("<h2>Rules broken</h2>")
    if rule_rows:
        fig = go.Figure(
            go.Bar(
                x=[r[2] for r in rule_rows],
                y=[f"{r[0]} · {r[1]}" for r in rule_rows],
                orientation="h",
                marker_color="#e0692e",
            )
        )
        fig.update_layout(
            title="Quarantined rows by rule",
            xaxis_title="rows",
            height=max(300, 28 * len(rule_rows) + 80),
        )
        parts.append(_figure(fig))
        parts.append(_table(["source", "rule", "rows"], rule_rows, numeric={2}))
    else:
        parts.append("<p>No row broke a rule.</p>")
    parts.append("<h2>Examples of quarantined rows</h2>")
    parts.append(
        _table(
            ["source", "rule", "file", "line", "message", "raw values"],
            [
                [e["source"], e["rule"], e["file"], e["line"], e["message"], e["raw"]]
                for e in quality["examples"]
            ],
            numeric={3},
        )
    )
    return _page("Data quality", "".join(parts), plotly=True)


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


def identity_page(summary: dict[str, Any]) -> str:
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
        _table(["linked by", "profiles"], summary["linked_by"], numeric={1}),
        _figure(sizes),
        _figure(systems),
        _figure(weights),
        *[_figure(_waterfall(example)) for example in summary.get("examples", [])],
        "<h2>Values set aside (placeholders and shared values)</h2>",
        _table(["field", "value", "profiles", "reason"], summary["non_keys"], numeric={2})
        if summary["non_keys"]
        else "<p>None.</p>",
        "<h2>Cookies and devices</h2>",
        _table(["status", "devices"], summary["devices"], numeric={1})
        if summary["devices"]
        else "<p>No web events.</p>",
        "<h2>Id history</h2>",
        _table(["event", "ids"], summary["history"], numeric={1}),
    ]
    return _page("Identity resolution", "".join(parts), plotly=True)


def _stability_chart(stab: Any) -> str:
    colours = {"unstable": "#c4320a", "watch": "#d9a400", "stable": "#18794e"}
    top = stab.head(30)
    fig = go.Figure(
        go.Bar(
            x=list(top.psi),
            y=list(top.feature),
            orientation="h",
            marker_color=[colours[f] for f in top.flag],
        )
    )
    for x, dash in ((0.1, "dot"), (0.25, "dash")):
        fig.add_vline(x=x, line_dash=dash, line_color="#6b7785")
    fig.update_layout(
        title="PSI per feature (dotted 0.1: watch, dashed 0.25: unstable)",
        yaxis={"autorange": "reversed"},
    )
    return _figure(fig, height=max(360, 22 * len(top)))


def _distribution_charts(detail: list[dict[str, Any]]) -> str:
    """Reference against current shares per bin, for the least stable features."""
    out = []
    for row in detail[:6]:
        fig = go.Figure()
        fig.add_bar(x=row["bins"], y=row["ref_shares"], name="reference", marker_color="#8da9c4")
        fig.add_bar(x=row["bins"], y=row["cur_shares"], name="current", marker_color="#134074")
        fig.update_layout(
            title=f"{row['feature']}: PSI {row['psi']:.3f} ({row['flag']})",
            barmode="group",
            yaxis_title="share of customers",
        )
        out.append(_figure(fig))
    return "".join(out)


def features_page(summary: dict[str, Any], detail: list[dict[str, Any]] | None = None) -> str:
    """Feature builds, the catalog, training tables and the last stability check."""
    builds = summary["builds"]
    latest = summary["latest"]
    catalog = summary["catalog"]
    parts = [
        "<p>Features are computed per customer as of a date from events strictly before it "
        "(docs/features.md). Builds stored in <code>features.customer</code>:</p>",
        _table(
            ["as of", "feature set version", "customers"],
            [
                [str(r.as_of)[:10], r.feature_set_version, f"{r.customers:,}"]
                for r in builds.itertuples()
            ],
            numeric={2},
        ),
    ]
    if len(latest):
        as_of = str(latest.as_of.iloc[0])[:10]
        parts.append(f"<h2>Feature values as of {html.escape(as_of)}</h2>")
        rows = []
        for r in catalog.itertuples():
            if r.name not in latest:
                continue
            col = latest[r.name]
            if r.dtype in ("int64", "float64"):
                x = col.astype("float64")
                rows.append(
                    [
                        r.name,
                        r.family,
                        f"{x.isna().mean():.1%}",
                        f"{x.mean():.4g}",
                        f"{x.median():.4g}",
                        f"{x.quantile(0.9):.4g}",
                        r.description,
                    ]
                )
            else:
                top = col.astype("string").value_counts()
                mode = f"{top.index[0]} ({top.iloc[0] / len(col):.0%})" if len(top) else ""
                rows.append(
                    [r.name, r.family, f"{col.isna().mean():.1%}", mode, "", "", r.description]
                )
        parts.append(
            _table(
                [
                    "feature",
                    "family",
                    "missing",
                    "mean / most common",
                    "median",
                    "90th pct",
                    "meaning",
                ],
                rows,
                numeric={2, 3, 4, 5},
            )
        )
        if "rfm_code" in latest:
            scores = latest.dropna(subset=["rfm_recency_score", "rfm_frequency_score"])
            if len(scores):
                grid = (
                    scores.groupby(["rfm_recency_score", "rfm_frequency_score"])
                    .size()
                    .unstack(fill_value=0)
                )
                fig = go.Figure(
                    go.Heatmap(
                        z=grid.values,
                        x=[f"F{c}" for c in grid.columns],
                        y=[f"R{i}" for i in grid.index],
                        colorscale="Blues",
                    )
                )
                fig.update_layout(title="Customers by recency and frequency score")
                parts.append(_figure(fig))
    if summary["training"]:
        parts.append("<h2>Training tables</h2>")
        rows = []
        for t in summary["training"]:
            for r in t["snapshots"].itertuples():
                rows.append([t["table"], str(r.as_of)[:10], f"{r.rows:,}", f"{r.label_mean:.4f}"])
        parts.append(_table(["table", "as of", "rows", "label mean"], rows, numeric={2, 3}))
    stab = summary["stability"]
    if stab is not None and len(stab):
        ref, cur = str(stab.reference.iloc[0])[:10], str(stab.current.iloc[0])[:10]
        counts = stab.flag.value_counts()
        parts.append(
            f"<h2>Stability {html.escape(ref)} &rarr; {html.escape(cur)}</h2><p>"
            f"{int(counts.get('unstable', 0))} unstable (PSI &gt; 0.25), "
            f"{int(counts.get('watch', 0))} to watch (&gt; 0.1), "
            f"{int(counts.get('stable', 0))} stable; bins from the reference date.</p>"
        )
        parts.append(_stability_chart(stab))
        if detail:
            parts.append(_distribution_charts(detail))
        parts.append(
            _table(
                ["feature", "PSI", "flag", "missing before", "missing after"],
                [
                    [
                        r.feature,
                        f"{r.psi:.4f}",
                        r.flag,
                        f"{r.missing_ref:.1%}",
                        f"{r.missing_cur:.1%}",
                    ]
                    for r in stab.itertuples()
                ],
                numeric={1, 3, 4},
            )
        )
    parts.append("<h2>Catalog</h2>")
    parts.append(
        _table(
            ["feature", "family", "type", "windows", "meaning"],
            [[r.name, r.family, r.dtype, r.windows, r.description] for r in catalog.itertuples()],
        )
    )
    return _page("Customer features", "".join(parts), plotly=True)


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
    return _figure(fig, top=80)


def _p_value(p: float) -> str:
    """p-values below double precision print as a bound, not as a misleading 0."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


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


def segments_page(data: dict[str, Any]) -> str:
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
    parts.append("<h2>Sizes</h2>" + _figure(sizes))
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
        parts.append("<h2>Profiles</h2>" + _figure(fig, height=max(360, 40 * len(names) + 120)))
    snake = s.get("snake")
    if snake:
        fig = go.Figure()
        for name, means in snake["means"].items():
            fig.add_scatter(x=snake["features"], y=means, mode="lines+markers", name=name)
        fig.update_layout(
            title="Snake plot: standardised feature means per clustered segment",
            yaxis_title="standard deviations from the base",
        )
        parts.append(_figure(fig))
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
        _table(
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
        parts.append("<h2>Projection</h2>" + _figure(fig, height=480))
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
            _table(
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
            _table(
                ["feature", "ANOVA F", "eta squared", "Kruskal-Wallis H", "epsilon squared", "p"],
                [
                    [
                        d["feature"],
                        f"{d['anova_f']:,.0f}",
                        f"{d['eta_squared']:.3f}",
                        f"{d['kruskal_h']:,.0f}",
                        f"{d['epsilon_squared']:.3f}",
                        _p_value(max(d["anova_p"], d["kruskal_p"])),
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
        parts.append("<h2>Migration</h2>" + _figure(fig, height=max(420, 45 * len(grid) + 140)))
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
            _table(
                ["merged segment", "into", "customers", "why"],
                [
                    [m["segment"], m["into"], m["customers"], m["reason"]]
                    for m in s.get("merges", [])
                ],
                numeric={2},
            )
        )
        parts.append(
            _table(
                ["segment", "automatic name", "name from the configuration"],
                [[o["segment_id"], o["automatic"], o["name"]] for o in s.get("overrides", [])],
            )
        )
    versions = data["versions"]
    parts.append("<h2>Model versions</h2>")
    parts.append(
        _table(
            ["version", "method", "as of", "created", "aliases", "metrics"],
            [
                [
                    int(r.version),
                    r.algorithm,
                    ", ".join(json.loads(r.snapshots)),
                    str(r.created_at)[:19],
                    r.aliases,
                    _metrics_text(json.loads(r.metrics)),
                ]
                for r in versions.itertuples()
            ],
            numeric={0},
        )
    )
    return _page("Customer segments", "".join(parts), plotly=True)


def _model_section(item: dict[str, Any]) -> str:
    """One propensity model: candidates, curves, gains, calibration, importance, what-if."""
    from plotly.subplots import make_subplots

    entry, s, th = item["entry"], item["summary"], item["threshold"]
    split = s.get("split", {})
    champion = "champion" in str(
        item["versions"].set_index("version").aliases.get(entry.version, "")
    )
    parts = [
        f"<h2>{html.escape(entry.name)} v{entry.version}"
        + (" (champion)" if champion else " (latest; no champion yet)")
        + "</h2>",
        f"<p>{html.escape(s.get('algorithm', ''))}: {html.escape(s.get('chosen_because', ''))}. "
        f"Trained on {html.escape(', '.join(split.get('train', [])))}, calibrated "
        f"({html.escape(s.get('calibration', ''))}) on half of {html.escape(split.get('validation', ''))}, "
        f"tested out of time on {html.escape(split.get('test', ''))} "
        f"({s.get('rows', {}).get('test', 0):,} customers).</p>",
    ]
    parts.append(
        _table(
            list(CANDIDATE_COLUMNS),
            [
                candidate_cells(name, c, s.get("algorithm", ""))
                for name, c in s.get("candidates", {}).items()
            ],
            numeric={1, 2, 3, 4, 5, 6, 7},
        )
    )
    cv = s.get("curves")
    if cv:
        fig = make_subplots(rows=1, cols=2, subplot_titles=["ROC", "Precision-recall"])
        fig.add_scatter(x=cv["fpr"], y=cv["tpr"], mode="lines", name="ROC", row=1, col=1)
        fig.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", showlegend=False, row=1, col=1
        )
        fig.add_scatter(x=cv["recall"], y=cv["precision"], mode="lines", name="PR", row=1, col=2)
        fig.update_xaxes(title_text="false positive rate", row=1, col=1)
        fig.update_yaxes(title_text="true positive rate", row=1, col=1)
        fig.update_xaxes(title_text="recall", row=1, col=2)
        fig.update_yaxes(title_text="precision", row=1, col=2)
        fig.update_layout(title=f"Out-of-time test, AUC {s['test']['auc']:.3f}", showlegend=False)
        parts.append(_figure(fig, height=380, top=70))
    g = s.get("gains")
    if g:
        fig = make_subplots(rows=1, cols=2, subplot_titles=["Lift by decile", "Cumulative gains"])
        fig.add_bar(
            x=[r["decile"] for r in g],
            y=[r["lift"] for r in g],
            row=1,
            col=1,
            marker_color="#134074",
        )
        fig.add_scatter(
            x=[0] + [r["decile"] * 10 for r in g],
            y=[0] + [100 * r["cum_gains"] for r in g],
            mode="lines+markers",
            row=1,
            col=2,
        )
        fig.add_scatter(x=[0, 100], y=[0, 100], mode="lines", line_dash="dot", row=1, col=2)
        fig.update_xaxes(title_text="decile (1 = highest scores)", row=1, col=1)
        fig.update_xaxes(title_text="% of customers contacted", row=1, col=2)
        fig.update_yaxes(title_text="% of positives reached", row=1, col=2)
        fig.update_layout(showlegend=False, title="Targeting by score")
        parts.append(_figure(fig, height=380, top=70))
        parts.append(
            _table(
                [
                    "decile",
                    "customers",
                    "positives",
                    "rate",
                    "lift",
                    "cumulative gains",
                    "cumulative lift",
                ],
                [
                    [
                        r["decile"],
                        f"{r['customers']:,}",
                        f"{r['positives']:,}",
                        f"{r['rate']:.1%}",
                        f"{r['lift']:.2f}",
                        f"{r['cum_gains']:.1%}",
                        f"{r['cum_lift']:.2f}",
                    ]
                    for r in g
                ],
                numeric={0, 1, 2, 3, 4, 5, 6},
            )
        )
    rel = s.get("reliability")
    if rel:
        fig = go.Figure()
        fig.add_scatter(
            x=[r["predicted"] for r in rel],
            y=[r["observed"] for r in rel],
            mode="lines+markers",
            text=[f"{r['customers']:,} customers" for r in rel],
            name="model",
        )
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", name="perfect")
        fig.update_layout(
            title=f"Reliability (ECE {s['test']['ece']:.3f}, Brier {s['test']['brier']:.3f})",
            xaxis_title="predicted probability",
            yaxis_title="observed rate",
        )
        parts.append(_figure(fig))
    imp = s.get("importance")
    if imp:
        top = imp[:20]
        fig = go.Figure(
            go.Bar(
                x=[r["mean_abs_shap"] for r in top], y=[r["feature"] for r in top], orientation="h"
            )
        )
        fig.update_layout(
            title="Global importance: mean |SHAP| (log-odds) on the test snapshot",
            yaxis={"autorange": "reversed"},
        )
        parts.append(_figure(fig, height=max(360, 22 * len(top) + 80)))
    tuning = s.get("tuning")
    if tuning and tuning.get("trials"):
        trials = tuning["trials"]
        done = [t for t in trials if t["state"] == "complete"]
        pruned = [t for t in trials if t["state"] == "pruned" and t["auc"] is not None]
        best, running = [], float("-inf")
        for t in done:
            running = max(running, t["auc"])
            best.append(running)
        fig = go.Figure()
        fig.add_scatter(
            x=[t["trial"] for t in done],
            y=[t["auc"] for t in done],
            mode="markers",
            name="complete trial",
        )
        fig.add_scatter(
            x=[t["trial"] for t in pruned],
            y=[t["auc"] for t in pruned],
            mode="markers",
            marker_symbol="x",
            name="pruned (AUC when stopped)",
        )
        fig.add_scatter(x=[t["trial"] for t in done], y=best, mode="lines", name="best so far")
        fig.update_layout(
            title=f"Tuning: {len(trials)} Optuna trials "
            f"({sum(t['state'] == 'pruned' for t in trials)} pruned) in "
            f"{tuning['seconds']} s, stopped by the {tuning['stopped_by']} budget",
            xaxis_title="trial",
            yaxis_title="AUC on the early-stopping rows",
        )
        parts.append(_figure(fig, height=340))
        parts.append(
            _table(
                ["setting", "chosen"],
                [
                    [k, f"{v:.4g}" if isinstance(v, float) else str(v)]
                    for k, v in sorted(tuning["best_params"].items())
                ],
            )
        )
    if s.get("imbalance"):
        parts.append(
            "<h3>Class imbalance</h3><p>LightGBM refitted with each strategy, calibrated on "
            "the same rows and tested out of time; <code>models.imbalance</code> is the one "
            "kept (none is chosen on the test).</p>"
        )
        parts.append(
            _table(
                list(IMBALANCE_COLUMNS),
                [imbalance_cells(r) for r in s["imbalance"]],
                numeric={1, 2, 3, 4, 5, 6},
            )
        )
    onnx = s.get("onnx") or {}
    serving = (
        f"ONNX graph <code>model.onnx</code>: largest difference from the native model "
        f"{onnx['max_abs_difference']:.1e} on {onnx['parity_rows']:,} test customers."
        if onnx.get("available")
        else f"No ONNX graph: {html.escape(str(onnx.get('reason', 'trained before export')))}."
    )
    card = item.get("card")
    if card:
        serving += f' <a href="{html.escape(card)}">Model card</a>.'
    parts.append(f"<p>{serving}</p>")
    parts.append(
        f"<h3>What if: contacting the top share by score</h3><p>Cost "
        f"{th['cost_per_contact']:g} per contact, value {th['value_per_success']:g} per "
        f"success (<code>models.cost_per_contact</code>, <code>models.value_per_success</code>; "
        f"<code>custintel model threshold {html.escape(entry.name)} --cost C --value V</code> "
        f"for others), on {th['customers']:,} test customers.</p>"
    )
    parts.append(
        _table(
            list(THRESHOLD_COLUMNS),
            [threshold_cells(r) for r in th["rows"]],
            numeric={0, 1, 2, 3, 4, 5, 6, 7},
        )
    )
    if s.get("notes"):
        parts.append("<p class=muted>" + html.escape("; ".join(s["notes"])) + "</p>")
    parts.append(
        _table(
            ["version", "algorithm", "snapshots", "created", "aliases", "test AUC"],
            [
                [
                    int(r.version),
                    r.algorithm,
                    ", ".join(json.loads(r.snapshots)),
                    str(r.created_at)[:19],
                    r.aliases,
                    f"{json.loads(r.metrics).get('auc', float('nan')):.4f}",
                ]
                for r in item["versions"].itertuples()
            ],
            numeric={0, 5},
        )
    )
    return "".join(parts)


def models_page(items: list[dict[str, Any]]) -> str:
    """Every propensity model: out-of-time evaluation of its champion (or latest)."""
    intro = (
        "<p>Each model is trained on earlier snapshots, calibrated on the next and tested "
        "out of time on the latest (docs/models.md). Figures below are from that test.</p>"
    )
    return _page(
        "Propensity models", intro + "".join(_model_section(i) for i in items), plotly=True
    )


def write_reports(project: Any, out: Path | None = None) -> Path:
    """Write every stage's page and the index (into ``out``, default the project's
    reports folder); returns the index path."""
    out = Path(out) if out is not None else project.reports_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".custintel-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StageError(
            f"report: cannot write into {out} ({exc.strerror}); give another folder with --out"
        ) from None
    js = out / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    pages: list[tuple[str, str, str]] = []  # (file, title, one-line summary)
    quality = project.quality()
    (out / "quality.html").write_text(quality_page(quality), encoding="utf-8")
    t = quality["totals"]
    pages.append(
        (
            "quality.html",
            "Data quality",
            f"{t['rows_in']:,} rows read, {t['rows_quarantined']:,} quarantined, "
            f"{t['rows_duplicate']:,} duplicates",
        )
    )
    identity = project.identity_summary()
    if identity is not None:
        (out / "identity.html").write_text(identity_page(identity), encoding="utf-8")
        pages.append(
            (
                "identity.html",
                "Identity resolution",
                f"{identity['records']:,} profiles -> {identity['customers']:,} customers",
            )
        )
    features = project.features_summary()
    if features is not None:
        detail = None
        stab = features["stability"]
        if stab is not None and len(stab):
            detail = [
                {
                    "feature": r.feature,
                    "psi": float(r.psi),
                    "flag": r.flag,
                    "bins": json.loads(r.bins),
                    "ref_shares": json.loads(r.ref_shares),
                    "cur_shares": json.loads(r.cur_shares),
                }
                for r in stab.head(6).itertuples()
            ]
        (out / "features.html").write_text(features_page(features, detail), encoding="utf-8")
        last = features["builds"].iloc[-1]
        pages.append(
            (
                "features.html",
                "Customer features",
                f"{int(last.customers):,} customers as of {str(last.as_of)[:10]}, "
                f"{len(features['catalog'])} features",
            )
        )
    segments = project.segments_summary()
    if segments is not None:
        (out / "segments.html").write_text(segments_page(segments), encoding="utf-8")
        s = segments["summary"]
        pages.append(
            (
                "segments.html",
                "Customer segments",
                f"v{segments['entry'].version} {segments['entry'].algorithm}: "
                + ", ".join(p["segment_name"] for p in s.get("profiles", [])),
            )
        )
    models = project.models_summary()
    for m in models:
        card = m["entry"].folder(project.artifacts_dir) / "card.html"
        if card.exists():
            m["card"] = Path(os.path.relpath(card, out)).as_posix()
    if models:
        (out / "models.html").write_text(models_page(models), encoding="utf-8")
        pages.append(
            (
                "models.html",
                "Propensity models",
                ", ".join(
                    f"{m['entry'].name} v{m['entry'].version} AUC "
                    f"{m['summary'].get('test', {}).get('auc', float('nan')):.3f}"
                    for m in models
                ),
            )
        )
    clv = project.clv_report()
    if clv:
        from custintel.pipeline.report_clv import clv_page

        (out / "clv.html").write_text(clv_page(clv), encoding="utf-8")
        s = clv["summary"]
        pages.append(
            (
                "clv.html",
                "Customer lifetime value",
                f"v{clv['entry'].version} {s['model']} + Gamma-Gamma on {s['customers']:,} customers",
            )
        )
    status = project.status()
    run = project.last_run()
    run_line = (
        f"Last pipeline run {html.escape(run['run_id'])}: "
        + ", ".join(f"{html.escape(s['stage'])} {html.escape(s['status'])}" for s in run["stages"])
        if run
        else "No pipeline run yet."
    )
    items = "".join(
        f"<li><a href='{f}'>{html.escape(title)}</a> <span class=muted>{html.escape(summary)}</span></li>"
        for f, title, summary in pages
    )
    body = (
        f"<p>Project <code>{html.escape(project.config.name)}</code>, warehouse "
        f"<code>{html.escape(status['warehouse'])}</code>. {run_line}</p><h2>Stages</h2><ol>{items}</ol>"
        "<h2>Tables</h2>"
        + _table(
            ["table", "rows"], [[x["table"], x["rows"]] for x in status["tables"]], numeric={1}
        )
    )
    index = out / "index.html"
    index.write_text(_page("custintel report", body), encoding="utf-8")
    return index


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
