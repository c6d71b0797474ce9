"""The webhook outbox: durable, at-least-once delivery of events to registered endpoints.

Messages are written in the same transaction as their event (see service/recorder.py), so a crash
loses none. A worker claims due messages with a lease; a worker killed mid-delivery leaves the
lease to expire and the message is delivered again, with the same webhook-id (receivers
de-duplicate on it). 2xx delivers; 410 disables the endpoint; anything else retries on the policy's
schedule (honouring Retry-After) until it is exhausted and the message is dead-lettered.
Attempts, dead letters and the lag from emitted_at to a 2xx are metrics (rapport/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update

from rapport import __version__
from rapport.config import WebhookSettings
from rapport.events import webhook_signing
from rapport.events.pinned import PinnedBackend, PinnedTransport
from rapport.events.retry import RetryPolicy, parse_retry_after
from rapport.events.ssrf import Resolver, UnsafeUrl, check_url, system_resolver
from rapport.metrics import EVENT_LAG, WEBHOOK_ATTEMPTS, WEBHOOK_DEAD
from rapport.store.db import Database
from rapport.store.tables import WebhookEndpoint, WebhookMessage

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def now() -> datetime:
    return datetime.now(UTC)


def emitted_lag(body: bytes | str, at: datetime) -> float | None:
    """Seconds from an event's `emitted_at` (in its JSON body) to `at`; None if it has none."""
    try:
        emitted = datetime.fromisoformat(json.loads(body)["emitted_at"])
    except (ValueError, KeyError, TypeError):
        return None
    return (at - emitted).total_seconds()


def active_secrets(endpoint: WebhookEndpoint, at: datetime) -> list[str]:
    """Secrets that sign now, newest first: the current one and any still in rotation grace."""
    out = []
    for s in endpoint.secrets:
        expires = s.get("expires_at")
        if expires is None or datetime.fromisoformat(expires) > at:
            out.append(str(s["secret"]))
    return out


