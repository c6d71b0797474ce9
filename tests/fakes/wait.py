"""Waiting on a condition with a deadline, for tests that watch a real server or thread: a test
that sleeps a guessed time and hopes is slow when the guess is long and flaky when it is short."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str],
    *,
    interval: float = 0.05,
) -> T:
    """Polls `predicate` until it returns something truthy, and returns that. Past `timeout`
    seconds raises AssertionError naming `what`: the condition in words, or a function that
    says it (with what was last seen) when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        time.sleep(interval)


async def wait_until_async(
    probe: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str | Callable[[], str],
    *,
    interval: float = 0.02,
) -> T:
    """`wait_until` for a test on an event loop: `probe` may be a plain function or a coroutine
    function, and the loop runs between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        await asyncio.sleep(interval)
