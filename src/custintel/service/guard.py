"""What stands before every request: load shedding, body size, rate limits, metrics.

Written as plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``, because the
latter adds a task and a stream per request, a fair share of a millisecond budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("custintel.service")

LAG_TICK_S = 0.005
LAG_SUSTAIN_S = 0.25
LAG_MIN_ARRIVALS = 8
UNSHED = frozenset({"/v1/health/live", "/metrics"})  # a probe must not see a busy worker as dead

REQUESTS = Counter("custintel_requests", "Requests answered", ["route", "status"])
LATENCY = Histogram(
    "custintel_request_seconds",
    "Time to answer a request",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
FALLBACKS = Counter("custintel_fallbacks", "Answers given by a fallback", ["kind"])
SHED = Counter("custintel_shed", "Requests refused at once under overload", ["reason"])


def metrics_text() -> bytes:
    """Prometheus text for this process, or for every worker when they share a folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def _route(scope: Scope) -> str:
    """The route's template (``/v1/customers/{customer_id}/scores``): a label without the
    customer id, so neither metrics nor logs hold personal data."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


async def _refuse(
    send: Send, status: int, code: str, message: str, retry_after: int | None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Refuse at once what the worker should not take on: more than ``max_inflight``
    requests at a time (503) and bodies over ``max_body_bytes`` (413); time and count the
    rest."""

    def __init__(
        self, app: ASGIApp, max_inflight: int, max_body_bytes: int, max_lag_s: float = 0.03
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.max_body_bytes = max_body_bytes
        self.max_lag_s = max_lag_s
        self.inflight = 0
        self.busy = False
        self.arrivals = 0
        self._watch: asyncio.Task[None] | None = None

    async def _watch_lag(self) -> None:
        """How late the event loop wakes a timer: the time a request now waits before
        the worker gets to it. Requests answered in under a millisecond rarely overlap,
        so counting those in flight alone would never notice a queue of them."""
        changed = time.perf_counter()  # since when the loop has been late, or on time
        while True:
            start, arrived = time.perf_counter(), self.arrivals
            await asyncio.sleep(LAG_TICK_S)
            now = time.perf_counter()
            # late, and with many requests come meanwhile: a queue. A loop held up by one
            # long request on a thread (a decision) is late with no one waiting.
            late = (
                now - start - LAG_TICK_S > self.max_lag_s
                and self.arrivals - arrived >= LAG_MIN_ARRIVALS
            )
            if late == self.busy:
                changed = now
            elif now - changed >= LAG_SUSTAIN_S:
                # a pause (a snapshot swap, a collection) is not an overload, nor one
                # quiet tick its end: the loop must stay late, or on time, a while
                self.busy, changed = late, now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_lag())
        self.arrivals += 1
        if self.inflight >= self.max_inflight:
            SHED.labels("inflight").inc()
            await _refuse(send, 503, "overloaded", "the service is at capacity; retry shortly", 1)
            return
        if self.busy and scope.get("path") not in UNSHED:
            SHED.labels("queue").inc()
            await _refuse(send, 503, "overloaded", "the service is at capacity; retry shortly", 1)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (
                not value.isdigit() or int(value) > self.max_body_bytes
            ):
                await _refuse(
                    send,
                    413,
                    "body_too_large",
                    f"request bodies are limited to {self.max_body_bytes} bytes",
                    None,
                )
                return
        status = [500]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        received = [0]

        async def receiving() -> MutableMapping[str, Any]:
            # a chunked body has no length to check up front: count it as it comes
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > self.max_body_bytes:
                raise BodyTooLarge
            return message

        self.inflight += 1
        start = time.perf_counter()
        try:
            await self.app(scope, receiving, sending)
        except BodyTooLarge:
            status[0] = 413
            await _refuse(
                send, 413, "body_too_large",
                f"request bodies are limited to {self.max_body_bytes} bytes", None,
            )  # fmt: skip
        finally:
            self.inflight -= 1
            route = _route(scope)
            seconds = time.perf_counter() - start
            LATENCY.labels(route).observe(seconds)
            REQUESTS.labels(route, str(status[0])).inc()
            if status[0] >= 500:
                log.warning("%s %s -> %s", scope.get("method"), route, status[0])


class BodyTooLarge(Exception):
    pass


class RateLimits:
    """A token bucket per key: ``rate`` requests a second with bursts up to ``burst``.
    Per worker; the buckets are small and need no lock beyond the GIL's for one key's
    arithmetic, but a lock keeps two threads from spending one token twice."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
