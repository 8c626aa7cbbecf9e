"""What a campaign knows of each customer on its decision date, read from the warehouse:
addresses, consent, contact history, suppressions, scores, CLV, segment, send time.

One row per customer known before the date (``customer.profile``), in the shape
:mod:`custintel.campaigns.decide` documents. Everything is cut at midnight UTC starting
the decision date, so a decision never reads the future.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from custintel.campaigns.conditions import columns_of
from custintel.campaigns.decide import Plan
from custintel.core import consent
from custintel.core.config import ProjectConfig
from custintel.core.errors import ConfigError, SourceError, StageError
from custintel.core.warehouse import Warehouse
from custintel.features.build import events_for

WINDOW_DAYS = {"day": 1, "week": 7, "month": 30}
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DEFAULT_SEND_HOUR = 10


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _before(t: ir.Table, column: str, moment: dt.datetime) -> ir.Table:
    return t.filter(t[column].epoch_seconds() < int(moment.timestamp()))


def _between(t: ir.Table, column: str, start: dt.datetime, stop: dt.datetime) -> ir.Table:
    s = t[column].epoch_seconds()
    return t.filter((s >= int(start.timestamp())) & (s < int(stop.timestamp())))


def latest_scores(wh: Warehouse, name: str, as_of: dt.date) -> tuple[pd.DataFrame, Any]:
    """A scores table's rows at its latest date on or before ``as_of`` (the highest model
    version there), and that version."""
    if not wh.exists("scores", name):
        return pd.DataFrame(columns=["customer_id"]), None
    t = wh.table("scores", name)
    t = t.filter(t.as_of <= as_of)
    last = t.aggregate(d=t.as_of.max()).execute().d.iloc[0]
    if last is None or pd.isna(last):
        return pd.DataFrame(columns=["customer_id"]), None
    t = t.filter(t.as_of == last)
    version = int(t.aggregate(v=t.model_version.max()).execute().v.iloc[0])
    return t.filter(t.model_version == version).execute(), version


def contact_history(wh: Warehouse, campaign: str, as_of: dt.date, days: int) -> pd.DataFrame:
    """Contacts of the ``days`` before the decision date and those already planned for it,
    from the ingested history and from custintel's own runs (not this campaign's run on
    this date, which a re-run replaces): customer_id, campaign_id, channel, ts, variant."""
    start, stop = (
        _midnight(as_of - dt.timedelta(days=days)),
        _midnight(as_of + dt.timedelta(days=1)),
    )
    parts = []
    if wh.exists("clean", "contacts") and wh.exists("identity", "customer_map"):
        c = wh.table("clean", "contacts")
        m = wh.table("identity", "customer_map")
        j = c.join(m, [c.source == m.source, c.customer_ref == m.source_id])
        j = j.select(
            "customer_id", "campaign_id", channel=j.channel.fill_null("email"), ts=j.sent_at,
            variant=j.variant,
        )  # fmt: skip
        parts.append(_between(j, "ts", start, _midnight(as_of)).execute())
    if wh.exists("campaign", "contacts"):
        c = wh.table("campaign", "contacts")
        c = c.filter(~((c.campaign_id == campaign) & (c.as_of == as_of)))
        c = c.select("customer_id", "campaign_id", "channel", ts=c.send_at, variant=c.variant)
        parts.append(_between(c, "ts", start, stop).execute())
    if wh.exists("serving", "events"):  # contacts the real-time service was told of
        e = wh.table("serving", "events")
        e = e.filter(e.kind == "contact")
        e = e.select(
            "customer_id", "campaign_id", channel=e.channel.fill_null("email"), ts=e.ts,
            variant=ibis.literal("treatment"),
        )  # fmt: skip
        parts.append(_between(e, "ts", start, stop).execute())
    if not parts:
        return pd.DataFrame(columns=["customer_id", "campaign_id", "channel", "ts", "variant"])
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


def _history_columns(history: pd.DataFrame, plan: Plan, as_of: dt.date) -> pd.DataFrame:
    """Sent counts per channel and window, days since the last contact, running controls."""
    now = pd.Timestamp(_midnight(as_of))
    h = history
    sent = h[h.variant == "treatment"]
    out = pd.DataFrame(index=pd.Index(h.customer_id.unique(), name="customer_id"))
    end = now + pd.Timedelta(days=1)
    for window, days in WINDOW_DAYS.items():
        start = end - pd.Timedelta(days=days)
        w = sent[(sent.ts >= start) & (sent.ts < end)]
        out[f"sent__all__{window}"] = w.groupby("customer_id").size()
        for ch in plan.channel_names:
            out[f"sent__{ch}__{window}"] = w[w.channel == ch].groupby("customer_id").size()
    last = sent.groupby("customer_id").ts.max()
    out["days_since_contact"] = ((now - last).dt.total_seconds() / 86400).clip(lower=0)
    control_start = now - pd.Timedelta(days=plan.policy.control_days)
    ctl = h[(h.variant == "control") & (h.ts >= control_start) & (h.campaign_id != plan.name)]
    out["running_control"] = out.index.isin(ctl.customer_id)
    return out.fillna({c: 0 for c in out.columns if c.startswith("sent__")})


def do_not_contact(project_dir: Path, files: list[str], as_of: dt.date) -> pd.DataFrame:
    """The unexpired rows of the do-not-contact files: customer_id, channel."""
    frames = []
    for name in files:
        path = project_dir / name
        if not path.is_file():
            raise SourceError(f"contact_policy.do_not_contact: {path} does not exist")
        f = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"customer_id", "channel"} - set(f.columns)
        if missing:
            raise SourceError(
                f"{path}: missing column(s) {', '.join(sorted(missing))} "
                f"(columns: customer_id, channel, until, reason)"
            )
        until = f["until"] if "until" in f else pd.Series([""] * len(f))
        parsed = pd.to_datetime(until.replace("", None), format="%Y-%m-%d", errors="coerce")
        bad = until.ne("") & parsed.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SourceError(
                f"{path}:{row + 2}: column until: {until.iloc[row]!r} is not a date (YYYY-MM-DD)"
            )
        live = parsed.isna() | (parsed.dt.date >= as_of)
        frames.append(f.loc[live.to_numpy(), ["customer_id", "channel"]])
    if not frames:
        return pd.DataFrame(columns=["customer_id", "channel"])
    return pd.concat(frames, ignore_index=True)


def customer_context(
    wh: Warehouse,
    config: ProjectConfig,
    project_dir: Path,
    plan: Plan,
    as_of: dt.date,
    features: ir.Table | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every customer's row for the campaign's rules, and the model versions read."""
    if not wh.exists("customer", "profile"):
        raise StageError("campaigns: no customers yet; run `custintel identity resolve` first")
    midnight = _midnight(as_of)
    events, _ = events_for(wh, config)
    p = wh.table("customer", "profile")
    p = _before(p, "first_seen", midnight)
    emails = _before(events.emails, "ts", midnight)
    bounce = (
        emails.filter(emails.event_type == "bounce")
        .group_by("customer_id")
        .aggregate(bounced=emails.ts.max())
    )
    alive = emails.filter(emails.event_type.isin(("open", "click"))).group_by("customer_id")
    alive = alive.aggregate(engaged=emails.ts.max())
    base = p.left_join(bounce, "customer_id").left_join(alive, "customer_id")
    email_ok = base.email.notnull() & base.email.re_search(EMAIL_PATTERN)
    email_ok = email_ok & (
        base.bounced.isnull() | (base.engaged.notnull() & (base.engaged > base.bounced))
    )
    base = base.select(
        customer_id=base.customer_id,
        has_email=email_ok.fill_null(False),
        has_phone=base.phone.notnull() & (base.phone.length() > 5),
        has_postal=base.address.notnull() & base.postcode.notnull(),
    )
    ctx = base.execute()

    keyed = ctx.set_index("customer_id")

    # consent to marketing on each channel, now
    regime = config.consent.marketing
    unsub = emails.filter(emails.event_type == "unsubscribe").select("customer_id", "ts")
    for ch in plan.channel_names:
        if ch not in consent.CHANNELS:
            keyed[f"consent__{ch}"] = regime == "opt_out"
            continue
        status = consent.latest_status(
            events.consents, as_of, "marketing", ch, unsubscribes=unsub if ch == "email" else None
        ).execute()
        withdrawn = status.set_index("customer_id").withdrawn.reindex(keyed.index)
        keyed[f"consent__{ch}"] = np.where(
            withdrawn.isna(), regime == "opt_out", ~withdrawn.fillna(False).astype(bool)
        )

    dnc = do_not_contact(project_dir, plan.policy.do_not_contact, as_of)
    for ch in plan.channel_names:
        who = dnc.loc[dnc.channel.isin((ch, "all")), "customer_id"]
        keyed[f"dnc__{ch}"] = keyed.index.isin(who)

    history = contact_history(
        wh, plan.name, as_of, max(plan.policy.history_days, plan.policy.control_days)
    )
    hist = _history_columns(history, plan, as_of)
    keyed = keyed.join(hist, how="left")
    for c in hist.columns:
        if c.startswith("sent__"):
            keyed[c] = keyed[c].fillna(0).astype("int64")
    keyed["running_control"] = keyed["running_control"].fillna(False).astype(bool)

    # purchases: days since the last, overall and in each offer's category
    orders = _before(events.orders, "ts", midnight)
    day0 = int(midnight.timestamp()) // 86400
    last = orders.group_by("customer_id").aggregate(d=orders.ts.epoch_seconds().max())
    frame = last.execute().set_index("customer_id")
    keyed["days_since_purchase"] = (day0 * 86400 - frame.d.reindex(keyed.index)) / 86400
    for cat in {plan.offers[o].category for o in plan.offer_names} - {None}:
        o = orders.filter(orders.category == cat)
        f = o.group_by("customer_id").aggregate(d=o.ts.epoch_seconds().max()).execute()
        f = f.set_index("customer_id").d.reindex(keyed.index)
        keyed[f"days_since_purchase__{cat}"] = (day0 * 86400 - f) / 86400

    keyed["open_ticket"] = keyed.index.isin(_open_tickets(wh, midnight))
    keyed["fatigue"] = keyed.index.isin(_fatigued(emails, plan, midnight))
    keyed["send_hour"] = _send_hours(emails, keyed.index)
    keyed["send_weekday"] = _send_weekdays(emails, keyed.index)

    versions: dict[str, Any] = {}
    seg, seg_version = _latest_segments(wh, as_of)
    keyed["segment"] = seg.reindex(keyed.index)
    versions["segments"] = seg_version
    for label in plan.labels():
        s, version = latest_scores(wh, label, as_of)
        versions[label] = version
        s = s.set_index("customer_id") if len(s) else s
        for col in ("score", "decile", "tier"):
            keyed[f"{col}__{label}"] = s[col].reindex(keyed.index) if len(s) else np.nan
    clv, clv_version = latest_scores(wh, "clv", as_of)
    versions["clv"] = clv_version
    if len(clv):
        v = clv.set_index("customer_id").clv.reindex(keyed.index)
        keyed["clv"] = v
        rank = v.rank(ascending=False, method="first")
        keyed["clv_decile"] = np.ceil(rank * 10 / max(v.notna().sum(), 1)).clip(1, 10)
    else:
        keyed["clv"] = np.nan
        keyed["clv_decile"] = np.nan
    if plan.campaign.sleeping_dogs == "exclude":
        table = f"uplift_{plan.name}"
        up, up_version = latest_scores(wh, table, as_of)
        if up_version is None:
            raise ConfigError(
                f"campaigns.{plan.name}.sleeping_dogs: exclude needs scores.{table} on or "
                f"before {as_of} (run `custintel uplift train {plan.name}` and "
                f"`custintel uplift score {plan.name} --as-of {as_of}`)"
            )
        versions[table] = up_version
        keyed["sleeping_dog"] = (
            up.set_index("customer_id").sleeping_dog.reindex(keyed.index).fillna(False)
        ).astype(bool)
    ctx = keyed.reset_index()
    ctx = _with_features(ctx, plan, features)
    return ctx.sort_values("customer_id", ignore_index=True), versions


