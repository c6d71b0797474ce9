"""The deployment of many processes, on loopback, without containers: two LiveKit nodes sharing
Redis, PostgreSQL, the API (`rapport serve`, which runs no bot) and `rapport worker`s under
LiveKit's agent dispatch. Rooms spread over the workers; a revocation received by the API stops
the processing on the worker holding the room within a second; a worker killed (-9) mid-session
has its room carried on by another (seq gap-free, no event twice, a session.resumed stating the
gap); SIGTERM drains a worker, handing its sessions over with their open windows emitted; and
every event reaches the API's WebSocket and a signed webhook.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from rapport.events.schema import Event
from rapport.events.webhook_signing import verify
from rapport.invariants import check_events
from rapport.livekit.publisher import SimulatedParticipant
from rapport.samples import Recording
from tests.fakes.receiver import Receiver
from tests.fakes.wait import wait_until, wait_until_async
from tests.integration.conftest import LiveKitPair
from tests.integration.service.conftest import Service

DEADLINE_S = 180


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Fleet:
    def __init__(self, svc: Service, pair: LiveKitPair, root: Path, agent: str, dsn: str):
        self.svc, self.pair, self.root, self.agent, self.dsn = svc, pair, root, agent, dsn
        self.workers: list[Worker] = []

    def worker(self, name: str, url: str) -> Worker:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "rapport.cli", "--config", str(self.svc.config)),
                    *("worker", "--url", url, "--agent-name", self.agent, "--drain-s", "10"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        w = Worker(name, proc, log)
        self.workers.append(w)
        return w

    def room_session(self, room: str) -> str:
        body = {
            "room": room,
            "purpose": "self_coaching",
            "jurisdiction": "DE",
            "setting": "consumer",
            "reporting": "participant",
        }
        r = self.svc.http.post("/v1/sessions", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def row(self, session_id: str) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            found = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1", session_id)
        finally:
            await conn.close()
        assert found is not None
        return dict(found)

    async def stored(self, session_id: str) -> list[Event]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT body FROM events WHERE session_id = $1 ORDER BY seq", session_id
            )
        finally:
            await conn.close()
        return [Event.model_validate_json(r["body"]) for r in rows]

    async def drop_listeners(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            n = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return int(n)

    def stop(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 30) -> Any:
    return await wait_until_async(probe, timeout, what, interval=0.05)


def windows(events: list[Event], after_seq: int = -1) -> list[Event]:
    return [e for e in events if e.type == "engagement.window" and e.seq > after_seq]


@pytest.fixture
def fleet(
    make_service: Any,
    livekit_pair: LiveKitPair,
    postgres_url: str,
    tmp_path: Path,
    receiver: Receiver,
) -> Iterator[Fleet]:
    a = livekit_pair.a
    agent = f"fleet-{uuid.uuid4().hex[:8]}"
    svc: Service = make_service(
        {
            "window": {"seconds": 2},
            "service": {"database_url": postgres_url},
            "livekit": {
                "url": a.url,
                "api_key": a.api_key,
                "api_secret": a.api_secret,
                "agent_name": agent,
                "lease_s": 1.5,
                "redispatch_s": 3,
            },
        },
        name="api",
    )
    # The test's own project: the PostgreSQL server is shared by the session's tests.
    _, key = svc.new_key(project=agent, scope="admin")
    svc.key = key
    svc.http.headers["authorization"] = f"Bearer {key}"
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    f = Fleet(svc, livekit_pair, tmp_path, agent, dsn)
    try:
        yield f
    finally:
        f.stop()


def test_rooms_spread_fail_over_drain_and_revocations_reach_the_worker(
    fleet: Fleet, receiver: Receiver, call_small: Recording
) -> None:
    svc, pair = fleet.svc, fleet.pair
    hook = svc.http.post("/v1/webhooks", json={"url": receiver.url})
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]
    w1 = fleet.worker("w1", pair.a.url)
    w2 = fleet.worker("w2", pair.b.url)
    # Sessions are dispatched when created; with both workers registered, LiveKit spreads them.
    wait_until(
        lambda: all("agent worker registered" in w.text() for w in (w1, w2)),
        60,
        "both workers to register",
    )
    rooms = [f"{fleet.agent}-r1", f"{fleet.agent}-r2"]
    sids: list[str] = []
    consents: dict[str, dict[str, Any]] = {}
    figures: dict[str, float] = {}

    async def call() -> None:
        alice = SimulatedParticipant(
            pair.a.url, pair.a.token("alice", room=rooms[0]), call_small, loop=True
        )
        bob = SimulatedParticipant(
            pair.b.url, pair.b.token("bob", room=rooms[1]), call_small, loop=True
        )
        async with alice, bob:
            # Both rooms run, on different workers (the workers register within seconds; a
            # dispatch made before is reconciled).
            async def held() -> list[str] | None:
                rows = [await fleet.row(s) for s in sids]
                ok = all(r["status"] == "running" and r["worker"] for r in rows)
                return [r["worker"] for r in rows] if ok else None

            # One room after the other: a worker's load reaches the server with its first job.
            for room, who in zip(rooms, ("alice", "bob"), strict=True):
                sid = await asyncio.to_thread(fleet.room_session, room)
                consents[sid] = await asyncio.to_thread(svc.consent, sid, who)
                sids.append(sid)
                holders = await until(held, f"{room} to be held", 30)
            assert holders[0] != holders[1], holders
            nonlocal dashboard
            dashboard = Dashboard(svc, sids[0])  # live from here on, through the API's notices
            for sid in sids:
                await until(lambda sid=sid: _has_windows(fleet, sid, 2), f"windows of {sid}", 30)

            # A revocation received by the API stops bob's processing on his worker within 1 s.
            t0 = time.time()
            r = await asyncio.to_thread(
                svc.http.post, f"/v1/consents/{consents[sids[1]]['id']}/revoke"
            )
            assert r.status_code == 200, r.text

            async def revoked() -> Event | None:
                evs = await fleet.stored(sids[1])
                return next((e for e in evs if e.type == "consent.revoked"), None)

            event = await until(revoked, "consent.revoked from bob's worker", 5)
            figures["revocation_s"] = event.emitted_at.timestamp() - t0
            assert figures["revocation_s"] < 1.0, figures

            # An erasure waits for the worker holding the session to purge the person (its
            # answer comes as a notice), and ending a session asks that worker to end it.
            erased_room = f"{fleet.agent}-r3"
            sid3 = await asyncio.to_thread(fleet.room_session, erased_room)
            await asyncio.to_thread(svc.consent, sid3, "dave")
            await until(lambda: _held_by_someone(fleet, sid3), "the third room to be held", 30)
            t0 = time.time()
            r = await asyncio.to_thread(svc.http.delete, "/v1/subjects/dave")
            figures["erasure_s"] = time.time() - t0
            assert r.status_code == 200 and r.json()["consents_erased"] == 1, r.text
            assert figures["erasure_s"] < 2.0, figures  # answered, not the 5 s time-out
            r = await asyncio.to_thread(svc.http.delete, f"/v1/sessions/{sid3}")
            assert r.json()["status"] == "ended", r.text
            summary = (await fleet.stored(sid3))[-1]
            assert summary.type == "session.summary", summary

            # PostgreSQL drops every listening connection (a restart, a network cut): the API and
            # the workers listen again and catch up from the tables (the dashboard's check below
            # finds no gap).
            mark = (await fleet.stored(sids[0]))[-1].seq
            dropped = await fleet.drop_listeners()
            assert dropped >= 3, dropped  # the API's and two workers'
            await until(
                lambda: _has_windows(fleet, sids[0], 2, after_seq=mark),
                "windows after the listeners dropped",
                20,
            )

            # kill -9 the worker holding alice's room: the other carries the session on.
            victim = await _holder(fleet, sids[0])
            before = await fleet.stored(sids[0])
            t_kill = time.time()
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)

            async def resumed() -> Event | None:
                evs = await fleet.stored(sids[0])
                return next((e for e in evs if e.type == "session.resumed"), None)

            event = await until(resumed, "the session to resume on the other worker", 30)
            figures["failover_s"] = event.emitted_at.timestamp() - t_kill
            assert event.data.model_dump()["reason"] == "worker_lost"
            assert event.seq > before[-1].seq
            await until(
                lambda: _has_windows(fleet, sids[0], 2, after_seq=event.seq),
                "windows after the resume",
                20,
            )
            survivor = next(w for w in (w1, w2) if w is not victim)
            assert (await fleet.row(sids[0]))["worker"] == (await fleet.row(sids[1]))["worker"]

            # A new worker joins; SIGTERM drains the survivor: both sessions are handed over.
            fleet.worker("w3", pair.b.url)
            marks = {sid: len(await fleet.stored(sid)) for sid in sids}
            t_term = time.time()
            survivor.proc.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(survivor.proc.wait, 60)
            figures["drain_s"] = time.time() - t_term
            assert rc == 0, survivor.text()[-3000:]

            for sid in sids:

                async def handed_over(sid: str = sid) -> Event | None:
                    evs = (await fleet.stored(sid))[marks[sid] :]
                    return next(
                        (
                            e
                            for e in evs
                            if e.type == "session.resumed"
                            and e.data.model_dump()["reason"] == "worker_drained"
                        ),
                        None,
                    )

                await until(handed_over, f"{sid} to be resumed after the drain", 40)
            for sid in sids:
                r = await asyncio.to_thread(svc.http.delete, f"/v1/sessions/{sid}")
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "ended", r.json()

    dashboard: Dashboard | None = None
    asyncio.run(asyncio.wait_for(call(), DEADLINE_S))

    for sid in sids:
        events = [Event.model_validate(e) for e in svc.events(sid)]
        check_events(events, ended=True)
        assert len({e.id for e in events}) == len(events)
        resumes = [e for e in events if e.type == "session.resumed"]
        assert [e.data.model_dump()["reason"] for e in resumes][-1] == "worker_drained"
    # The dashboard got every event of alice's session once, in order, across both moves.
    assert dashboard is not None
    seen = dashboard.close()
    assert seen == list(range(len(svc.events(sids[0])))), seen
    # bob's windows after his revocation do not have him
    bob = [Event.model_validate(e) for e in svc.events(sids[1])]
    cut = next(e.seq for e in bob if e.type == "consent.revoked")
    assert all("bob" not in e.data.model_dump()["participants"] for e in windows(bob, cut))
    assert any("bob" in e.data.model_dump()["participants"] for e in windows(bob))
    # Every event of both sessions reached the webhook, signed (delivered by the API).
    total = sum(len(svc.events(sid)) for sid in sids)
    got = receiver.wait_for(lambda rs: len(rs) >= total, timeout=30)
    for req in got:
        verify(secret, req.headers, req.body, now=time.time())
    api_log = (svc.root / "serve.log").read_text()
    assert "not acknowledged" not in api_log, api_log[-3000:]
    print("fleet figures:", {k: round(v, 3) for k, v in figures.items()})


class Dashboard:
    """A WebSocket on the API, reading a session's events (replayed, then live) in a thread."""

    def __init__(self, svc: Service, session_id: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(
            f"{svc.ws_url}/v1/events?session={session_id}",
            additional_headers={"authorization": f"Bearer {svc.key}"},
        )
        self.seqs: list[int] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for message in self._ws:
            m = json.loads(message)
            if "seq" in m and m.get("type") not in ("heartbeat", "stream.reset"):
                self.seqs.append(int(m["seq"]))
            if m.get("type") == "session.summary":
                return

    def close(self) -> list[int]:
        self._thread.join(30)
        self._ws.close()
        return self.seqs


async def _has_windows(fleet: Fleet, sid: str, n: int, after_seq: int = -1) -> bool:
    return len(windows(await fleet.stored(sid), after_seq)) >= n


async def _held_by_someone(fleet: Fleet, sid: str) -> bool:
    row = await fleet.row(sid)
    return bool(row["status"] == "running" and row["worker"])


async def _holder(fleet: Fleet, sid: str) -> Worker:
    name = (await fleet.row(sid))["worker"]
    for w in fleet.workers:
        if name in w.text():
            return w
    raise AssertionError(f"no worker log names {name}")
