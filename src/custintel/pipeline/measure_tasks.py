"""Measurement tasks of a project: every campaign in the contact history, measured from
its randomized holdout.

The contact history is the union of the ingested one (``clean.contacts``, linked to
customer ids through ``identity.customer_map``) and the runs of this project's own
campaigns (``campaign.contacts``; a campaign found in both is read from its runs). The
outcomes come from the resolved events, in the warehouse: orders and revenue (returns
left out) and web sessions, in the window after each customer's send and in the
pre-period before it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import ibis
import numpy as np
import pandas as pd

from custintel.core.errors import ConfigError, StageError
from custintel.core.lineage import new_run_id, now
from custintel.features.build import default_as_of, events_for
from custintel.measure.campaign import CONTROL, Measurement, measure, not_measured, units
from custintel.measure.power import Plan, detectable, sample_size
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult


class MeasureTasks(ProjectParts):
    """Measurement methods of :class:`~custintel.pipeline.project.Project`."""

    def _contact_history(self) -> pd.DataFrame:
        """Every contact row: campaign_id, customer_id, variant, channel, offer, sent_at,
        origin (``run`` or ``history``) and the run that decided it (our runs only)."""
        wh = self.warehouse
        cols = ["campaign_id", "customer_id", "variant", "channel", "offer", "sent_at"]
        parts = []
        ours: set[str] = set()
        if wh.exists("campaign", "contacts"):
            c = wh.table("campaign", "contacts")
            # The latest run of each campaign: earlier runs were what-ifs of the same send.
            last = c.group_by("campaign_id").aggregate(last=c.as_of.max())
            c = c.join(last, [c.campaign_id == last.campaign_id, c.as_of == last["last"]])
            f = c.select(
                "campaign_id",
                "customer_id",
                "variant",
                "channel",
                "offer",
                "run_id",
                sent_at=c.send_at,
                decided=c.as_of,
            ).execute()
            ours = set(f.campaign_id)
            parts.append(f.assign(origin="run"))
        if wh.exists("clean", "contacts") and wh.exists("identity", "customer_map"):
            t = wh.table("clean", "contacts")
            m = wh.table("identity", "customer_map").select("source", "source_id", "customer_id")
            j = t.join(m, [t.source == m.source, t.customer_ref == m.source_id])
            if ours:
                j = j.filter(~j.campaign_id.isin(sorted(ours)))
            f = j.select(
                "campaign_id", "customer_id", "variant", "channel", "offer", "sent_at"
            ).execute()
            parts.append(f.assign(origin="history", run_id=None, decided=None))
        if not parts:
            return pd.DataFrame(columns=[*cols, "origin", "run_id", "decided"])
        out = pd.concat(parts, ignore_index=True)
        out["sent_at"] = pd.to_datetime(out.sent_at, utc=True)
        return out

    def measure_campaigns(self) -> list[str]:
        """The campaigns the contact history knows, oldest send first."""
        h = self._contact_history()
        if h.empty:
            return []
        return list(h.groupby("campaign_id").sent_at.min().sort_values().index)

    def _outcomes(
        self, u: pd.DataFrame, window: int, pre: int
    ) -> tuple[pd.DataFrame, bool, Any, str]:
        """Per customer: orders, revenue, converted and visits in ``[send, send + window)``
        and in ``[send - pre, send)``; whether any web events exist; the data horizon
        (the latest order or visit); the reporting currency."""
        wh = self.warehouse
        events, currency = events_for(wh, self.config)
        keys = ibis.memtable(u[["customer_id", "send_ts"]])
        o = events.orders
        j = o.join(keys, "customer_id")
        end = j.send_ts + ibis.interval(days=window)
        start = j.send_ts - ibis.interval(days=pre)
        buy = ~j.is_return
        in_w = (j.ts >= j.send_ts) & (j.ts < end) & buy
        in_pre = (j.ts >= start) & (j.ts < j.send_ts) & buy
        amount = j.amount.cast("float64")
        agg = (
            j.filter((j.ts >= start) & (j.ts < end))
            .group_by("customer_id")
            .aggregate(
                orders=j.ts.count(where=in_w),
                revenue=amount.sum(where=in_w),
                first_day=((j.ts.epoch_seconds() - j.send_ts.epoch_seconds()) // 86400).min(
                    where=in_w
                ),
                pre_orders=j.ts.count(where=in_pre),
                pre_revenue=amount.sum(where=in_pre),
            )
            .execute()
            .set_index("customer_id")
        )
        w = events.web
        has_web = bool(w.count().execute() > 0)
        visits = pd.DataFrame(columns=["visits", "pre_visits"])
        if has_web:
            jw = w.join(keys, "customer_id")
            endw = jw.send_ts + ibis.interval(days=window)
            startw = jw.send_ts - ibis.interval(days=pre)
            visits = (
                jw.filter((jw.ts >= startw) & (jw.ts < endw))
                .group_by("customer_id")
                .aggregate(
                    visits=jw.session_id.nunique(where=jw.ts >= jw.send_ts),
                    pre_visits=jw.session_id.nunique(where=jw.ts < jw.send_ts),
                )
                .execute()
                .set_index("customer_id")
            )
        horizon = o.ts.max().execute()
        if has_web:
            horizon = max(horizon, w.ts.max().execute())
        out = u.set_index("customer_id")
        for col in ("orders", "revenue", "pre_orders", "pre_revenue", "first_day"):
            out[col] = agg[col].reindex(out.index) if len(agg) else np.nan
        for col in ("visits", "pre_visits"):
            out[col] = visits[col].reindex(out.index) if len(visits) else np.nan
        zero = ["orders", "revenue", "pre_orders", "pre_revenue", "visits", "pre_visits"]
        out[zero] = out[zero].astype("float64").fillna(0.0)
        out["converted"] = (out.orders > 0).astype("float64")
        out["pre_converted"] = (out.pre_orders > 0).astype("float64")
        return out.reset_index(), has_web, horizon, currency or ""

    def measure_campaign(
        self,
        campaign_id: str,
        *,
        window_days: int | None = None,
        write: bool = True,
        run_id: str | None = None,
    ) -> Measurement:
        """Lift, intervals, checks and ROI of one campaign (docs/measurement.md)."""
        mc = self.config.measurement
        window = window_days or mc.window_days
        history = self._contact_history()
        rows = history[history.campaign_id == campaign_id]
        if rows.empty:
            known = ", ".join(sorted(history.campaign_id.unique())) or "none"
            raise StageError(
                f"measure: campaign {campaign_id!r} is not in the contact history "
                f"(campaigns there: {known})"
            )
        u = units(rows)
        decided = pd.to_datetime(rows.decided.dropna())
        if len(decided) and decided.max().date() >= default_as_of(self.warehouse, self.config):
            # Decided as of the date the project's data runs to: whatever the warehouse
            # holds after the send was recorded before the decision, so it cannot be the
            # campaign's outcome.
            frame = u.frame
            result = not_measured(
                campaign_id,
                "pending",
                f"decided as of {decided.max().date()}, the date the project's data runs to "
                f"(features.as_of, else the day after the last order); measure it once "
                f"later data is loaded and its {window}-day window has passed",
                frame,
            )
        else:
            frame, has_web, horizon, currency = self._outcomes(u.frame, window, mc.pre_days)
            closes = frame.send_ts.max() + pd.Timedelta(days=window)
            if not (frame.arm == CONTROL).any():
                result = not_measured(
                    campaign_id, "refused", "no control group: nobody was held out", frame
                )
            elif horizon is None or pd.isna(horizon) or pd.Timestamp(horizon) < closes:
                seen = (
                    "no outcomes at all"
                    if horizon is None or pd.isna(horizon)
                    else f"data runs to {pd.Timestamp(horizon).date()}"
                )
                result = not_measured(
                    campaign_id,
                    "pending",
                    f"the {window}-day outcome window closes on {closes.date()}; {seen}",
                    frame,
                )
            else:
                configured = self.config.campaigns.get(campaign_id)
                result = measure(
                    campaign_id,
                    frame,
                    level=mc.level,
                    bootstrap_rounds=mc.bootstrap_rounds,
                    min_per_arm=mc.min_per_arm,
                    control_share=configured.holdout
                    if configured
                    else mc.control_shares.get(campaign_id),
                    margin=mc.margin if mc.margin is not None else self.config.clv.margin,
                    contact_costs={k: c.cost for k, c in self.config.channels.items()},
                    offer_costs={k: o.cost_per_response for k, o in self.config.offers.items()},
                    with_visits=has_web,
                    by=("channel", "offer"),
                    currency=currency,
                )
        result.counts["conflicting"] = u.conflicting
        if write:
            self._write_measurement(result, frame, window, run_id or new_run_id())
        return result

    def _write_measurement(
        self, m: Measurement, frame: pd.DataFrame, window: int, run_id: str
    ) -> None:
        wh = self.warehouse
        wh.ensure_schema("measure")
        stamp = {"campaign_id": m.campaign_id, "run_id": run_id, "window_days": window}
        summary = pd.DataFrame(
            [
                {
                    **stamp,
                    "measured_at": now(),
                    "status": m.status,
                    "reason": m.reason,
                    "sentence": m.sentence,
                    "send_date": frame.send_ts.min().date() if len(frame) else None,
                    "treated": sum(
                        n for a, n in m.counts.items() if a not in (CONTROL, "conflicting")
                    ),
                    "control": m.counts.get(CONTROL, 0),
                    "detail": json.dumps(
                        {"counts": m.counts, "srm": m.srm, "roi": m.roi}, default=_plain
                    ),
                }
            ]
        )
        tables: list[tuple[str, pd.DataFrame]] = [("campaigns", summary)]
        if len(m.lift):
            tables.append(("lift", m.lift.assign(**stamp)))
        if len(m.balance):
            tables.append(("balance", m.balance.assign(**stamp)))
        if len(m.breakdown):
            tables.append(("breakdown", m.breakdown.assign(**stamp)))
        if m.status in ("measured", "unclaimed"):
            tables.append(("curves", _curves(frame, window).assign(**stamp)))
        where = f"campaign_id = '{m.campaign_id}' AND window_days = {int(window)}"
        for table, f in tables:
            wh.add_columns("measure", table, f)
        with wh.transaction():
            for table in ("campaigns", "lift", "balance", "breakdown", "curves"):
                if wh.exists("measure", table):
                    wh.delete_where("measure", table, where)
            for table, f in tables:
                wh.put("measure", table, f, append=True)

    def measure_power(self, campaign_id: str) -> dict[str, Any] | None:
        """Whether a configured campaign's holdout can detect the lift it hopes for
        (``measurement.expected_lifts``), from its last run's group sizes and the
        audience's conversion rate in the pre-period."""
        hoped = self.config.measurement.expected_lifts.get(campaign_id)
        if hoped is None:
            return None
        history = self._contact_history()
        rows = history[history.campaign_id == campaign_id]
        if rows.empty:
            return None
        u = units(rows)
        frame, _, _, _ = self._outcomes(
            u.frame, self.config.measurement.window_days, self.config.measurement.window_days
        )
        n_t = int((frame.arm != CONTROL).sum())
        n_c = int((frame.arm == CONTROL).sum())
        if min(n_t, n_c) < 2:
            return {"campaign_id": campaign_id, "warning": "no holdout to test with"}
        base = float(frame.pre_converted.mean())
        base = min(max(base, 1e-4), 1 - 1e-4)
        plan = detectable(base, n_t, n_c, power=self.config.measurement.power)
        out = {"campaign_id": campaign_id, "expected_lift": hoped, **plan.as_dict()}
        if plan.mde > hoped:
            out["warning"] = (
                f"the holdout of {n_c:,} can detect a conversion lift of "
                f"{100 * plan.mde:.2f} points at {plan.power:.0%} power; the campaign hopes "
                f"for {100 * hoped:.2f}: hold out more, or expect an inconclusive result"
            )
        return out