class Outbox:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        *,
        resolve: Resolver = system_resolver,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._policy = RetryPolicy(tuple(settings.retry_schedule_s), settings.jitter)
        self._resolve = resolve
        self._pins = PinnedBackend()
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    def check(self, url: str) -> list[str]:
        """The addresses to call `url` at; UnsafeUrl when it resolves to private addresses
        (SSRF), unless allowed in config."""
        return check_url(
            url, allowed_networks=self._settings.allowed_networks, resolve=self._resolve
        )

    async def run(self, stopping: Callable[[], bool] = lambda: False) -> None:
        timeout = httpx.Timeout(self._settings.timeout_s)
        headers = {"user-agent": f"rapport-webhooks/{__version__}"}
        transport = PinnedTransport(self._pins)
        async with httpx.AsyncClient(
            timeout=timeout, headers=headers, transport=transport
        ) as client:
            try:
                while not stopping():
                    claimed = await self._claim()
                    for msg_id in claimed:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._deliver(client, msg_id), name=msg_id)
                        self._inflight.add(task)
                        task.add_done_callback(self._done)
                    if not claimed:
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self._settings.poll_s)
            finally:
                for task in list(self._inflight):
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A delivery that crashed is logged and the loop goes on: its lease expires and it is
        tried again, like one whose worker died."""
        self._inflight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "webhook delivery crashed",
                exc_info=task.exception(),
                extra={"message_id": task.get_name()},
            )

    async def _claim(self) -> list[str]:
        """Lease up to `concurrency` due messages; a row leased by another worker is skipped."""
        t = now()
        lease = t + timedelta(seconds=self._settings.lease_s)
        free = or_(WebhookMessage.leased_until.is_(None), WebhookMessage.leased_until < t)
        async with self._db.transaction() as s:
            ids = (
                await s.scalars(
                    select(WebhookMessage.id)
                    .where(WebhookMessage.status == PENDING, WebhookMessage.next_attempt_at <= t)
                    .where(free)
                    .order_by(WebhookMessage.next_attempt_at)
                    .limit(self._settings.concurrency)
                )
            ).all()
            claimed = []
            for msg_id in ids:
                res = await s.execute(
                    update(WebhookMessage)
                    .where(WebhookMessage.id == msg_id, WebhookMessage.status == PENDING, free)
                    .values(leased_until=lease)
                )
                if getattr(res, "rowcount", 0) == 1:
                    claimed.append(msg_id)
        return claimed

    async def _deliver(self, client: httpx.AsyncClient, msg_id: str) -> None:
        async with self._db.session() as s:
            msg = await s.get(WebhookMessage, msg_id)
            endpoint = await s.get(WebhookEndpoint, msg.endpoint_id) if msg else None
        if msg is None or endpoint is None:
            return
        if endpoint.disabled_at is not None:
            await self._finish(msg_id, DEAD, None, f"endpoint disabled: {endpoint.disabled_reason}")
            WEBHOOK_DEAD.labels("endpoint_disabled").inc()
            return
        try:
            addresses = await asyncio.to_thread(self.check, endpoint.url)
        except UnsafeUrl as e:
            await self._finish(msg_id, DEAD, None, str(e))
            WEBHOOK_DEAD.labels("unsafe_url").inc()
            return
        self._pins.pin(endpoint.url, addresses)  # connect to what was checked, nothing else
        body = msg.body.encode()
        signed = webhook_signing.headers(
            active_secrets(endpoint, now()), msg.id, int(time.time()), body
        )
        status: int | None = None
        retry_after: float | None = None
        try:
            response = await client.post(
                endpoint.url,
                content=body,
                headers={**signed, "content-type": "application/json"},
            )
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=now())
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}".strip()
        if error is None:
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
            lag = emitted_lag(body, now())
            if lag is not None:
                EVENT_LAG.labels("webhook").observe(lag)
            self.delivered += 1
            await self._finish(msg_id, DELIVERED, status, None)
        elif status == 410:
            WEBHOOK_ATTEMPTS.labels("gone").inc()
            await self._disable(endpoint.id, "the receiver answered 410 Gone")
        else:
            WEBHOOK_ATTEMPTS.labels("network_error" if status is None else "http_error").inc()
            await self._retry(msg_id, msg.attempts + 1, status, error, retry_after)

    async def _finish(self, msg_id: str, state: str, status: int | None, error: str | None) -> None:
        await self._update(
            msg_id,
            status=state,
            attempts=WebhookMessage.attempts + 1,
            last_status=status,
            last_error=error,
            finished_at=now(),
        )

    async def _retry(
        self, msg_id: str, attempts: int, status: int | None, error: str, retry_after: float | None
    ) -> None:
        delay = self._policy.next_delay(attempts, retry_after=retry_after, rng=self._rng)
        if delay is None:
            await self._update(
                msg_id,
                status=DEAD,
                attempts=attempts,
                last_status=status,
                last_error=f"{error} (retries exhausted)",
                finished_at=now(),
            )
            WEBHOOK_DEAD.labels("retries_exhausted").inc()
            return
        await self._update(
            msg_id,
            attempts=attempts,
            last_status=status,
            last_error=error,
            next_attempt_at=now() + timedelta(seconds=delay),
        )

    async def _update(self, msg_id: str, **values: Any) -> None:
        """Record an attempt's outcome; the lease is released with it."""
        async with self._db.transaction() as s:
            await s.execute(
                update(WebhookMessage)
                .where(WebhookMessage.id == msg_id)
                .values(leased_until=None, **values)
            )

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        """410 Gone: the endpoint is disabled and everything pending for it dead-lettered."""
        t = now()
        async with self._db.transaction() as s:
            await s.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(disabled_at=t, disabled_reason=reason)
            )
            dead = await s.execute(
                update(WebhookMessage)
                .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == PENDING)
                .values(
                    status=DEAD,
                    last_status=410,
                    last_error=f"endpoint disabled: {reason}",
                    leased_until=None,
                    finished_at=t,
                )
            )
        WEBHOOK_DEAD.labels("gone").inc(max(0, getattr(dead, "rowcount", 0) or 0))
