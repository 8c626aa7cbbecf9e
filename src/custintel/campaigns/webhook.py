"""Posting a channel's batches to a webhook: retries with exponential back-off, an
idempotency key per batch, and a result per batch handed back as soon as it is known so
that the caller can log it before the next one leaves.

Batches already delivered (their keys in ``done``) are skipped, which is how a run that
stopped half-way resumes without sending anything twice. Sending stops at the first batch
that cannot be delivered: later batches stay pending rather than arriving out of order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from custintel import __version__
from custintel.campaigns.delivery import Batch
from custintel.core.config import WebhookConfig

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Result:
    """What became of one batch."""

    key: str
    number: int
    rows: int
    status: str  # sent | failed
    attempts: int
    http_status: int | None
    error: str
    seconds: float


def _wait(cfg: WebhookConfig, attempt: int, response: httpx.Response | None) -> float:
    """Seconds before the next try: doubling from ``backoff_s``, or the server's
    ``Retry-After`` (in seconds), never above ``max_backoff_s``."""
    wait = cfg.backoff_s * 2 ** (attempt - 1)
    if response is not None:
        after = response.headers.get("retry-after", "")
        if after.strip().isdigit():
            wait = float(after)
    return min(wait, cfg.max_backoff_s)


def _headers(cfg: WebhookConfig, key: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "User-Agent": f"custintel/{__version__}",
    }
    if cfg.token_env:
        token = os.environ.get(cfg.token_env)
        if not token:
            raise ValueError(f"webhook token: environment variable {cfg.token_env} is not set")
        headers["Authorization"] = f"Bearer {token}"
    return headers


def send_one(
    client: httpx.Client,
    cfg: WebhookConfig,
    batch: Batch,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Post one batch until it is accepted, refused for good, or out of tries."""
    start = time.perf_counter()
    error, status = "", None
    for attempt in range(1, cfg.tries + 1):
        response = None
        try:
            response = client.post(cfg.url, content=batch.body, headers=_headers(cfg, batch.key))
            status = response.status_code
            if 200 <= status < 300:
                return Result(batch.key, batch.number, len(batch.customers), "sent", attempt,
                              status, "", time.perf_counter() - start)  # fmt: skip
            error = f"HTTP {status}: {response.text[:200].strip()}"
            if status not in RETRYABLE:
                return Result(batch.key, batch.number, len(batch.customers), "failed", attempt,
                              status, error, time.perf_counter() - start)  # fmt: skip
        except httpx.TimeoutException:
            error, status = f"no answer within {cfg.timeout_s:g} s", None
        except httpx.TransportError as exc:
            error, status = f"{type(exc).__name__}: {exc}", None
        if attempt < cfg.tries:
            sleep(_wait(cfg, attempt, response))
    return Result(batch.key, batch.number, len(batch.customers), "failed", cfg.tries, status,
                  error, time.perf_counter() - start)  # fmt: skip


def send(
    cfg: WebhookConfig,
    batches: Iterable[Batch],
    done: set[str],
    on_result: Callable[[Result], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, int, Result | None]:
    """Send every batch not in ``done``; return (sent, skipped, the failure or None)."""
    sent = skipped = 0
    timeout = httpx.Timeout(cfg.timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for batch in batches:
            if batch.key in done:
                skipped += 1
                continue
            result = send_one(client, cfg, batch, sleep)
            on_result(result)
            if result.status != "sent":
                return sent, skipped, result
            sent += 1
    return sent, skipped, None
