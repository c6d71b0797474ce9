"""Waiting on a condition with a deadline, for tests that watch a real server or thread: a test
that sleeps a guessed time and hopes is slow when the guess is long and flaky when it is short."""

from __future__ import annotations

import time
from collections.abc import Callable
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
