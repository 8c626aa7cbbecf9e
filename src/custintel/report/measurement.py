"""The report's measurement page: per campaign a one-page summary (lift with interval
bars, cumulative conversion of both groups, ROI, a sentence in plain words), then the
checks that decide whether the lift is claimed."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from custintel.report.kit import Section, figure, p_value, table

STATUS = {
    "measured": ("ok", "measured"),
    "unclaimed": ("bad", "not claimed"),
    "pending": ("muted", "window still open"),
    "refused": ("bad", "cannot be measured"),
}


def _lift_chart(lift: pd.DataFrame) -> go.Figure:
    """Relative lift per metric and arm with its interval, raw and with CUPED."""
    fig = go.Figure()
    for cuped, colour in ((False, "#9aa5b1"), (True, "#2f6fdf")):
        part = lift[lift.cuped == cuped]
        label = [
            f"{m} ({a})" if a != "treatment" else m
            for m, a in zip(part.metric, part.arm, strict=True)
        ]
        fig.add_scatter(
            x=100 * part.relative_lift,
            y=label,
            mode="markers",
            name="with CUPED" if cuped else "raw",
            marker={"color": colour, "size": 10},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": 100 * (part.relative_high - part.relative_lift),
                "arrayminus": 100 * (part.relative_lift - part.relative_low),
            },
        )
    fig.add_vline(x=0, line_color="#1d232b", line_width=1)
    fig.update_layout(xaxis_title="lift over control, % (95 % interval)", legend_orientation="h")
    return fig


def _curve_chart(curves: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for arm, part in curves.groupby("arm"):
        fig.add_scatter(
            x=part.day,
            y=100 * part.converted,
            mode="lines",
            name=str(arm),
            line={"dash": "dot"} if arm == "control" else {},
        )
    fig.update_layout(
        xaxis_title="days since the send",
        yaxis_title="converted, % (cumulative)",
        legend_orientation="h",
    )
    return fig


def _of(t: pd.DataFrame, c: Any) -> pd.DataFrame:
    """The rows of one campaign's measurement (its campaign and window)."""
    if t.empty:
        return t
    return t[(t.campaign_id == c.campaign_id) & (t.window_days == c.window_days)]


def _campaign(c: Any, tables: dict[str, pd.DataFrame]) -> str:
    cls, word = STATUS.get(c.status, ("muted", c.status))
    detail = json.loads(c.detail)
    parts = [
        f"<h2>{html.escape(c.campaign_id)} <span class='{cls}'>({word})</span></h2>",
        f"<p><strong>{html.escape(c.sentence)}</strong></p>",
        f"<p class='muted'>Sent {c.send_date}; {c.treated:,} treated, {c.control:,} held out; "
        f"outcomes in the {c.window_days} days after each customer's send.</p>",
    ]
    lift = tables["lift"]
    lift = _of(lift, c)
    if len(lift):
        parts.append(figure(_lift_chart(lift), height=300))
        rows = [
            [
                r.metric,
                r.arm,
                "yes" if r.cuped else "",
                f"{r.mean_treated:,.4f}",
                f"{r.mean_control:,.4f}",
                f"{r.lift:+,.4f}",
                f"{r.low:+,.4f} to {r.high:+,.4f}",
                f"{r.relative_lift:+.1%}" if pd.notna(r.relative_lift) else "",
                p_value(r.p_value),
                p_value(r.p_adjusted),
                f"{r.variance_reduction:.0%}" if pd.notna(r.variance_reduction) else "",
            ]
            for r in lift.itertuples()
        ]
        parts.append(
            table(
                [
                    "metric",
                    "arm",
                    "CUPED",
                    "treated",
                    "control",
                    "lift",
                    "95 % interval",
                    "relative",
                    "p",
                    "p (Holm)",
                    "variance removed",
                ],
                rows,
                {3, 4, 5, 6, 7, 8, 9, 10},
            )
        )
    curves = tables["curves"]
    curves = _of(curves, c)
    if len(curves):
        parts.append(figure(_curve_chart(curves), height=280))
    roi = detail.get("roi") or {}
    if roi:
        r = [
            [
                f"{roi['incremental_revenue']:,.0f}",
                f"{roi['incremental_revenue_low']:,.0f} to {roi['incremental_revenue_high']:,.0f}",
                f"{roi['incremental_margin']:,.0f}",
                f"{roi['cost']:,.0f}",
                f"{roi['net']:,.0f}",
                ""
                if roi["roi"] is None
                else f"{roi['roi']:.2f} ({roi['roi_low']:.2f} to {roi['roi_high']:.2f})",
            ]
        ]
        parts.append("<h3>Return</h3>")
        parts.append(
            table(
                ["incremental revenue", "95 % interval", "margin", "cost", "net", "ROI"],
                r,
                {0, 1, 2, 3, 4, 5},
            )
        )
    b = tables["breakdown"]
    b = _of(b, c)
    if len(b):
        parts.append("<h3>By channel and offer</h3>")
        rows = [
            [
                r.by,
                r.value,
                f"{r.n_treated:,}",
                f"{r.n_control:,}",
                f"{100 * r.conversion_lift:+.2f} ({100 * r.conversion_low:+.2f} to "
                f"{100 * r.conversion_high:+.2f})",
                f"{r.incremental_revenue:,.0f}",
                f"{r.cost:,.0f}",
                "" if pd.isna(r.roi) else f"{r.roi:.2f} ({r.roi_low:.2f} to {r.roi_high:.2f})",
            ]
            for r in b.itertuples()
        ]
        parts.append(
            table(
                [
                    "by",
                    "value",
                    "treated",
                    "control",
                    "conversion lift, points",
                    "incremental revenue",
                    "cost",
                    "ROI",
                ],
                rows,
                {2, 3, 4, 5, 6, 7},
            )
        )
    srm = detail.get("srm") or {}
    checks = []
    if srm:
        checks.append(
            f"sample ratio: designed control share {srm['expected_control_share']:.0%}, "
            f"chi-square p = {p_value(srm['p_value'])}"
            + (" <span class='bad'>mismatch</span>" if srm["mismatch"] else " (fine)")
        )
    bal = tables["balance"]
    bal = _of(bal, c)
    if len(bal):
        worst = bal.loc[bal.smd.abs().idxmax()]
        checks.append(
            f"pre-period balance: largest standardized difference {worst.smd:+.3f} "
            f"({html.escape(str(worst.covariate))}), "
            + ("<span class='bad'>flagged</span>" if bal.flagged.any() else "no arm flagged")
        )
    if detail.get("counts", {}).get("conflicting"):
        checks.append(
            f"{detail['counts']['conflicting']:,} customers were in both groups and are left out"
        )
    if checks:
        parts.append("<p class='muted'>Checks: " + "; ".join(checks) + ".</p>")
    return "\n".join(parts)


