"""The supervisor of background loops: a failing loop is logged by name, restarted with a capped
exponential backoff that resets after a healthy run, reported in health, and stopped without a
restart at shutdown. Backoff sleeps and the clock are injected: no test waits on wall time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from rapport.service.supervise import Backoff, LoopExited, LoopState, Supervisor

WALL = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Script:
    """A loop factory that fails `failures` times, then runs until cancelled."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.running = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"attempt {self.calls}")
        self.running.set()
        await asyncio.Event().wait()  # runs until cancelled


class Sleeps:
    """An injected backoff sleep: records each delay and the supervisor's view during it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.seen: list[tuple[str, bool]] = []
        self.supervisor: Supervisor | None = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.supervisor is not None:
            s = self.supervisor.loops()["webhooks"]
            self.seen.append((s.state.value, self.supervisor.degraded))
        await asyncio.sleep(0)


def supervised(
    backoff: Backoff, sleeps: Sleeps, clock: Callable[[], float] = lambda: 0.0
) -> Supervisor:
    sup = Supervisor(backoff, sleep=sleeps, clock=clock, wall=lambda: WALL)
    sleeps.supervisor = sup
    return sup


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))  # a deadline, in case a loop never ends


def test_a_loop_that_fails_three_times_is_restarted_with_backoff_then_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="rapport.service.supervise")

    async def main() -> None:
        script, sleeps = Script(failures=3), Sleeps()
        sup = supervised(Backoff(initial_s=1, factor=2, max_s=60), sleeps)
        sup.start("webhooks", script)
        await script.running.wait()
        status = sup.loops()["webhooks"]
        assert sleeps.delays == [1, 2, 4]
        assert sleeps.seen == [("backing_off", True)] * 3
        assert script.calls == 4
        assert status.state is LoopState.RUNNING and status.restarts == 3
        assert status.last_error == "ConnectionError" and status.last_error_at == WALL
        assert not sup.degraded
        assert sup.health() == {
            "webhooks": {
                "state": "running",
                "restarts": 3,
                "last_error": {"type": "ConnectionError", "at": WALL.isoformat()},
            }
        }
        await sup.aclose()
        assert sup.loops()["webhooks"].state is LoopState.STOPPED
        assert script.calls == 4  # cancellation is no failure: nothing was restarted

    run(main)
    failed = [r for r in caplog.records if r.getMessage().startswith("background loop failed")]
    assert [(r.levelno, r.__dict__["loop"], r.__dict__["backoff_s"]) for r in failed] == [
        (logging.ERROR, "webhooks", 1),
        (logging.ERROR, "webhooks", 2),
        (logging.ERROR, "webhooks", 4),
    ]
    assert [str(r.exc_info[1]) for r in failed if r.exc_info] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
    ]


def test_backoff_is_capped_and_resets_after_a_healthy_run() -> None:
    now = [0.0]
    # How long (clock seconds) each run lasts before it fails: the fourth one ran healthily.
    durations = [0.0, 0.0, 0.0, 120.0, 0.0, 0.0]
    done = asyncio.Event()

    async def loop() -> None:
        if not durations:
            done.set()
            await asyncio.Event().wait()
        now[0] += durations.pop(0)
        raise OSError("database went away")

    async def main() -> None:
        sleeps = Sleeps()
        sup = supervised(
            Backoff(initial_s=1, factor=2, max_s=3, healthy_s=60), sleeps, clock=lambda: now[0]
        )
        sup.start("webhooks", loop)
        await done.wait()
        assert sleeps.delays == [1, 2, 3, 1, 2, 3]
        assert sup.loops()["webhooks"].restarts == 6
        await sup.aclose()

    run(main)


def test_backoff_delays() -> None:
    b = Backoff(initial_s=0.5, factor=3, max_s=10)
    assert [b.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10]
    assert b.delay(100_000) == 10  # a day-long outage does not overflow the float
    for bad in (
        {"initial_s": 0},
        {"factor": 0.5},
        {"initial_s": 2, "max_s": 1},
        {"healthy_s": 0},
    ):
        with pytest.raises(ValueError):
            Backoff(**bad)  # type: ignore[arg-type]


def test_shutdown_while_backing_off_stops_without_a_restart() -> None:
    async def main() -> None:
        script = Script(failures=1_000)
        backing_off = asyncio.Event()

        async def sleep(delay: float) -> None:
            backing_off.set()
            await asyncio.Event().wait()  # a long backoff, interrupted by the shutdown

        sup = Supervisor(Backoff(), sleep=sleep)
        sup.start("retention", script)
        await backing_off.wait()
        assert sup.loops()["retention"].state is LoopState.BACKING_OFF and sup.degraded
        await sup.aclose()
        assert sup.loops()["retention"].state is LoopState.STOPPED
        assert script.calls == 1

    run(main)


def test_a_loop_that_returns_is_restarted_as_a_failure() -> None:
    async def main() -> None:
        calls = 0
        running = asyncio.Event()

        async def loop() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                return  # loops run until cancelled: returning means it stopped working
            running.set()
            await asyncio.Event().wait()

        sleeps = Sleeps()
        sup = supervised(Backoff(initial_s=2), sleeps)
        sup.start("webhooks", loop)
        await running.wait()
        status = sup.loops()["webhooks"]
        assert sleeps.delays == [2]
        assert (status.restarts, status.last_error) == (1, LoopExited.__name__)
        await sup.aclose()

    run(main)


def test_a_cancellation_raised_by_the_loop_itself_is_a_failure_not_a_shutdown() -> None:
    async def main() -> None:
        script = Script(failures=1, error=ConnectionError)
        calls = 0

        async def loop() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise asyncio.CancelledError  # e.g. a library's internal timeout leaking out
            await script()

        sleeps = Sleeps()
        sup = supervised(Backoff(), sleeps)
        sup.start("webhooks", loop)
        await script.running.wait()
        assert sup.loops()["webhooks"].restarts == 2
        assert sup.loops()["webhooks"].last_error == "ConnectionError"
        await sup.aclose()

    run(main)


def test_names_are_unique_and_a_closed_supervisor_starts_nothing() -> None:
    async def main() -> None:
        sup = Supervisor()
        script = Script(failures=0)
        sup.start("webhooks", script)
        with pytest.raises(ValueError, match="webhooks"):
            sup.start("webhooks", script)
        await sup.aclose()
        with pytest.raises(RuntimeError):
            sup.start("retention", script)
        assert sup.health() == {"webhooks": {"state": "stopped", "restarts": 0, "last_error": None}}

    run(main)