def plan_test(
    baseline: float,
    *,
    mde: float | None = None,
    n: int | None = None,
    sd: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
    control_share: float = 0.5,
) -> Plan:
    """``custintel measure plan``: the sample size for a lift (``mde``), or the lift a
    test of ``n`` customers detects; a mean when ``sd`` is given, else a rate."""
    kind = "mean" if sd is not None else "proportion"
    if (mde is None) == (n is None):
        raise ConfigError("give exactly one of --mde (for a sample size) or --n (for an MDE)")
    try:
        if mde is not None:
            return sample_size(
                baseline,
                mde,
                kind=kind,
                sd=sd,
                power=power,
                alpha=alpha,
                control_share=control_share,
            )
        n_c = max(2, round(n * control_share))  # type: ignore[operator]
        return detectable(baseline, n - n_c, n_c, kind=kind, sd=sd, power=power, alpha=alpha)  # type: ignore[operator]
    except ValueError as exc:
        raise ConfigError(f"measure plan: {exc}") from exc


def _curves(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Cumulative share converted by day since the send, per arm."""
    rows = []
    for arm, part in frame.groupby("arm"):
        n = len(part)
        days = part.first_day.dropna().astype(int)
        counts = np.bincount(days.clip(0, window - 1), minlength=window)
        rows.append(
            pd.DataFrame(
                {"arm": str(arm), "day": np.arange(window), "converted": np.cumsum(counts) / n}
            )
        )
    return pd.concat(rows, ignore_index=True)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dt.date, pd.Timestamp)):
        return str(value)
    return str(value)


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``measurement`` stage of ``custintel run``: every campaign in the contact
    history measured, and each configured campaign's holdout checked for power."""
    names = project.measure_campaigns()
    parts: list[str] = []
    detail: dict[str, Any] = {}
    attribution = _attribution(project, run_id)
    if attribution:
        parts.append(attribution[0])
        detail["attribution"] = attribution[1]
    if not names:
        if attribution:
            return StageResult("measurement", "ok", "; ".join(parts), detail)
        return StageResult("measurement", "skipped", "no campaigns in the contact history")
    for i, name in enumerate(names):
        if progress:
            progress("measurement", i, len(names))
        try:
            m = project.measure_campaign(name, run_id=run_id)
        except StageError as exc:  # one campaign that cannot be read stops no other
            detail[name] = {"status": "refused", "reason": str(exc), "sentence": str(exc)}
            parts.append(f"{name}: refused: {exc}")
            continue
        detail[name] = {"status": m.status, "reason": m.reason, "sentence": m.sentence}
        parts.append(f"{name}: {m.status}")
    measured = [n for n, d in detail.items() if d["status"] == "measured"]
    if project.config.measurement.uplift and measured:
        as_of = default_as_of(project.warehouse, project.config)
        for name in project.config.campaigns:
            try:
                t = project.uplift_train(name, campaigns=measured)
                s = project.uplift_score(name, as_of)
            except StageError as exc:
                parts.append(f"uplift {name}: skipped: {exc}")
                continue
            detail[f"uplift_{name}"] = {"train": t, "score": s}
            parts.append(
                f"uplift_{name} v{t['version']}: {t['chosen_name']} from "
                f"{len(t['campaigns'])} campaigns, {s['sleeping_dogs']:,} sleeping dogs"
            )
    for name in project.config.campaigns:
        p = project.measure_power(name)
        if p and "warning" in p:
            detail.setdefault(name, {})["power"] = p
            parts.append(f"{name}: {p['warning']}")
    if progress:
        progress("measurement", len(names), len(names))
    return StageResult("measurement", "ok", "; ".join(parts), detail)


def _attribution(project: Any, run_id: str) -> tuple[str, dict[str, Any]] | None:
    """Channel credit when the web events carry utm tags (None when they do not)."""
    if not project.config.measurement.attribution.enabled or project.attribution_ready():
        return None
    try:
        a = project.attribute(run_id=run_id)
    except StageError as exc:
        return f"attribution skipped: {exc}", {"status": "skipped", "reason": str(exc)}
    calibrated = ", ".join(a["calibrated"]) or "none"
    line = (
        f"attribution: {a['journeys']:,} journeys, {a['conversions']:,} conversions over "
        f"{a['paths']:,} paths; {a['incremental']:,.0f} incremental (calibrated: {calibrated})"
    )
    keep = {k: v for k, v in a.items() if k not in ("credit", "calibration")}
    return line, {"status": "ok", **keep}
