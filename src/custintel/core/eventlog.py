"""The service's append log of events it was sent: responses, contacts and consent.

A request that records an event is answered only after the event's line is written to
``<project>/serving/events/log.jsonl`` (opened for appending by every worker; one
``write`` of one line, so lines of several workers never interleave). Nothing is lost
if the service is stopped or killed: the lines are in the file. ``custintel events
flush`` (and ``publish``, and every campaign run) moves the lines into the warehouse
table ``serving.events`` in three steps, each safe to interrupt:

1. the live file is renamed ``batch-<ns>.jsonl``; workers notice the rename (the inode
   at the path changed) and open a new live file;
2. after a grace period for a write already under way, the batch's lines are inserted,
   skipping event ids already there (so a flush run twice adds nothing twice);
3. the batch is renamed ``flushed-<ns>.jsonl``. A publish names the flushed files its
   snapshot holds and deletes them once it is live; a worker started between a flush and
   the next publish still finds, in the files, the events its snapshot does not hold.

The service applies the events its snapshot does not hold (those in files the snapshot
does not name, and those the snapshot carries because they came after the date its
decisions are as of) on top of it: an opt-out counts from the next request.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIVE = "log.jsonl"
BATCH = "batch-"
FLUSHED = "flushed-"
KINDS = ("contact", "response", "consent")
COLUMNS: dict[str, str] = {
    "event_id": "string",
    "received_at": "timestamp('UTC')",
    "ts": "timestamp('UTC')",
    "kind": "string",
    "customer_id": "string",
    "campaign_id": "string",
    "offer": "string",
    "channel": "string",
    "outcome": "string",
    "value": "float64",
    "purpose": "string",
    "status": "string",
    "key_id": "string",
}
"""``serving.events``: one row per event, whatever its kind (unused fields empty)."""


def events_dir(project_dir: Path) -> Path:
    return project_dir / "serving" / "events"


def new_event(kind: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    """An event with its id and the moment it was received (``ts`` defaults to it)."""
    now = dt.datetime.now(dt.UTC)
    event = {c: None for c in COLUMNS}
    event.update(fields)
    event.update(
        event_id=uuid.uuid4().hex,
        received_at=now.isoformat(),
        kind=kind,
        customer_id=customer_id,
    )
    if event["ts"] is None:
        event["ts"] = event["received_at"]
    return event


class Appender:
    """Appends event lines to the live file, reopening it after a flush renamed it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LIVE
        self._fd: int | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self._fd is None or inode != self._inode:
            if self._fd is not None:
                os.close(self._fd)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._inode = os.fstat(self._fd).st_ino
        return self._fd

    def append(self, event: dict[str, Any], *, sync: bool = False) -> None:
        """Write one event's line; with ``sync`` also to the disk (slower, survives a
        power cut, not only a crash of the service)."""
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._open()
            os.write(fd, line)
            if sync:
                os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:  # a line cut short by a crash mid-write: nothing was answered for it
        return None
    return event if isinstance(event, dict) and "event_id" in event else None


@dataclass
class _Followed:
    offset: int = 0
    rest: bytes = b""


class Follower:
    """Reads the event files as they grow: every event once, whichever file it is in by
    now (files are tracked by inode, so a renamed file is not read again)."""

    def __init__(self, folder: Path, skip: set[str] | frozenset[str] = frozenset()) -> None:
        self.folder = folder
        self.skip = skip  # files whose events the reader already has another way
        self._files: dict[int, _Followed] = {}

    def new_events(self) -> Iterator[dict[str, Any]]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".jsonl") or entry.name in self.skip:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            seen = self._files.setdefault(st.st_ino, _Followed())
            if st.st_size <= seen.offset:
                continue
            try:
                with open(entry.path, "rb") as f:
                    f.seek(seen.offset)
                    data = f.read(st.st_size - seen.offset)
            except FileNotFoundError:
                continue
            seen.offset += len(data)
            data = seen.rest + data
            lines = data.split(b"\n")
            seen.rest = lines.pop()  # an unfinished last line waits for its end
            for line in lines:
                if line and (event := _parse(line)) is not None:
                    yield event


def rotate(folder: Path) -> Path | None:
    """Rename the live file to a new batch (None when there is nothing to flush)."""
    live = folder / LIVE
    if not live.exists() or live.stat().st_size == 0:
        return None
    batch = folder / f"{BATCH}{time.time_ns()}.jsonl"
    os.replace(live, batch)
    return batch


def batches(folder: Path) -> list[Path]:
    """Batches renamed but not yet flushed (an interrupted flush leaves some)."""
    return sorted(folder.glob(f"{BATCH}*.jsonl")) if folder.exists() else []


def read_batch(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        return [e for line in f.read().split(b"\n") if line and (e := _parse(line))]


def mark_flushed(batch: Path) -> Path:
    done = batch.with_name(FLUSHED + batch.name[len(BATCH) :])
    os.replace(batch, done)
    return done


def flushed(folder: Path) -> list[Path]:
    """Files whose events are in the warehouse."""
    return sorted(folder.glob(f"{FLUSHED}*.jsonl")) if folder.exists() else []
