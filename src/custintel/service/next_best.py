"""The next-best action for one customer, decided by the campaign engine itself.

``custintel publish`` stores what the engine decides from (one row per customer: addresses,
consent, contact history, suppressions, scores, CLV, segment, the features conditions
name) as of the features' date. A request takes the customer's row, applies the events
the service was sent since (:class:`Overlay`: opt-outs, contacts), and runs
:func:`custintel.campaigns.decide.decide` on it with the ``nba`` plan: the same
eligibility, contact policy, caps and arbitration as a batch run, so a customer's answer
here is the batch's answer for the same row (a test holds them to it).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.feather as feather

from custintel.campaigns.decide import Plan, decide
from custintel.core import consent, eventlog
from custintel.core.eventstream import START, RedisEvents, StreamFollower
from custintel.pipeline.campaign_context import WINDOW_DAYS
from custintel.pipeline.serving_tasks import CARRIED, NBA_CONTEXT


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


class Overlay:
    """The consent records and contacts a snapshot does not hold: those it carries (after
    its decision date) and those in event files it does not name (since its publish).
    Read again before every decision, so an opt-out counts from the next request,
    whichever worker took it."""

    def __init__(
        self,
        project_dir: Path,
        folder: Path,
        manifest: dict[str, Any],
        stream: RedisEvents | None = None,
    ) -> None:
        held = manifest.get("events") or {}
        self._followers: list[eventlog.Follower | StreamFollower] = [
            eventlog.Follower(eventlog.events_dir(project_dir), skip=set(held.get("included", [])))
        ]
        if stream is not None:  # several instances: the others' events come through Redis
            self._followers.append(StreamFollower(stream, held.get("stream_through") or START))
        self._seen: set[str] = set()
        self.consents: dict[str, list[consent.Record]] = defaultdict(list)
        self.contacts: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
        self._lock = threading.Lock()
        carried = folder / CARRIED
        if carried.exists():
            for event in eventlog.read_batch(carried):
                self._add(event)
        self.refresh()

    def _add(self, e: dict[str, Any]) -> None:
        if e["kind"] not in ("consent", "contact") or e["event_id"] in self._seen:
            return  # responses do not change a decision: not kept
        self._seen.add(e["event_id"])
        who = e["customer_id"]
        if e["kind"] == "consent":
            ts = dt.datetime.fromisoformat(e["ts"])
            self.consents[who].append(
                consent.Record(ts, e.get("channel") or "all", e["purpose"], e["status"])
            )
        elif e["kind"] == "contact":
            self.contacts[who].append((_epoch(e["ts"]), e.get("channel")))

    def refresh(self) -> None:
        with self._lock:
            for follower in self._followers:
                for event in follower.new_events():
                    self._add(event)


class NextBest:
    """The published decision rows and the plan that decides on them."""

    def __init__(self, folder: Path, plan: Plan, regime: str) -> None:
        self.plan = plan
        self.regime = regime
        self.frame = feather.read_feather(folder / NBA_CONTEXT)
        self.rows = {c: i for i, c in enumerate(self.frame["customer_id"])}
        # the first decision with a candidate left compiles the allocation (a second or
        # so): done here, on a few hundred rows, not in a request
        decide(self.frame.head(500), plan, dt.date.today(), summarize=False)

    def row(self, customer_id: str, overlay: Overlay, now: float) -> pd.DataFrame | None:
        """The customer's row with the overlay's consent records and contacts applied."""
        i = self.rows.get(customer_id)
        if i is None:
            return None
        row = self.frame.iloc[[i]].reset_index(drop=True)
        records = overlay.consents.get(customer_id)
        if records:
            at = dt.datetime.fromtimestamp(now + 1, dt.UTC)
            for ch in self.plan.channel_names:
                column = f"consent__{ch}"
                if ch not in consent.CHANNELS or column not in row:
                    continue
                mine = [r for r in records if r.channel in (ch, consent.ALL)]
                if any(r.purpose in ("marketing", consent.ALL) for r in mine):
                    verdict = consent.decide(mine, at, "marketing", ch, regime=self.regime)
                    row[column] = verdict.allowed
        for ts, ch in overlay.contacts.get(customer_id, ()):
            age_days = max(now - ts, 0.0) / 86400
            for window, days in WINDOW_DAYS.items():
                if age_days < days:
                    for name in (f"sent__all__{window}", f"sent__{ch}__{window}"):
                        if name in row:
                            row[name] = row[name] + 1
            if "days_since_contact" in row:
                was = row.at[0, "days_since_contact"]
                row["days_since_contact"] = age_days if np.isnan(was) else min(was, age_days)
        return row

    def answer(self, customer_id: str, overlay: Overlay) -> dict[str, Any] | None:
        """The actions the plan takes for the customer now, or the rule that stopped
        each; None for a customer the snapshot does not hold."""
        overlay.refresh()
        now = time.time()
        row = self.row(customer_id, overlay, now)
        if row is None:
            return None
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        d = decide(row, self.plan, today, summarize=False).decisions
        taken = d[d.outcome == "treatment"]
        factors = ("propensity", "value", "priority", "cost")
        actions = [
            {
                "offer": r["offer"],
                "channel": r["channel"],
                **{k: _number(r[k]) for k in factors},
                "send_hour": _number(r["send_hour"]),
                "send_weekday": r["send_weekday"] if isinstance(r["send_weekday"], str) else None,
            }
            for r in taken.to_dict(orient="records")
        ]
        first = d.iloc[0]
        return {
            "actions": actions,
            "rule": None if actions else first["rule"],
            "rules": [x for x in str(first["rules"] or "").split(",") if x] if not actions else [],
        }


def _number(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if np.isnan(v) else v
