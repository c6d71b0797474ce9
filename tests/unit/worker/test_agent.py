"""The worker's lifecycles, load and offers, without a server (the protocol against a real
livekit-server is in tests/integration/livekit/test_worker.py)."""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol import agent

from rapport.errors import InputError
from rapport.worker import AgentWorker, Backoff, JobInfo, JobState, WorkerState
from rapport.worker.agent import agent_url
from rapport.worker.jobs import IllegalTransition, load_of


async def _never(job: JobInfo) -> None:
    await asyncio.Event().wait()


def _worker(max_jobs: int) -> AgentWorker:
    return AgentWorker(
        url="ws://127.0.0.1:7880", api_key="k", api_secret="s", run_job=_never, max_jobs=max_jobs
    )


def _sent(w: AgentWorker) -> list[agent.WorkerMessage]:
    out = []
    while not w._outbox.empty():
        out.append(w._outbox.get_nowait())
    return out


def _offer(job_id: str) -> agent.AvailabilityRequest:
    return agent.AvailabilityRequest(job=agent.Job(id=job_id, type=agent.JT_ROOM))


def test_worker_lifecycle_rejects_illegal_moves() -> None:
    s = WorkerState.IDLE.to(WorkerState.CONNECTING).to(WorkerState.REGISTERED)
    s = s.to(WorkerState.CONNECTING).to(WorkerState.REGISTERED).to(WorkerState.DRAINING)
    with pytest.raises(IllegalTransition):
        s.to(WorkerState.REGISTERED)  # a draining worker never takes jobs again
    assert s.to(WorkerState.CLOSED) is WorkerState.CLOSED
    with pytest.raises(IllegalTransition):
        WorkerState.CLOSED.to(WorkerState.CONNECTING)


def test_job_lifecycle_rejects_illegal_moves() -> None:
    assert JobState.OFFERED.to(JobState.RUNNING).to(JobState.TERMINATING).to(JobState.SUCCEEDED)
    assert JobState.OFFERED.to(JobState.ABANDONED) is JobState.ABANDONED
    for bad in ((JobState.OFFERED, JobState.SUCCEEDED), (JobState.SUCCEEDED, JobState.RUNNING)):
        with pytest.raises(IllegalTransition):
            bad[0].to(bad[1])
    assert [s.holds_slot for s in JobState] == [True, True, True, False, False, False]


def test_load_is_the_share_of_slots_held() -> None:
    assert [load_of(n, 4) for n in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_backoff_grows_to_its_cap() -> None:
    assert [Backoff(0.5, 2.0, 3.0).delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]


def test_agent_url() -> None:
    assert agent_url("ws://127.0.0.1:7880") == "ws://127.0.0.1:7880/agent"
    assert agent_url("https://lk.example/base/") == "wss://lk.example/base/agent"
    with pytest.raises(InputError):
        agent_url("127.0.0.1:7880")
    with pytest.raises(InputError):
        _worker(0)


def test_offers_are_refused_when_full_unregistered_or_draining() -> None:
    async def go() -> None:
        w = _worker(1)
        w._offered(_offer("J0"))  # not registered yet
        w._state = WorkerState.CONNECTING.to(WorkerState.REGISTERED)
        w._offered(_offer("J1"))
        w._offered(_offer("J2"))  # full: its one slot is held by J1
        answers = [m.availability for m in _sent(w) if m.HasField("availability")]
        assert [(a.job_id, a.available) for a in answers] == [
            ("J0", False),
            ("J1", True),
            ("J2", False),
        ]
        assert answers[1].participant_identity == w.identity
        assert w.jobs() == {"J1": JobState.OFFERED} and w.load == 1.0
        task = w._jobs["J1"].task
        assert task is not None
        assert w.terminate("J1")  # the server terminated it before assigning
        await asyncio.wait([task])
        assert w.finished == {"J1": JobState.ABANDONED} and w.held == 0
        statuses = [m.update_worker for m in _sent(w) if m.HasField("update_worker")]
        assert statuses[-1].status == agent.WS_AVAILABLE and statuses[-1].load == 0.0
        w._state = w._state.to(WorkerState.DRAINING)
        w._offered(_offer("J3"))
        msgs = _sent(w)
        assert [m.availability.available for m in msgs if m.HasField("availability")] == [False]
        (status,) = [m.update_worker for m in msgs if m.HasField("update_worker")]
        assert status.status == agent.WS_FULL and status.draining

    asyncio.run(go())