def _uplift(wh: Any) -> str:
    """Per uplift model (its latest version): the learners side by side, their Qini
    curves and the chosen one's uplift by decile, all out of fold."""
    if not wh.exists("measure", "uplift_runs"):
        return ""
    runs = wh.table("measure", "uplift_runs").execute()
    runs = runs.sort_values("version").drop_duplicates("model", keep="last")
    tables = {
        n: wh.table("measure", n).execute()
        for n in ("uplift_learners", "uplift_qini", "uplift_deciles")
    }
    parts = [
        "<h2>Uplift models</h2>",
        "<p>Learned from past randomized campaigns (causalml's meta-learners on LightGBM, "
        "the known assignment probability passed) and judged out of fold: each customer "
        "scored by a model that never saw them. Gain is the outcome gained per customer "
        "against treating no one, by inverse propensity weighting on the randomized "
        "groups; the response ranking (each customer's outcome if treated, learned from "
        "the treated alone) is what targeting by propensity does.</p>",
    ]
    for r in runs.itertuples():

        def of(t: pd.DataFrame, r: Any = r) -> pd.DataFrame:
            return t[(t.model == r.model) & (t.version == r.version)]

        learners = of(tables["uplift_learners"])
        parts.append(
            f"<h3>{html.escape(r.model)} v{r.version}: {r.rows:,} customers of "
            f"{len(json.loads(r.campaigns))} campaigns, outcome {html.escape(r.outcome)}, "
            f"chosen: {html.escape(r.chosen)}</h3>"
        )
        parts.append(
            table(
                ["learner", "AUUC", f"gain, top {r.top:.0%}", "gain, everyone", "predicted harmed"],
                [
                    [
                        x.name + (" (chosen)" if x.learner == r.chosen else ""),
                        f"{x.auuc:.4f}",
                        f"{x.policy_value_top:.4f}",
                        f"{x.policy_value_all:.4f}",
                        "" if pd.isna(x.negative_share) else f"{x.negative_share:.1%}",
                    ]
                    for x in learners.itertuples()
                ],
                {1, 2, 3, 4},
            )
        )
        q = of(tables["uplift_qini"])
        fig = go.Figure()
        for name, part in q.groupby("learner", sort=False):
            fig.add_scatter(x=100 * part.share, y=part.incremental, mode="lines", name=str(name))
        first = q[q.learner == r.chosen]
        fig.add_scatter(
            x=100 * first.share,
            y=first.random,
            mode="lines",
            name="random",
            line={"dash": "dot", "color": "#9aa5b1"},
        )
        fig.update_layout(
            xaxis_title="customers treated, % (best first)",
            yaxis_title="incremental outcomes (Qini)",
            legend_orientation="h",
        )
        parts.append(figure(fig, height=320))
        d = of(tables["uplift_deciles"])
        d = d[d.learner == r.chosen]
        bars = go.Figure()
        bars.add_bar(
            x=d.decile, y=d.observed, name="observed (treated - control)", marker_color="#2f6fdf"
        )
        bars.add_scatter(x=d.decile, y=d.predicted, mode="markers+lines", name="predicted")
        bars.update_layout(
            xaxis_title="decile of predicted uplift (1 = most persuadable)",
            yaxis_title="uplift",
            legend_orientation="h",
        )
        parts.append(figure(bars, height=280))
    return "\n".join(parts)


