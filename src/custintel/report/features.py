"""The features page: builds, the catalog, training tables and stability."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, table


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
    return figure(fig, height=max(360, 22 * len(top)))


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
        out.append(figure(fig))
    return "".join(out)


def body(summary: dict[str, Any], detail: list[dict[str, Any]] | None = None) -> str:
    """Feature builds, the catalog, training tables and the last stability check."""
    builds = summary["builds"]
    latest = summary["latest"]
    catalog = summary["catalog"]
    parts = [
        "<p>Features are computed per customer as of a date from events strictly before it "
        "(docs/features.md). Builds stored in <code>features.customer</code>:</p>",
        table(
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
            table(
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
                parts.append(figure(fig))
    if summary["training"]:
        parts.append("<h2>Training tables</h2>")
        rows = []
        for t in summary["training"]:
            for r in t["snapshots"].itertuples():
                rows.append([t["table"], str(r.as_of)[:10], f"{r.rows:,}", f"{r.label_mean:.4f}"])
        parts.append(table(["table", "as of", "rows", "label mean"], rows, numeric={2, 3}))
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
            table(
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
        table(
            ["feature", "family", "type", "windows", "meaning"],
            [[r.name, r.family, r.dtype, r.windows, r.description] for r in catalog.itertuples()],
        )
    )
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    features = project.features_summary()
    if features is None:
        return None
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
    last = features["builds"].iloc[-1]
    return Section(
        "features.html",
        "Customer features",
        f"{int(last.customers):,} customers as of {str(last.as_of)[:10]}, "
        f"{len(features['catalog'])} features",
        body(features, detail),
    )
