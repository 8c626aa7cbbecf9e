"""The propensity-models page: out-of-time evaluation of each champion."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from custintel.report.kit import Section, figure, table, versions_table
from custintel.report.wording import (
    CANDIDATE_COLUMNS,
    IMBALANCE_COLUMNS,
    THRESHOLD_COLUMNS,
    candidate_cells,
    imbalance_cells,
    threshold_cells,
)


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
        table(
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
        parts.append(figure(fig, height=380, top=70))
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
        parts.append(figure(fig, height=380, top=70))
        parts.append(
            table(
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
        parts.append(figure(fig))
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
        parts.append(figure(fig, height=max(360, 22 * len(top) + 80)))
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
        parts.append(figure(fig, height=340))
        parts.append(
            table(
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
            table(
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
        table(
            list(THRESHOLD_COLUMNS),
            [threshold_cells(r) for r in th["rows"]],
            numeric={0, 1, 2, 3, 4, 5, 6, 7},
        )
    )
    if s.get("notes"):
        parts.append("<p class=muted>" + html.escape("; ".join(s["notes"])) + "</p>")
    parts.append(
        versions_table(
            item["versions"],
            ("algorithm", "snapshots", "test AUC"),
            lambda m: f"{m.get('auc', float('nan')):.4f}",
        )
    )
    return "".join(parts)


def body(items: list[dict[str, Any]]) -> str:
    """Every propensity model: out-of-time evaluation of its champion (or latest)."""
    intro = (
        "<p>Each model is trained on earlier snapshots, calibrated on the next and tested "
        "out of time on the latest (docs/models.md). Figures below are from that test.</p>"
    )
    return intro + "".join(_model_section(i) for i in items)


def section(project: Any, out: Path) -> Section | None:
    models = project.models_summary()
    if not models:
        return None
    for m in models:
        card = m["entry"].folder(project.artifacts_dir) / "card.html"
        if card.exists():
            m["card"] = Path(os.path.relpath(card, out)).as_posix()
    return Section(
        "models.html",
        "Propensity models",
        ", ".join(
            f"{m['entry'].name} v{m['entry'].version} AUC "
            f"{m['summary'].get('test', {}).get('auc', float('nan')):.3f}"
            for m in models
        ),
        body(models),
    )
