"""Delivering a campaign run: each channel's treated contacts as a file in its platform's
import format under ``exports/``, and to its webhook in batches, every step logged in
``campaign.deliveries``.

Only treated contacts of the run leave: never the control group, never a customer the
decision log excluded. The log is only ever appended to; a batch whose key it records as
sent is never sent again, so ``campaign deliver`` after a failure (or after an
interrupted run) sends only what is still pending.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pandas as pd

from custintel.campaigns import delivery, webhook
from custintel.core.errors import StageError
from custintel.core.lineage import now
from custintel.pipeline.parts import ProjectParts

PROFILE = ("email", "phone", "first_name", "last_name", "address", "postcode", "city")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CampaignDelivery(ProjectParts):
    """Delivery methods of :class:`~custintel.pipeline.project.Project`."""

    def _treated(self, name: str, as_of: dt.date) -> pd.DataFrame:
        """The run's treated contacts with each customer's contact details."""
        wh = self.warehouse
        if not wh.exists("campaign", "contacts"):
            columns = ["customer_id", "offer", "channel", "send_at", "send_weekday", *PROFILE]
            return pd.DataFrame(columns=columns)
        c = wh.table("campaign", "contacts")
        c = c.filter((c.campaign_id == name) & (c.as_of == as_of))
        c = c.select("customer_id", "offer", "channel", "send_at", "send_weekday", "variant")
        p = wh.table("customer", "profile")
        p = p.select("customer_id", *[k for k in PROFILE if k in p.columns])
        frame = c.left_join(p, "customer_id").select(c, *[p[k] for k in p.columns[1:]]).execute()
        frame = delivery.deliverable(frame)
        for k in PROFILE:
            if k not in frame:
                frame[k] = pd.NA
        return frame

    def _log(self, rows: list[dict[str, Any]]) -> None:
        wh = self.warehouse
        wh.ensure_schema("campaign")
        columns = ["campaign_id", "as_of", "channel", "kind", "target", "batch", "of", "key",
                   "rows", "status", "attempts", "http_status", "error", "seconds", "at"]  # fmt: skip
        counts = ("batch", "of", "rows", "attempts", "http_status")
        frame = pd.DataFrame(rows, columns=columns).astype(
            {
                **dict.fromkeys(("campaign_id", "channel", "kind", "target", "key"), "string"),
                **dict.fromkeys(("status", "error"), "string"),
                **dict.fromkeys(counts, "Int64"),
                "seconds": "float64",
            }
        )
        wh.put("campaign", "deliveries", frame, append=True)

    def _log_batch(self, where: dict[str, Any], r: webhook.Result) -> None:
        """One row per batch tried, written before the next batch leaves."""
        self._log([{**where, "batch": r.number, "key": r.key, "rows": r.rows,
                    "status": r.status, "attempts": r.attempts, "http_status": r.http_status,
                    "error": r.error, "seconds": r.seconds, "at": now()}])  # fmt: skip

    def _sent_keys(self, name: str, as_of: dt.date, channel: str) -> set[str]:
        wh = self.warehouse
        if not wh.exists("campaign", "deliveries"):
            return set()
        d = wh.table("campaign", "deliveries")
        d = d.filter(
            (d.campaign_id == name)
            & (d.as_of == as_of)
            & (d.channel == channel)
            & (d.kind == "webhook")
            & (d.status == "sent")
        )
        return set(d.select("key").execute()["key"])

    def campaign_deliver(self, name: str, as_of: dt.date) -> dict[str, Any]:
        """Export and post a recorded run's treated contacts; resume where a failed or
        interrupted delivery stopped. Raises after logging if a webhook fails."""
        cfg = self.config
        treated = self._treated(name, as_of)
        region = cfg.identity.default_region
        out: dict[str, Any] = {}
        failures: list[str] = []
        base = {"campaign_id": name, "as_of": as_of}
        for channel, part in treated.groupby("channel", sort=True):
            ch = cfg.channels.get(str(channel))
            if ch is None:
                continue
            report: dict[str, Any] = {"contacts": len(part)}
            fmt = ch.export_format(str(channel))
            if fmt != "none":
                frame = delivery.export_frame(part, fmt, name, region)
                path = self.dir / "exports" / name / str(as_of) / f"{channel}-{fmt}.csv"
                data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
                _atomic_write(path, data)
                rel = path.relative_to(self.dir).as_posix()
                report["file"] = {"path": rel, "rows": len(frame), "format": fmt}
                self._log([{**base, "channel": channel, "kind": "file", "target": rel,
                            "rows": len(frame), "status": "written",
                            "key": delivery.file_digest(data), "at": now()}])  # fmt: skip
            if ch.webhook is not None:
                hook = ch.webhook
                keep = ["customer_id", "offer", "send_at", "send_weekday",
                        *delivery.address_columns(ch.needs(str(channel)))]  # fmt: skip
                done = self._sent_keys(name, as_of, str(channel))
                batches = list(delivery.batches(part[keep], name, str(as_of), str(channel),
                                                hook.batch_size))  # fmt: skip

                where = {**base, "channel": channel, "kind": "webhook", "target": hook.url,
                         "of": len(batches)}  # fmt: skip
                sent, skipped, failure = webhook.send(
                    hook, batches, done, lambda r, where=where: self._log_batch(where, r)
                )
                pending = len(batches) - sent - skipped
                report["webhook"] = {"url": hook.url, "batches": len(batches), "sent": sent,
                                     "already_sent": skipped, "pending": pending}  # fmt: skip
                if failure is not None:
                    failures.append(
                        f"webhook for {channel} ({hook.url}) failed at batch {failure.number} "
                        f"of {len(batches)} after {failure.attempts} tries: {failure.error}; "
                        f"{sent + skipped} delivered, {pending} pending"
                    )
            out[str(channel)] = report
        if failures:
            raise StageError(
                f"campaign {name} on {as_of}: "
                + "; ".join(failures)
                + f". Decisions are recorded; `custintel campaign deliver {name} --as-of "
                f"{as_of}` sends what is pending, nothing twice"
            )
        return out
