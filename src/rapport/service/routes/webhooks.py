"""Webhook endpoints: register (the service generates the secret; private targets refused),
list, delete, rotate the secret, re-enable, and the dead-letter list with its replay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from sqlalchemy import delete, select, update

from rapport.events.schema import EventType
from rapport.events.webhook_signing import generate_secret
from rapport.events.webhooks import DEAD, PENDING
from rapport.service.api import DeadLetter, ReplayIn, WebhookIn, WebhookOut
from rapport.service.auth import Caller
from rapport.service.deps import Admin, App, Reader
from rapport.service.errors import ApiError, not_found
from rapport.store.tables import WebhookEndpoint, WebhookMessage

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _out(ep: WebhookEndpoint, secret: str | None = None) -> WebhookOut:
    return WebhookOut(
        id=ep.id,
        url=ep.url,
        event_types=ep.event_types,
        description=ep.description,
        created_at=ep.created_at,
        disabled_at=ep.disabled_at,
        disabled_reason=ep.disabled_reason,
        secret=secret,
    )


async def _get(st: App, who: Caller, endpoint_id: str) -> WebhookEndpoint:
    async with st.db.session() as s:
        ep = await s.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.project != who.project:
        raise not_found("webhook endpoint", endpoint_id)
    return ep


@router.post("", status_code=201, response_model=WebhookOut)
async def register(body: WebhookIn, st: App, who: Admin) -> WebhookOut:
    unknown = sorted(set(body.event_types) - {str(t) for t in EventType})
    if unknown:
        known = ", ".join(str(t) for t in EventType)
        raise ApiError(422, "invalid_request", f"event_types: unknown {unknown[0]!r} ({known})")
    await asyncio.to_thread(st.outbox.check, body.url)
    secret = generate_secret()
    ep = WebhookEndpoint(
        id=f"ep_{uuid.uuid4().hex[:24]}",
        project=who.project,
        url=body.url,
        description=body.description,
        event_types=sorted(set(body.event_types)),
        secrets=[{"secret": secret, "expires_at": None}],
        created_at=datetime.now(UTC),
    )
    async with st.db.transaction() as s:
        s.add(ep)
    return _out(ep, secret)


@router.get("", response_model=list[WebhookOut])
async def list_endpoints(st: App, who: Reader) -> list[WebhookOut]:
    async with st.db.session() as s:
        rows = await s.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.project == who.project)
        )
        return [_out(ep) for ep in rows]


@router.get("/{endpoint_id}", response_model=WebhookOut)
async def get_endpoint(endpoint_id: str, st: App, who: Reader) -> WebhookOut:
    return _out(await _get(st, who, endpoint_id))


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: str, st: App, who: Admin) -> None:
    await _get(st, who, endpoint_id)
    async with st.db.transaction() as s:
        await s.execute(delete(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id))
        await s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


@router.post("/{endpoint_id}/rotate-secret", response_model=WebhookOut)
async def rotate_secret(endpoint_id: str, st: App, who: Admin) -> WebhookOut:
    """A new secret signs from now on; the previous one keeps signing beside it (receivers see
    two signatures) for webhooks.rotation_grace_s, so receivers can switch without a gap."""
    secret = generate_secret()
    grace_end = datetime.now(UTC) + timedelta(seconds=st.settings.webhooks.rotation_grace_s)
    async with st.db.transaction() as s:
        ep = await s.get(WebhookEndpoint, endpoint_id)
        if ep is None or ep.project != who.project:
            raise not_found("webhook endpoint", endpoint_id)
        old = [
            {"secret": o["secret"], "expires_at": o["expires_at"] or grace_end.isoformat()}
            for o in ep.secrets
        ]
        ep.secrets = [{"secret": secret, "expires_at": None}, *old]
    return _out(await _get(st, who, endpoint_id), secret)


@router.post("/{endpoint_id}/enable", response_model=WebhookOut)
async def enable(endpoint_id: str, st: App, who: Admin) -> WebhookOut:
    """Re-enable an endpoint disabled by a 410; its dead letters can then be replayed."""
    ep = await _get(st, who, endpoint_id)
    await asyncio.to_thread(st.outbox.check, ep.url)
    async with st.db.transaction() as s:
        await s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(disabled_at=None, disabled_reason=None)
        )
    return _out(await _get(st, who, endpoint_id))


@router.get("/{endpoint_id}/dead-letters", response_model=list[DeadLetter])
async def dead_letters(endpoint_id: str, st: App, who: Reader) -> list[DeadLetter]:
    await _get(st, who, endpoint_id)
    async with st.db.session() as s:
        rows = await s.scalars(
            select(WebhookMessage)
            .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == DEAD)
            .order_by(WebhookMessage.created_at)
        )
        return [
            DeadLetter(
                id=m.id,
                event_id=m.event_id,
                event_type=m.event_type,
                session_id=m.session_id,
                attempts=m.attempts,
                last_status=m.last_status,
                last_error=m.last_error,
                finished_at=m.finished_at,
            )
            for m in rows
        ]


@router.post("/{endpoint_id}/dead-letters/replay")
async def replay(endpoint_id: str, body: ReplayIn, st: App, who: Admin) -> dict[str, int]:
    """Queue dead messages again, with their original webhook-id and a fresh retry schedule."""
    ep = await _get(st, who, endpoint_id)
    if ep.disabled_at is not None:
        raise ApiError(409, "endpoint_disabled", "enable the endpoint before replaying")
    q = update(WebhookMessage).where(
        WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == DEAD
    )
    if body.ids is not None:
        q = q.where(WebhookMessage.id.in_(body.ids))
    async with st.db.transaction() as s:
        res = await s.execute(
            q.values(
                status=PENDING,
                attempts=0,
                next_attempt_at=datetime.now(UTC),
                leased_until=None,
                finished_at=None,
            )
        )
    st.outbox.wake()
    return {"replayed": int(getattr(res, "rowcount", 0))}