def _with_features(ctx: pd.DataFrame, plan: Plan, features: ir.Table | None) -> pd.DataFrame:
    """The features the campaign's conditions name, beside the context's own columns."""
    named: set[str] = set()
    for where, condition in plan.conditions().items():
        named |= set(columns_of(condition, where))
    wanted = sorted(named - set(ctx.columns))
    if not wanted:
        return ctx
    if features is None:
        raise ConfigError(
            f"{', '.join(plan.conditions())}: names {', '.join(wanted)}, which are not "
            "campaign columns, and there are no features as of the date; run "
            "`custintel features build` first"
        )
    known = {c.lower(): c for c in features.columns}
    missing = [w for w in wanted if w not in known]
    if missing:
        cols = ", ".join(sorted(set(known.values()) | set(ctx.columns)))
        raise ConfigError(
            f"{', '.join(plan.conditions())}: no column {', '.join(map(repr, missing))} "
            f"(columns: {cols})"
        )
    f = features.select("customer_id", *[known[w] for w in wanted]).execute()
    return ctx.merge(f, on="customer_id", how="left")


def _open_tickets(wh: Warehouse, midnight: dt.datetime) -> list[str]:
    if not (wh.exists("clean", "support_tickets") and wh.exists("identity", "customer_map")):
        return []
    t = wh.table("clean", "support_tickets")
    m = wh.table("identity", "customer_map")
    j = t.join(m, [t.source == m.source, t.customer_ref == m.source_id])
    j = _before(j, "created_at", midnight)
    still = j.resolved_at.isnull() | (j.resolved_at.epoch_seconds() >= int(midnight.timestamp()))
    j = j.filter(j.status.isin(("open", "pending")) & still)
    return list(j.select("customer_id").distinct().execute().customer_id)


