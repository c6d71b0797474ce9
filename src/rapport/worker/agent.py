"""An agent worker that speaks LiveKit's agent protocol over the server's `/agent` WebSocket.

The handshake (as livekit-agents' worker does it): a token with the `agent` video grant in the
Authorization header; `RegisterWorkerRequest(type=JT_ROOM, agent_name, version,
allowed_permissions)` answered by `RegisterWorkerResponse(worker_id)`. Then the server offers a job
with `AvailabilityRequest`; the worker answers `AvailabilityResponse` (available, and as whom it
will join) and, if it said yes, gets `JobAssignment` (url and a token the server minted with the
registered permissions: hidden, subscribe-only, an agent). The worker reports `UpdateJobStatus`
(JS_RUNNING, then JS_SUCCESS or JS_FAILED) and `UpdateWorkerStatus` (WS_AVAILABLE or WS_FULL, load,
job count) on every change and every `status_interval_s` with a `WorkerPing`. `JobTermination`
cancels the job's task; a job ended that way is reported successful.

Constraints: one asyncio loop; messages leave through one queue drained by one sender per
connection (a message queued while the server is away goes out after re-registration, with a
`MigrateJobRequest` naming the jobs still running). The server never retries a dispatch that no
worker took, and gives no job to a worker whose load reaches its `agents.target_load` (0.7 by
default): see `jobs.load_of`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import aiohttp
from livekit import api
from livekit.protocol import agent, models

from rapport import __version__
from rapport.errors import InputError, RapportError
from rapport.worker.jobs import JobInfo, JobState, WorkerState, load_of

log = logging.getLogger(__name__)

RunJob = Callable[[JobInfo], Awaitable[None]]
"""The job: joins the room and returns when it is over. Cancelled on termination or drain."""

ASSIGNMENT_TIMEOUT_S = 7.5
"""A job offered (available) and not assigned within this is given up (as livekit-agents)."""
REGISTER_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 2.0
"""On close, queued messages (final job statuses) get this long to leave."""
AGENT_NAME_ATTRIBUTE = "lk.agent.name"
WORKER_ATTRIBUTE = "rapport.worker"

CONNECTION_LOST = (aiohttp.ClientError, OSError, TimeoutError)
"""How the connection fails while the server is down or restarting: reconnected with backoff."""


class WorkerProtocolError(RapportError):
    """The server answered out of protocol; the connection is remade."""

    retryable = True


@dataclass(slots=True, frozen=True)
class Backoff:
    """Delay before reconnection attempt n (0-based): first_s * factor**n, at most max_s. It
    starts again from first_s after a registration succeeds."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor**attempt))


@dataclass(slots=True)
class _Job:
    job: agent.Job
    assigned: asyncio.Future[agent.JobAssignment]
    state: JobState = JobState.OFFERED
    task: asyncio.Task[None] | None = None
    ended_by: str = ""
    """Why it was asked to end: "" (not asked), "termination" (reported success), "shutdown"."""
    error: str = ""

    def move(self, new: JobState) -> None:
        self.state = self.state.to(new)


def agent_url(url: str) -> str:
    """ws(s)://host[/path]/agent from a ws(s):// or http(s):// server URL."""
    parsed = urlparse(url)
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    if scheme not in ("ws", "wss") or not parsed.netloc:
        raise InputError(f"LiveKit URL {url!r} is not ws(s):// or http(s)://")
    return f"{scheme}://{parsed.netloc}{parsed.path.rstrip('/')}/agent"


