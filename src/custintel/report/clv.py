"""The report's CLV page: the fitted models, the holdout check and the values."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from custintel.clv.value import MODEL_NAMES
from custintel.report.kit import Section, figure, table
from custintel.report.wording import (
    HOLDOUT_COLUMNS,
    SPEND_COLUMNS,
    holdout_cells,
    spend_cells,
)


def body(item: dict[str, Any]) -> str:
    entry, s = item["entry"], item["summary"]
    parts = [
        f"<h2>clv v{entry.version}: {html.escape(MODEL_NAMES.get(s['model'], s['model']))} and "
        f"Gamma-Gamma as of {html.escape(s['as_of'])}</h2>",
        f"<p>{s['customers']:,} customers, {s['repeat_buyers']:,} of them repeat buyers; "
        f"{s['left_out_no_history']:,} first bought on the last day and are left out. "
        f"Time in units of {s['unit_days']:g} days. Correlation of frequency and mean spend "
        f"{s['spend']['frequency_spend_correlation']:.2f} (Gamma-Gamma assumes about 0).</p>",
    ]
    rows = [
        [part, k, f"{v:.4f}", f"{s[part]['standard_errors'][k]:.4f}"]
        for part in ("purchases", "spend")
        for k, v in s[part]["params"].items()
    ]
    parts.append(table(["part", "parameter", "estimate", "standard error"], rows, {2, 3}))
    check = item.get("validation")
    if check:
        parts.append(
            f"<h3>Holdout check: fitted to {html.escape(check['calibration_end'])}, "
            f"judged to {html.escape(check['holdout_end'])}</h3>"
        )
        rows = []
        fig = go.Figure()
        first = next(iter(check["models"].values()))
        by = first["by_frequency"]
        fig.add_bar(
            x=[str(r["frequency"]) + ("+" if r["frequency"] == 7 else "") for r in by],
            y=[r["actual"] for r in by],
            name="actual",
            marker_color="#9aa5b1",
        )
        for name, m in check["models"].items():
            rows.append(holdout_cells(name, m))
            fig.add_scatter(
                x=[
                    str(r["frequency"]) + ("+" if r["frequency"] == 7 else "")
                    for r in m["by_frequency"]
                ],
                y=[r["predicted"] for r in m["by_frequency"]],
                mode="lines+markers",
                name=MODEL_NAMES.get(name, name),
            )
        fig.update_layout(
            title="Mean repeat purchases in the holdout by purchases in calibration",
            xaxis_title="repeat purchases in the calibration period",
            yaxis_title="purchases in the holdout",
        )
        parts.append(figure(fig, height=380, top=60))
        parts.append(table(list(HOLDOUT_COLUMNS), rows, {1, 2, 3, 4, 5, 6, 7}))
    spend = (check or {}).get("spend") or {}
    if "btyd" in spend:
        parts.append(
            f"<h3>Holdout spend of the same {spend['customers']:,} customers: "
            f"{spend['actual_total']:,.0f} in all</h3><p>The purchase model times Gamma-Gamma "
            "against LightGBM regression on the feature set, trained one holdout length "
            "earlier (it never sees the holdout).</p>"
        )
        parts.append(
            table(
                list(SPEND_COLUMNS),
                [spend_cells(spend[w]) for w in ("btyd", "lightgbm")],
                {1, 2, 3, 4},
            )
        )
    elif spend.get("skipped"):
        parts.append(f"<p class=muted>{html.escape(spend['skipped'])}</p>")
    scores = item.get("scores")
    if scores is not None and len(scores):
        fig = go.Figure(go.Histogram(x=scores.p_alive, nbinsx=40))
        fig.update_layout(
            title=f"P(alive) as of {scores.as_of.iloc[0]!s:.10}",
            xaxis_title="P(alive)",
            yaxis_title="customers",
        )
        parts.append(figure(fig, height=320))
        values = np.sort(scores.clv.to_numpy())[::-1]
        deciles = np.array_split(values, 10)
        total = values.sum() or 1.0
        fig = go.Figure(
            go.Bar(x=[str(i + 1) for i in range(10)], y=[100 * d.sum() / total for d in deciles])
        )
        fig.update_layout(
            title=f"Share of the {int(scores.horizon_days.iloc[0])}-day CLV by decile "
            f"(total {total:,.0f})",
            xaxis_title="decile (1 = most valuable)",
            yaxis_title="% of the total",
        )
        parts.append(figure(fig, height=320))
    return "".join(parts)


def section(project: Any, out: Path) -> Section | None:
    clv = project.clv_report()
    if not clv:
        return None
    s = clv["summary"]
    return Section(
        "clv.html",
        "Customer lifetime value",
        f"v{clv['entry'].version} {s['model']} + Gamma-Gamma on {s['customers']:,} customers",
        body(clv),
    )