def _fatigued(emails: ir.Table, plan: Plan, midnight: dt.datetime) -> list[str]:
    """Customers sent enough mail whose open rate of the last 30 days fell below
    ``ratio`` of that of the 60 days before."""
    f = plan.policy.fatigue
    if not f.enabled:
        return []
    cut = int(midnight.timestamp())
    e = emails.filter(emails.ts.epoch_seconds() >= cut - 90 * 86400)
    recent = e.ts.epoch_seconds() >= cut - 30 * 86400
    g = e.group_by("customer_id").aggregate(
        sends=(e.event_type == "send").sum(),
        s_new=((e.event_type == "send") & recent).sum(),
        o_new=((e.event_type == "open") & recent).sum(),
        s_old=((e.event_type == "send") & ~recent).sum(),
        o_old=((e.event_type == "open") & ~recent).sum(),
    )
    x = g.execute()
    x = x[(x.sends >= f.min_sends) & (x.s_new > 0) & (x.s_old > 0) & (x.o_old > 0)]
    falling = x.o_new / x.s_new < f.ratio * (x.o_old / x.s_old)
    return list(x.loc[falling, "customer_id"])


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _send_weekdays(emails: ir.Table, index: pd.Index) -> pd.Series:
    """Each customer's most frequent weekday of opening (UTC), as ``Mon`` to ``Sun``; the
    most common weekday of all opens for customers without one, else Tuesday. A campaign
    run on a given weekday can select its customers with ``where: send_weekday = 'Tue'``."""
    opens = emails.filter(emails.event_type == "open")
    opens = opens.mutate(day=opens.ts.day_of_week.index())
    x = opens.group_by(["customer_id", "day"]).aggregate(n=opens.count()).execute()
    if x.empty:
        return pd.Series("Tue", index=index, dtype="string")
    default = int(x.groupby("day").n.sum().idxmax())
    best = x.sort_values(["customer_id", "n", "day"], ascending=[True, False, True])
    best = best.drop_duplicates("customer_id").set_index("customer_id").day
    days = best.reindex(index).fillna(default).astype("int64").to_numpy()
    return pd.Series(np.asarray(WEEKDAYS)[days], index=index, dtype="string")


