"""The service's events in a Redis stream: the option for several service instances.

With ``serving.redis_url`` set, every instance appends the events it records (contacts,
responses, consent) to one Redis stream instead of its local append log, and answers only
after Redis has taken the entry; each instance follows the stream, so an opt-out sent to
one instance counts on every other from its next request. The flush reads the stream
after the last entry already moved into ``serving.events`` (kept in Redis beside it),
inserts skipping event ids already there, then moves that mark; a publish names the
mark its snapshot holds and trims the stream up to it. Events are as durable as the
Redis server's persistence makes them (``appendonly yes`` for every write).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import redis

START = "0-0"


class RedisEvents:
    """One project's event stream (``<prefix>:events``) and its flush mark."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.stream = f"{prefix}:events"
        self.mark = f"{prefix}:events:flushed"

    def append(self, event: dict[str, Any]) -> str:
        entry = self.client.xadd(self.stream, {"e": json.dumps(event, separators=(",", ":"))})
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def after(self, last: str, count: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` entries after entry id ``last``, oldest first."""
        rows = self.client.xrange(self.stream, min=f"({last}", max="+", count=count)
        return [(i.decode(), json.loads(fields[b"e"])) for i, fields in rows]

    def flushed_through(self) -> str:
        got = self.client.get(self.mark)
        return got.decode() if got else START

    def mark_flushed(self, entry: str) -> None:
        self.client.set(self.mark, entry)

    def trim_through(self, entry: str) -> None:
        """Drop entries up to and including ``entry`` (in the warehouse and a snapshot)."""
        if entry == START:
            return
        ms, seq = (int(x) for x in entry.split("-"))
        self.client.xtrim(self.stream, minid=f"{ms}-{seq + 1}", approximate=False)


class StreamFollower:
    """The stream's new entries since the last read (the file follower's counterpart)."""

    def __init__(self, events: RedisEvents, after: str = START) -> None:
        self.events = events
        self.last = after

    def new_events(self) -> Iterator[dict[str, Any]]:
        while True:
            page = self.events.after(self.last)
            if not page:
                return
            self.last = page[-1][0]
            for _, event in page:
                yield event
