"""When to (re)try a webhook delivery: the Standard Webhooks / Svix schedule with jitter."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DELTA_SECONDS = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")

# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``schedule_s[n]`` is the delay before attempt ``n`` (attempt 0 is the first delivery)."""

    schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    jitter: float = 0.2
    max_retry_after_s: float = 36000

    def __post_init__(self) -> None:
        if not self.schedule_s:
            raise ValueError("retry schedule must not be empty")
        if any(not math.isfinite(d) or d < 0 for d in self.schedule_s):
            raise ValueError("retry schedule delays must be finite and non-negative")
        if any(b < a for a, b in zip(self.schedule_s, self.schedule_s[1:], strict=False)):
            raise ValueError("retry schedule delays must not decrease")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"retry jitter must be in [0, 1), got {self.jitter}")
        if not math.isfinite(self.max_retry_after_s) or self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must be finite and non-negative")

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_s)

    def next_delay(
        self, attempts_made: int, *, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before attempt ``attempts_made``; None once the schedule is spent.

        The schedule delay is jittered by ``uniform(1 - jitter, 1 + jitter)``; a Retry-After value
        (capped at ``max_retry_after_s``) is a lower bound on the result.
        """
        if attempts_made < 0:
            raise ValueError(f"attempts_made must be >= 0, got {attempts_made}")
        if attempts_made >= len(self.schedule_s):
            return None
        delay = self.schedule_s[attempts_made]
        if self.jitter and delay:
            delay *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None and not math.isnan(retry_after):
            floor = min(max(retry_after, 0.0), self.max_retry_after_s)
            delay = max(delay, floor)
        return delay


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or garbage.

    Negative deltas and dates in the past give 0. A naive ``now`` is taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return max(float(text), 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