def _send_hours(emails: ir.Table, index: pd.Index) -> pd.Series:
    """Each customer's most frequent hour of opening (UTC); the most common hour of all
    opens for customers without one, else 10:00."""
    opens = emails.filter(emails.event_type == "open")
    opens = opens.mutate(hour=opens.ts.hour())
    x = opens.group_by(["customer_id", "hour"]).aggregate(n=opens.count()).execute()
    if x.empty:
        return pd.Series(DEFAULT_SEND_HOUR, index=index, dtype="int64")
    default = int(x.groupby("hour").n.sum().idxmax())
    best = x.sort_values(["customer_id", "n", "hour"], ascending=[True, False, True])
    best = best.drop_duplicates("customer_id").set_index("customer_id").hour
    return best.reindex(index).fillna(default).astype("int64")


def _latest_segments(wh: Warehouse, as_of: dt.date) -> tuple[pd.Series, Any]:
    if not wh.exists("segments", "assignments"):
        return pd.Series(dtype=object), None
    a = wh.table("segments", "assignments")
    a = a.filter(a.as_of <= as_of)
    last = a.aggregate(d=a.as_of.max()).execute().d.iloc[0]
    if last is None or pd.isna(last):
        return pd.Series(dtype=object), None
    a = a.filter(a.as_of == last)
    version = int(a.aggregate(v=a.model_version.max()).execute().v.iloc[0])
    rows = a.filter(a.model_version == version).select("customer_id", "segment_name").execute()
    return rows.set_index("customer_id").segment_name, version


def versions_json(versions: dict[str, Any]) -> str:
    return json.dumps(versions, sort_keys=True)
