"""The worker's and its jobs' lifecycles, each an enum whose transitions are checked in one place,
and what a job callback is handed about its job."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rapport.errors import RapportError


class IllegalTransition(RapportError):
    """A lifecycle was asked to move where it cannot: a bug in the caller, never retried."""


class WorkerState(enum.Enum):
    """IDLE -> CONNECTING -> REGISTERED, back to CONNECTING when the server goes away; DRAINING
    (no new jobs, running ones finish) from any live state; CLOSED last."""

    IDLE = "idle"
    CONNECTING = "connecting"
    REGISTERED = "registered"
    DRAINING = "draining"
    CLOSED = "closed"

    def to(self, new: WorkerState) -> WorkerState:
        if new not in _WORKER_MOVES[self]:
            raise IllegalTransition(f"worker cannot go from {self.value} to {new.value}")
        return new


_WORKER_MOVES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.IDLE: frozenset({WorkerState.CONNECTING, WorkerState.DRAINING, WorkerState.CLOSED}),
    WorkerState.CONNECTING: frozenset(
        {WorkerState.REGISTERED, WorkerState.DRAINING, WorkerState.CLOSED}
    ),
    WorkerState.REGISTERED: frozenset(
        {WorkerState.CONNECTING, WorkerState.DRAINING, WorkerState.CLOSED}
    ),
    WorkerState.DRAINING: frozenset({WorkerState.CLOSED}),
    WorkerState.CLOSED: frozenset(),
}


class JobState(enum.Enum):
    """OFFERED (we said available, the server has not assigned yet) -> RUNNING, or ABANDONED when
    no assignment comes; RUNNING -> TERMINATING (the server or a drain asked it to end) ->
    SUCCEEDED or FAILED; RUNNING -> SUCCEEDED or FAILED when the job ends by itself."""

    OFFERED = "offered"
    RUNNING = "running"
    TERMINATING = "terminating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"

    def to(self, new: JobState) -> JobState:
        if new not in _JOB_MOVES[self]:
            raise IllegalTransition(f"job cannot go from {self.value} to {new.value}")
        return new

    @property
    def holds_slot(self) -> bool:
        """Whether the job counts against the worker's capacity (and so its load)."""
        return self in (JobState.OFFERED, JobState.RUNNING, JobState.TERMINATING)


_JOB_MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.OFFERED: frozenset({JobState.RUNNING, JobState.ABANDONED}),
    JobState.RUNNING: frozenset({JobState.TERMINATING, JobState.SUCCEEDED, JobState.FAILED}),
    JobState.TERMINATING: frozenset({JobState.SUCCEEDED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.ABANDONED: frozenset(),
}


@dataclass(slots=True, frozen=True)
class JobInfo:
    """One room job as assigned: join `room` at `url` with `token` (minted by the server with the
    permissions the worker registered, as `identity`). `metadata` is the dispatch's."""

    job_id: str
    dispatch_id: str
    room: str
    url: str
    token: str
    identity: str
    metadata: str


def load_of(held: int, max_jobs: int) -> float:
    """The load the worker reports: the share of its job slots held, 0..1. The server gives no job
    to a worker at or above its `agents.target_load` (default 0.7), whatever its status says."""
    return min(1.0, held / max_jobs)