METHOD_LABELS = {
    "first": "first touch",
    "last": "last touch",
    "linear": "linear",
    "position": "position-based",
    "time_decay": "time decay",
    "markov": "Markov removal",
    "shapley": "Shapley (channel sets)",
    "model": "fitted model (Shapley)",
    "calibrated": "calibrated to experiments",
}


def _attribution(wh: Any) -> str:
    """Channel shares by every method side by side, and the calibrated credit with the
    experiments' intervals."""
    if not wh.exists("measure", "attribution"):
        return ""
    a = wh.table("measure", "attribution").execute()
    cal = wh.table("measure", "attribution_calibration").execute().set_index("channel")
    order = cal.sort_values("credit", ascending=False).index.tolist()
    parts = [
        "<h2>Channel attribution</h2>",
        "<p>Credit for the purchases of the web journeys (utm-tagged sessions, cut at each "
        "purchase, a lookback window before it). The rules, Markov and Shapley share out "
        "every purchase, so channels people use on their way to buy anyway (typing the "
        "address, organic search, coupon sites) get credit they did not earn. The "
        "calibrated method credits only what marketing caused: a fitted conversion model's "
        "Shapley values, each channel's total set to its randomized holdout experiment's "
        "lift; base channels get none (docs/measurement.md#attribution).</p>",
    ]
    fig = go.Figure()
    for method, part in a.groupby("method", sort=False):
        part = part.set_index("channel").reindex(order)
        fig.add_bar(x=order, y=100 * part.share.fillna(0), name=METHOD_LABELS.get(method, method))
    fig.update_layout(barmode="group", yaxis_title="share of credit, %", legend_orientation="h")
    parts.append(figure(fig, height=360))
    incremental = float(cal.credit.sum())
    conversions = float(a[a.method == "last"].credit.sum())
    parts.append(
        f"<p>{incremental:,.0f} of {conversions:,.0f} purchases credited as caused by "
        "marketing; the rest would have happened anyway.</p>"
    )
    rows = []
    for ch in order:
        r = cal.loc[ch]
        if bool(r.calibrated):
            how = (
                f"experiment: {100 * r.lift:+.2f} pts "
                f"({100 * r.lift_low:+.2f} to {100 * r.lift_high:+.2f})"
            )
            span = f"{r.credit_low:,.0f} to {r.credit_high:,.0f}"
        elif bool(r.base):
            how, span = "base channel: no credit", ""
        else:
            how, span = "model only (no experiment)", ""
        rows.append(
            [
                ch,
                f"{r.people:,.0f}",
                f"{100 * r.model_lift:+.2f} pts" if pd.notna(r.model_lift) else "",
                how,
                f"{r.credit:,.0f}",
                span,
                f"{100 * r.share:.1f} %",
            ]
        )
    parts.append(
        table(
            ["channel", "people touched", "model's lift", "calibration", "credit", "95 %", "share"],
            rows,
            {1, 2, 4, 5, 6},
        )
    )
    return "\n".join(parts)


def section(project: Any, out: Path) -> Section | None:
    wh = project.warehouse
    c = wh.table("measure", "campaigns").execute() if wh.exists("measure", "campaigns") else None
    uplift = _uplift(wh) + _attribution(wh)
    if (c is None or c.empty) and not uplift:
        return None
    if c is None:
        c = pd.DataFrame(columns=["campaign_id", "measured_at", "send_date", "status"])
    # The latest measurement of each campaign (a re-run with another window replaces it).
    c = c.sort_values("measured_at").drop_duplicates("campaign_id", keep="last")
    c = c.sort_values(["send_date", "campaign_id"], na_position="last")
    tables = {
        name: wh.table("measure", name).execute() if wh.exists("measure", name) else pd.DataFrame()
        for name in ("lift", "curves", "breakdown", "balance")
    }
    measured = int((c.status == "measured").sum())
    line = f"{len(c)} campaigns, {measured} with a claimed lift"
    if wh.exists("measure", "attribution"):
        line += "; channel attribution"
    intro = (
        "<p>Each campaign is measured from its randomized holdout: the treated against the "
        "customers held out, in the days after each customer's send. Intervals are 95 %; "
        "CUPED rows adjust for the same outcome in the pre-period (same estimate, narrower "
        "interval); p (Holm) corrects for several arms against one control. A lift is "
        "claimed only when the window has closed, both groups are large enough, the split "
        "matches its design and the groups looked alike before the send "
        "(docs/measurement.md).</p>"
    )
    body = intro + "\n".join(_campaign(r, tables) for r in c.itertuples()) + uplift
    return Section("measurement.html", "Measurement", line, body)