class AgentWorker:
    """Registers with a LiveKit server as agent `agent_name` and runs up to `max_jobs` room jobs.

    `run()` serves until `drain()` or `aclose()`; `registered` is set while registered. A job
    joins as `identity` (default `<agent_name>-<worker id>`).
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        run_job: RunJob,
        agent_name: str = "rapport",
        max_jobs: int = 4,
        identity: str | None = None,
        status_interval_s: float = 2.5,
        backoff: Backoff = Backoff(),  # frozen: safe to share
    ) -> None:
        if max_jobs < 1:
            raise InputError(f"max_jobs must be at least 1, not {max_jobs}")
        if not (api_key and api_secret):
            raise InputError("an agent worker needs the LiveKit API key and secret")
        self._url = url
        self._agent_url = agent_url(url)
        self._api_key = api_key
        self._api_secret = api_secret
        self._run_job = run_job
        self.agent_name = agent_name
        self.max_jobs = max_jobs
        self._identity = identity
        self._status_interval_s = status_interval_s
        self._backoff = backoff
        self._state = WorkerState.IDLE
        self._jobs: dict[str, _Job] = {}
        self._outbox: asyncio.Queue[agent.WorkerMessage] = asyncio.Queue()
        self._closing = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._seq = 0
        self.worker_id: str | None = None
        self.registered = asyncio.Event()
        self.registrations = 0
        """Times it registered (1 + re-registrations after the server went away)."""
        self.finished: dict[str, JobState] = {}
        """Final state of every job that ran here, by job id."""

    # -- what it is doing ------------------------------------------------------------------------

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def identity(self) -> str:
        return self._identity or f"{self.agent_name}-{self.worker_id or 'unregistered'}"

    @property
    def held(self) -> int:
        """Job slots held: offered, running or ending."""
        return sum(1 for j in self._jobs.values() if j.state.holds_slot)

    @property
    def load(self) -> float:
        return load_of(self.held, self.max_jobs)

    def jobs(self) -> dict[str, JobState]:
        """Jobs held now, by job id."""
        return {k: j.state for k, j in self._jobs.items()}

    def rooms(self) -> dict[str, str]:
        """Room of every job held now, by job id."""
        return {k: j.job.room.name for k, j in self._jobs.items()}

    def _accepting(self) -> bool:
        return self._state is WorkerState.REGISTERED and self.held < self.max_jobs

    def _move(self, new: WorkerState) -> None:
        self._state = self._state.to(new)

    # -- the connection --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve; reconnect with backoff when the server goes away. Returns once
        closed (by `drain` or `aclose`)."""
        attempt = 0
        async with aiohttp.ClientSession() as http:
            while not self._closing.is_set():
                if self._state is not WorkerState.DRAINING:
                    self._move(WorkerState.CONNECTING)
                before = self.registrations
                try:
                    await self._connection(http)
                except (*CONNECTION_LOST, WorkerProtocolError) as e:
                    log.warning(
                        "agent connection failed",
                        extra={"error": type(e).__name__, "detail": str(e), "attempt": attempt},
                    )
                if self.registrations > before:  # it was up: back off from the start
                    attempt = 0
                self.registered.clear()
                if self._closing.is_set():
                    break
                delay = self._backoff.delay(attempt)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)

    def _token(self) -> str:
        grants = api.VideoGrants(agent=True)
        return api.AccessToken(self._api_key, self._api_secret).with_grants(grants).to_jwt()

    def _register_message(self) -> agent.WorkerMessage:
        permissions = models.ParticipantPermission(
            can_subscribe=True,
            can_publish=False,
            can_publish_data=False,
            hidden=True,
            agent=True,
        )
        return agent.WorkerMessage(
            register=agent.RegisterWorkerRequest(
                type=agent.JT_ROOM,
                agent_name=self.agent_name,
                version=__version__,
                allowed_permissions=permissions,
            )
        )

    async def _connection(self, http: aiohttp.ClientSession) -> None:
        """One connection: register, then serve until it closes."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        async with http.ws_connect(self._agent_url, headers=headers, heartbeat=30.0) as ws:
            await ws.send_bytes(self._register_message().SerializeToString())
            first = await asyncio.wait_for(ws.receive(), REGISTER_TIMEOUT_S)
            if first.type is not aiohttp.WSMsgType.BINARY:
                raise WorkerProtocolError(f"expected a register response, got {first.type.name}")
            reply = agent.ServerMessage.FromString(first.data)
            if reply.WhichOneof("message") != "register":
                raise WorkerProtocolError("the server's first message was not a register response")
            self.worker_id = reply.register.worker_id
            if self._state is WorkerState.CONNECTING:
                self._move(WorkerState.REGISTERED)
            self.registrations += 1
            self._ws = ws
            self.registered.set()
            log.info(
                "agent worker registered",
                extra={"worker_id": self.worker_id, "agent_name": self.agent_name},
            )
            running = [k for k, j in self._jobs.items() if j.state is not JobState.OFFERED]
            if running:
                self._send(
                    agent.WorkerMessage(migrate_job=agent.MigrateJobRequest(job_ids=running))
                )
            self._send_status()
            helpers = [
                asyncio.create_task(self._sender(ws)),
                asyncio.create_task(self._ticker()),
            ]
            try:
                await self._receiver(ws)
            finally:
                self._ws = None
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)

    async def _receiver(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is not aiohttp.WSMsgType.BINARY:
                log.warning("unexpected agent frame", extra={"type": frame.type.name})
                continue
            msg = agent.ServerMessage.FromString(frame.data)
            which = msg.WhichOneof("message")
            if which == "availability":
                self._offered(msg.availability)
            elif which == "assignment":
                self._assigned(msg.assignment)
            elif which == "termination":
                self.terminate(msg.termination.job_id)
        if not self._closing.is_set():
            raise WorkerProtocolError(f"the server closed the agent connection ({ws.close_code})")

    async def _sender(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await self._outbox.get()
            try:
                await ws.send_bytes(msg.SerializeToString())
            finally:
                self._outbox.task_done()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._status_interval_s)
            self._send(agent.WorkerMessage(ping=agent.WorkerPing(timestamp=_ms())))
            self._send_status()

    def _send(self, msg: agent.WorkerMessage) -> None:
        self._outbox.put_nowait(msg)

    def _send_status(self) -> None:
        draining = self._state is WorkerState.DRAINING
        full = draining or self.held >= self.max_jobs
        self._seq += 1
        update = agent.UpdateWorkerStatus(
            status=agent.WS_FULL if full else agent.WS_AVAILABLE,
            load=self.load,
            job_count=self.held,
            draining=draining,
            seq=self._seq,
        )
        self._send(agent.WorkerMessage(update_worker=update))

    # -- jobs --------------------------------------------------------------------------------------

    def _offered(self, req: agent.AvailabilityRequest) -> None:
        job_id = req.job.id
        answer = agent.AvailabilityResponse(job_id=job_id, available=False)
        if self._accepting() and job_id not in self._jobs:
            answer = agent.AvailabilityResponse(
                job_id=job_id,
                available=True,
                participant_identity=self.identity,
                participant_name=self.agent_name,
                participant_attributes={
                    AGENT_NAME_ATTRIBUTE: self.agent_name,
                    WORKER_ATTRIBUTE: self.worker_id or "",
                },
            )
            j = _Job(req.job, asyncio.get_running_loop().create_future())
            self._jobs[job_id] = j
            j.task = asyncio.create_task(self._job_main(j), name=f"job {job_id}")
            j.task.add_done_callback(functools.partial(self._job_done, j))
        log.info(
            "job offered",
            extra={"job_id": job_id, "room": req.job.room.name, "available": answer.available},
        )
        self._send(agent.WorkerMessage(availability=answer))
        self._send_status()

    def _assigned(self, assignment: agent.JobAssignment) -> None:
        j = self._jobs.get(assignment.job.id)
        if j is None or j.assigned.done():
            log.warning("assignment for an unknown job", extra={"job_id": assignment.job.id})
            return
        j.assigned.set_result(assignment)

    def terminate(self, job_id: str, *, reason: str = "termination") -> bool:
        """Ask a job to end (the server's JobTermination, or a drain past its deadline with
        reason "shutdown", reported failed). False when there is no such job or it is ending."""
        j = self._jobs.get(job_id)
        if j is None or j.task is None or j.ended_by or not j.state.holds_slot:
            return False
        j.ended_by = reason
        if j.state is JobState.RUNNING:
            j.move(JobState.TERMINATING)
        j.task.cancel()
        log.info("job terminated", extra={"job_id": job_id, "reason": reason})
        return True

    async def _job_main(self, j: _Job) -> None:
        """Waits for the assignment, then runs the job. Cancelled while offered (terminated, or
        before it even started), it ends ABANDONED in `_job_done`."""
        try:
            assignment = await asyncio.wait_for(j.assigned, ASSIGNMENT_TIMEOUT_S)
        except TimeoutError:
            log.warning("job offered but never assigned", extra={"job_id": j.job.id})
            j.move(JobState.ABANDONED)
            return
        j.move(JobState.RUNNING)
        info = JobInfo(
            job_id=j.job.id,
            dispatch_id=j.job.dispatch_id,
            room=j.job.room.name,
            url=assignment.url or self._url,
            token=assignment.token,
            identity=self.identity,
            metadata=j.job.metadata,
        )
        self._job_status(info.job_id, agent.JS_RUNNING)
        await self._run(j, info)

    def _job_done(self, j: _Job, _task: asyncio.Task[None]) -> None:
        if j.state is JobState.OFFERED:
            j.move(JobState.ABANDONED)
        self.finished[j.job.id] = j.state
        del self._jobs[j.job.id]
        self._send_status()

    async def _run(self, j: _Job, info: JobInfo) -> None:
        """Runs the job callback: the job boundary. Its failure is the job's (reported JS_FAILED
        with the error and logged with its traceback), never the worker's."""
        try:
            await self._run_job(info)
        except asyncio.CancelledError:
            if not j.ended_by:
                j.move(JobState.FAILED)
                self._job_status(info.job_id, agent.JS_FAILED, "cancelled")
                raise
            failed = j.ended_by != "termination"
            j.move(JobState.FAILED if failed else JobState.SUCCEEDED)
            error = "the worker shut down before the job ended" if failed else ""
            self._job_status(info.job_id, agent.JS_FAILED if failed else agent.JS_SUCCESS, error)
            return
        except Exception as e:  # the job's own failure, reported to the server
            log.exception("job failed", extra={"job_id": info.job_id})
            j.move(JobState.FAILED)
            self._job_status(info.job_id, agent.JS_FAILED, f"{type(e).__name__}: {e}")
            return
        j.move(JobState.SUCCEEDED)
        self._job_status(info.job_id, agent.JS_SUCCESS)

    def _job_status(self, job_id: str, status: agent.JobStatus, error: str = "") -> None:
        update = agent.UpdateJobStatus(job_id=job_id, status=status, error=error)
        self._send(agent.WorkerMessage(update_job=update))

    # -- the end -----------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking jobs (WS_FULL, offers refused), wait up to `timeout_s` for the running
        ones to end, terminate what is left (reported failed), then close. True when every job
        ended by itself."""
        if self._state is WorkerState.CLOSED:
            return True
        if self._state is not WorkerState.DRAINING:
            self._move(WorkerState.DRAINING)
            log.info("agent worker draining", extra={"jobs": self.held, "timeout_s": timeout_s})
            self._send_status()
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        clean = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            if pending:
                clean = False
                for job_id in list(self._jobs):
                    self.terminate(job_id, reason="shutdown")
                await asyncio.gather(*pending, return_exceptions=True)
        await self._close()
        return clean

    async def aclose(self) -> None:
        """Close now: running jobs are terminated (reported failed)."""
        await self.drain(0)

    async def _close(self) -> None:
        if self._state is WorkerState.CLOSED:  # two drains at once: the first closes
            return
        if self._ws is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), FLUSH_TIMEOUT_S)
        self._move(WorkerState.CLOSED)
        self._closing.set()
        if self._ws is not None:
            await self._ws.close()


def _ms() -> int:
    return int(time.time() * 1000)
