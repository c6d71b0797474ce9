"""Agent workers under a real livekit-server's dispatch, on 127.0.0.1.

Each test registers its own agent name, so the session's server can be shared. Plain tests drive
asyncio with asyncio.run; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from livekit import api

from rapport.config import LiveKitSettings
from rapport.livekit import LocalServer
from rapport.worker import AgentWorker, JobState, WorkerState, dispatch_room
from tests.fakes.room_job import join_room
from tests.fakes.wait import wait_until_async

T = TypeVar("T")

DEADLINE_S = 10.0


async def until(
    probe: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = DEADLINE_S,
) -> T:
    return await wait_until_async(probe, timeout, what)


until_async = until


def settings(lk: LocalServer) -> LiveKitSettings:
    return LiveKitSettings(url=lk.url, api_key=lk.api_key, api_secret=lk.api_secret)


def name() -> str:
    return "t-" + uuid.uuid4().hex[:8]


@asynccontextmanager
async def workers(
    lk: LocalServer, agent_name: str, *max_jobs: int
) -> AsyncIterator[list[AgentWorker]]:
    made = [
        AgentWorker(
            url=lk.url,
            api_key=lk.api_key,
            api_secret=lk.api_secret,
            run_job=join_room,
            agent_name=agent_name,
            max_jobs=n,
            status_interval_s=0.5,
        )
        for n in max_jobs
    ]
    tasks = [asyncio.create_task(w.run()) for w in made]
    try:
        for w in made:
            await asyncio.wait_for(w.registered.wait(), DEADLINE_S)
        await dispatchable(lk, made, agent_name)
        yield made
    finally:
        for w in made:
            await w.aclose()
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_S)


async def dispatchable(lk: LocalServer, ws: list[AgentWorker], agent: str) -> None:
    """Waits until the server dispatches `agent` to these workers. A worker is registered before
    the server routes its (new) agent name: a dispatch made in between finds no worker (logged
    "not dispatching agent job since no worker is available" ~3 s later) and is never retried. So
    a probe room is dispatched until a job is taken, then deleted; its jobs are forgotten."""
    room = f"{agent}-probe-{uuid.uuid4().hex[:6]}"
    deadline = time.monotonic() + 20
    while not holder(ws, room):
        assert time.monotonic() < deadline, f"no worker of {agent} was ever dispatched to"
        await dispatch_room(settings(lk), room, agent_name=agent)
        with contextlib.suppress(AssertionError):
            await until(lambda: holder(ws, room), "the probe to be taken", timeout=4)
    await until_async(lambda: people(lk, room), "the probe's job to join")
    for w in ws:
        for job_id, in_room in w.rooms().items():
            if in_room == room:
                w.terminate(job_id)
    await until(lambda: not holder(ws, room), "the probe's jobs to end")
    for w in ws:
        w.finished.clear()


async def people(lk: LocalServer, room: str) -> dict[str, bool]:
    """Identity -> hidden, of everyone connected in `room` (ACTIVE: their media connection is
    up). Deleting a room while the SDK is still connecting leaves it never told (livekit 1.2.0),
    so tests wait for this before deleting."""
    async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as client:
        got = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    active = api.ParticipantInfo.ACTIVE
    return {p.identity: p.permission.hidden for p in got.participants if p.state == active}


async def dispatched(lk: LocalServer, ws: list[AgentWorker], room: str, agent: str) -> float:
    """Dispatch `room` and wait until a worker holds its job; returns the seconds it took."""
    held = sum(w.held for w in ws)
    t0 = time.monotonic()
    await dispatch_room(settings(lk), room, agent_name=agent)
    await until(lambda: sum(w.held for w in ws) > held, f"a worker to take {room}")
    return time.monotonic() - t0


def holder(ws: list[AgentWorker], room: str) -> AgentWorker | None:
    return next((w for w in ws if room in w.rooms().values()), None)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 50))


def test_rooms_spread_over_two_workers_by_load_and_the_jobs_join_hidden(
    livekit_server: LocalServer,
) -> None:
    agent = name()

    async def go() -> None:
        async with workers(livekit_server, agent, 2, 2) as ws:
            rooms = [f"{agent}-room{i}" for i in range(4)]
            took = [await dispatched(livekit_server, ws, r, agent) for r in rooms]
            assert max(took) < 3.0, took
            assert [w.held for w in ws] == [2, 2]  # the second room went to the idle worker
            assert all(w.load == 1.0 for w in ws)
            for r in rooms:
                w = holder(ws, r)
                assert w is not None
                who = await until_async(
                    lambda r=r: people(livekit_server, r), f"the job in {r} to join"
                )
                assert who == {w.identity: True}  # one hidden participant: the worker's job

    run(go)


def test_a_worker_at_max_jobs_gets_none(livekit_server: LocalServer) -> None:
    agent = name()

    async def go() -> None:
        async with workers(livekit_server, agent, 1) as (a,):
            await dispatched(livekit_server, [a], f"{agent}-first", agent)
            assert a.held == 1 and a.load == 1.0
            async with workers(livekit_server, agent, 3) as (b,):
                for i in range(3):
                    await dispatched(livekit_server, [a, b], f"{agent}-more{i}", agent)
                assert (a.held, b.held) == (1, 3)
                assert set(b.rooms().values()) == {f"{agent}-more{i}" for i in range(3)}

    run(go)


def test_deleting_the_room_or_the_dispatch_ends_the_job_reported_successful(
    livekit_server: LocalServer,
) -> None:
    agent = name()

    async def go() -> None:
        async with workers(livekit_server, agent, 2) as (w,):
            gone, ended = f"{agent}-deleted", f"{agent}-undispatched"
            for r in (gone, ended):
                await dispatched(livekit_server, [w], r, agent)
                await until_async(lambda r=r: people(livekit_server, r), f"the job in {r}")
            jobs = {room: job for job, room in w.rooms().items()}
            async with api.LiveKitAPI(
                livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
            ) as client:
                await client.room.delete_room(api.DeleteRoomRequest(room=gone))
                await until(lambda: jobs[gone] in w.finished, "the deleted room's job to end")
                listed = await client.agent_dispatch.list_dispatch(ended)
                (d,) = [d for d in listed if d.agent_name == agent]
                await client.agent_dispatch.delete_dispatch(d.id, ended)  # JobTermination
                await until(lambda: jobs[ended] in w.finished, "the terminated job to end")
            assert w.finished[jobs[gone]] is JobState.SUCCEEDED
            assert w.finished[jobs[ended]] is JobState.SUCCEEDED
            assert w.held == 0
            assert await until_async(
                lambda: _empty(livekit_server, ended), "the terminated job to leave"
            )

    run(go)


async def _empty(lk: LocalServer, room: str) -> bool:
    return not await people(lk, room)


def test_drain_takes_no_new_job_and_waits_for_the_running_one(
    livekit_server: LocalServer,
) -> None:
    agent = name()

    async def go() -> None:
        async with workers(livekit_server, agent, 4, 4) as ws:
            first = f"{agent}-running"
            await dispatched(livekit_server, ws, first, agent)
            a = holder(ws, first)
            assert a is not None
            (b,) = [w for w in ws if w is not a]
            draining = asyncio.create_task(a.drain(30.0))
            await until(lambda: a.state is WorkerState.DRAINING, "the worker to drain")
            for i in range(2):  # a is the less loaded... but draining: b takes them
                await dispatched(livekit_server, ws, f"{agent}-new{i}", agent)
            assert (a.held, b.held) == (1, 2)
            assert not draining.done()
            await until_async(lambda: people(livekit_server, first), "the first job to join")
            async with api.LiveKitAPI(
                livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
            ) as client:
                await client.room.delete_room(api.DeleteRoomRequest(room=first))
            assert await asyncio.wait_for(draining, DEADLINE_S)  # every job ended by itself
            assert a.state is WorkerState.CLOSED
            assert list(a.finished.values()) == [JobState.SUCCEEDED]

    run(go)


def test_drain_past_its_deadline_terminates_the_job_reported_failed(
    livekit_server: LocalServer,
) -> None:
    agent = name()

    async def go() -> None:
        async with workers(livekit_server, agent, 1) as (w,):
            room = f"{agent}-stays"
            await dispatched(livekit_server, [w], room, agent)
            await until_async(lambda: people(livekit_server, room), "the job to join")
            assert not await w.drain(0.2)
            assert list(w.finished.values()) == [JobState.FAILED]
            await until_async(lambda: _empty(livekit_server, room), "the job to leave")

    run(go)


def test_the_worker_registers_again_after_the_server_restarts(
    livekit_binary: Path, tmp_path: Path
) -> None:
    agent = name()

    async def go(lk: LocalServer) -> None:
        async with workers(lk, agent, 2) as (w,):
            first_id = w.worker_id
            await asyncio.to_thread(lk.restart)
            await until(lambda: w.registrations == 2, "the worker to register again")
            assert w.state is WorkerState.REGISTERED and w.worker_id != first_id
            await dispatchable(lk, [w], agent)  # the new server learns the name anew
            await dispatched(lk, [w], f"{agent}-after", agent)

    with LocalServer(binary=livekit_binary, log_path=tmp_path / "server.log") as lk:
        run(lambda: go(lk))


def test_rapport_worker_needs_the_apis_postgresql(livekit_server: LocalServer) -> None:
    """A worker shares its sessions with the API through PostgreSQL (the whole process, jobs,
    drain and fail-over, is tried in tests/integration/service/test_fleet.py): without one it
    refuses to start, in one line."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_SERVICE__DATABASE")
    }
    env["RAPPORT_LIVEKIT__API_SECRET"] = livekit_server.api_secret
    p = subprocess.run(
        [
            *(sys.executable, "-m", "rapport.cli", "worker", "--url", livekit_server.url),
            *("--api-key", livekit_server.api_key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "service.database_url" in lines[0], p.stderr
