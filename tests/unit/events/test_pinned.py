"""Webhook deliveries connect to the addresses the SSRF check approved, not to a new lookup of
the name (DNS rebinding): here the check's resolver says `localhost` is 127.0.0.2, where the
receiver listens, while the system's resolver (/etc/hosts) says 127.0.0.1, where nothing does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rapport.config import WebhookSettings
from rapport.events.pinned import PinnedBackend, PinnedTransport
from rapport.events.webhooks import DELIVERED, Outbox
from rapport.store.tables import WebhookMessage
from tests.fakes.outbox import pending_deliveries
from tests.fakes.receiver import webhook_receiver
from tests.fakes.wait import wait_until, wait_until_async

CHECKED = "127.0.0.2"


def test_a_delivery_goes_to_the_checked_address_not_a_new_lookup(tmp_path: Path) -> None:
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return [CHECKED]

    async def main(url: str) -> str:
        db = await pending_deliveries(tmp_path / "rapport.db", [("ep_1", url)])
        settings = WebhookSettings(allowed_networks=["127.0.0.0/8"], poll_s=0.05)
        outbox = Outbox(db, settings, resolve=resolve)
        loop = asyncio.create_task(outbox.run())
        last = ""

        async def delivered() -> bool:
            nonlocal last
            async with db.session() as s:
                msg = (await s.scalars(select(WebhookMessage))).one()
            last = f"{msg.status} {msg.last_error}"
            return msg.status == DELIVERED

        try:
            await wait_until_async(delivered, 10, lambda: f"the delivery (last: {last})")
            return last
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await db.close()

    with webhook_receiver(CHECKED) as rx:
        port = rx.url.rsplit(":", 1)[1].split("/")[0]
        url = f"http://localhost:{port}/hooks"
        outcome = asyncio.run(main(url))
        assert outcome == f"{DELIVERED} None", outcome
        (got,) = wait_until(lambda: rx.received or None, 5, "the delivery")
    assert got.headers["host"] == f"localhost:{port}"  # the name stays the name
    assert resolved == ["localhost"]


def test_a_host_never_checked_is_not_connected_to() -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=PinnedTransport(PinnedBackend())) as client:
            await client.get("http://localhost:9/")

    with pytest.raises(httpx.ConnectError, match="no checked address"):
        asyncio.run(main())
