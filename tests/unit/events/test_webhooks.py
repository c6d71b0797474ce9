"""The outbox loop outlives a delivery that crashes: the crash is logged with the message's id,
and the other deliveries go on (a SQLite database in a temp folder, a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from rapport.config import WebhookSettings
from rapport.events.webhooks import DELIVERED, PENDING, Outbox
from rapport.store.tables import WebhookMessage
from tests.fakes.outbox import pending_deliveries
from tests.fakes.receiver import webhook_receiver
from tests.fakes.wait import wait_until_async


def resolve(host: str, port: int) -> list[str]:
    if host == "crash.test":
        raise RuntimeError("a bug in the resolver")
    return ["127.0.0.1"]


def test_a_crashing_delivery_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="rapport.events.webhooks")

    async def main(url: str) -> None:
        db = await pending_deliveries(
            tmp_path / "rapport.db", [("we_crash", "http://crash.test/hooks"), ("we_ok", url)]
        )
        settings = WebhookSettings(allowed_networks=["127.0.0.0/8"], poll_s=0.05)
        outbox = Outbox(db, settings, resolve=resolve)
        loop = asyncio.create_task(outbox.run())

        async def messages() -> dict[str, WebhookMessage]:
            async with db.session() as s:
                return {m.id: m for m in await s.scalars(select(WebhookMessage))}

        async def both_done() -> bool:
            delivered = (await messages())["msg_we_ok"].status == DELIVERED
            return delivered and bool(caplog.records)

        try:
            await wait_until_async(
                both_done, 10, "one delivery to crash and the other to be delivered"
            )
            assert not loop.done()
            crashed = (await messages())["msg_we_crash"]
            # Left leased: retried once the lease expires, as if its worker had died.
            assert crashed.status == PENDING
            assert crashed.attempts == 0 and crashed.leased_until is not None
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await db.close()

    with webhook_receiver() as rx:
        asyncio.run(main(rx.url))
        assert len(rx.received) == 1
    (crash,) = caplog.records
    assert crash.getMessage() == "webhook delivery crashed"
    assert crash.__dict__["message_id"] == "msg_we_crash"
    assert crash.exc_info is not None and str(crash.exc_info[1]) == "a bug in the resolver"
