"""Supervision of the service's background loops (webhook delivery, retention, room repair).

A loop run as a bare task dies silently at its first unexpected error, a database blip say, and
never comes back. Here each loop runs by name from a factory: a failure is logged with the loop's
name, the loop is restarted after a capped exponential backoff (reset once a run has been
healthy for a while), and its state is kept for /healthz. Cancellation is shutdown: it stops the
loop and is never restarted. The lifespan that starts the loops closes the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

Loop = Callable[[], Awaitable[None]]
"""Makes a fresh run of the loop; called again for each restart."""


class LoopState(StrEnum):
    RUNNING = "running"
    BACKING_OFF = "backing_off"
    """It failed and waits to be restarted."""
    STOPPED = "stopped"
    """Cancelled: the service is shutting down."""


class LoopExited(RuntimeError):
    """A loop returned. Loops run until cancelled, so a return means it stopped doing its job."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: initial_s, then times factor after each failure in a row, up to max_s."""

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    healthy_s: float = 60.0
    """A run at least this long counts as healthy: the next failure starts again at initial_s."""

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s and self.factor >= 1 and self.healthy_s > 0):
            raise ValueError("need 0 < initial_s <= max_s, factor >= 1 and healthy_s > 0")

    def delay(self, failures: int) -> float:
        """Seconds before the restart that follows the n-th failure in a row (n >= 1)."""
        try:
            return min(self.max_s, self.initial_s * self.factor ** (failures - 1))
        except OverflowError:  # a long outage: the power outgrew a float long after the cap
            return self.max_s


@dataclass(slots=True)
class LoopStatus:
    """What /healthz shows of one loop."""

    state: LoopState = LoopState.RUNNING
    restarts: int = 0
    last_error: str | None = None
    """The exception's type only: /healthz is unauthenticated, and a message may quote data."""
    last_error_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        error = None
        if self.last_error is not None and self.last_error_at is not None:
            error = {"type": self.last_error, "at": self.last_error_at.isoformat()}
        return {"state": self.state.value, "restarts": self.restarts, "last_error": error}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Supervisor:
    """Runs named loops until `aclose`, restarting each that fails; owns their tasks."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        """`sleep` waits out a backoff and `clock` times a run (tests inject both); `wall`
        stamps errors for health."""
        self._backoff = backoff or Backoff()
        self._sleep, self._clock, self._wall = sleep, clock, wall
        self._loops: dict[str, LoopStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def start(self, name: str, loop: Loop) -> None:
        if self._closed:
            raise RuntimeError("the supervisor is closed")
        if name in self._loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        status = self._loops[name] = LoopStatus()
        task = asyncio.create_task(self._supervise(status, name, loop), name=f"loop {name}")
        # Not a `finally` in _supervise: a task cancelled before its first step never runs it.
        task.add_done_callback(lambda _: setattr(status, "state", LoopState.STOPPED))
        self._tasks[name] = task

    def loops(self) -> dict[str, LoopStatus]:
        """A snapshot of every loop's status."""
        return {name: replace(s) for name, s in self._loops.items()}

    @property
    def degraded(self) -> bool:
        return any(s.state is not LoopState.RUNNING for s in self._loops.values())

    def health(self) -> dict[str, dict[str, Any]]:
        return {name: s.as_dict() for name, s in self._loops.items()}

    async def aclose(self) -> None:
        """Cancels every loop and waits for each to end (a loop's own cleanup runs)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, status: LoopStatus, name: str, loop: Loop) -> None:
        failures = 0
        while True:
            status.state = LoopState.RUNNING
            began = self._clock()
            error = await self._run(loop)
            if self._clock() - began >= self._backoff.healthy_s:
                failures = 0
            failures += 1
            delay = self._backoff.delay(failures)
            status.state = LoopState.BACKING_OFF
            status.last_error, status.last_error_at = type(error).__name__, self._wall()
            log.error(
                "background loop failed; restarting after a backoff",
                exc_info=error,
                extra={"loop": name, "failures": failures, "backoff_s": delay},
            )
            await self._sleep(delay)
            status.restarts += 1

    async def _run(self, loop: Loop) -> BaseException:
        """One run of the loop, to its end; returns why it ended. Shutdown propagates."""
        try:
            await loop()
        except asyncio.CancelledError as e:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            return e  # raised by the loop itself (a leaked inner timeout), not a shutdown
        except Exception as e:
            return e
        return LoopExited("the loop returned")
