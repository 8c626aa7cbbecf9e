"""A real HTTP receiver on loopback for webhook tests: it records every request, and can
be told to fail (an HTTP status), to stall past the client's timeout, or to fail only
from the n-th request on, the way a platform goes down half-way and comes back."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    """What the next requests get: ``fail`` answers with ``status`` (with ``retry_after``)
    for requests numbered ``fail_from`` (1-based) to ``fail_until``; ``stall_s`` waits
    before answering."""

    status: int = 503
    fail_from: int = 10**9
    fail_until: int = 10**9
    stall_s: float = 0.0
    retry_after: str | None = None


@dataclass
class Receiver:
    url: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["answer"] == 200]

    def reset(self, behaviour: Behaviour | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self.behaviour = behaviour or Behaviour()


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                number = len(state.requests) + 1
                b = state.behaviour
                failing = b.fail_from <= number <= b.fail_until
                record = {
                    "number": number,
                    "key": self.headers.get("Idempotency-Key"),
                    "auth": self.headers.get("Authorization"),
                    "body": json.loads(body),
                    "answer": b.status if failing else 200,
                }
                state.requests.append(record)
            if b.stall_s:
                time.sleep(b.stall_s)
            self.send_response(record["answer"])
            if failing and b.retry_after is not None:
                self.send_header("Retry-After", b.retry_after)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
                self.wfile.write(b'{"ok": true}' if not failing else b'{"error": "down"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
