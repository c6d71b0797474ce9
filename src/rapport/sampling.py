"""Adaptive sampling: when the session falls behind the media, the bot samples cameras less often
before the live queue drops anything, and samples them as configured again once it has caught up.

Two rates, by role: the speakers' and the listeners'. Going down, listeners' rate halves first, to
the floor; then the speakers'. Coming back, the speakers' doubles first, to `video.sample_fps`;
then the listeners' (the listeners' first when nobody speaks). So every rate lies in
[floor, sample_fps] and a speaker's rate is never below a listener's. Who speaks is what the
session's VAD says (`Session.speaking`), handed over by the live loop: the session never reaches
the tap or this class.

Behind: the oldest frame not yet through the session is older than `livekit.lag_budget_s`, or more
than half of `livekit.max_backlog` frames wait. Caught up: at most half the budget and a quarter of
the backlog (hysteresis: in between, rates hold). Going down, by time or by count:
- by time: once behind for a whole budget (a shorter stall, e.g. a window's emission, drains by
  itself), the lag is looked at every budget, and a step comes when the waiting frames have not
  gone down since the last look (a lag that drains needs no further step, although its oldest
  frame still ages; one that levels off above the budget does); never before the last step could
  show (a budget plus the lowered rate's old interval, when the cameras reach their next due
  times);
- by count: each time the waiting frames pass a further eighth of the backlog above half (5/8,
  3/4, 7/8) and have grown an eighth since the last step, at once (at 32 cameras and 4 fps the
  backlog fills in half a second, quicker than steps by time, and the listeners-first order must
  hold all the same);
- a full backlog (a frame about to be dropped) takes every rate to the floor first: nothing is
  dropped while a rate can still go down.
Coming back: a step up after `livekit.restore_s` caught up, and each further step after as long
again; only a lag that lasts a budget breaks that streak, not a blip. When nobody speaks the
listeners' rate comes back first (the speakers' follows it, never below).

Time is media time (the items' own), so tests run it on a virtual clock. Not thread-safe: the
live queue calls the mutators under its lock; `rate` reads one immutable snapshot, from any thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rapport.config import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Rates:
    """The rates in force now (one object, swapped whole, so a reader never sees half a step)."""

    speaker: float
    listener: float
    speaking: frozenset[str] = frozenset()

    def of(self, participant: str) -> float:
        return self.speaker if participant in self.speaking else self.listener


class AdaptiveSampler:
    def __init__(
        self,
        *,
        sample_fps: float,
        min_sample_fps: float,
        lag_budget_s: float,
        max_backlog: int,
        restore_s: float,
    ) -> None:
        if sample_fps <= 0 or min_sample_fps <= 0 or lag_budget_s <= 0 or restore_s <= 0:
            raise ValueError("rates, budget and restore time must be > 0")
        self.max_fps = sample_fps
        self.min_fps = min(min_sample_fps, sample_fps)  # a floor above the rate is the rate
        self._budget = lag_budget_s
        self._behind_frames = max_backlog // 2
        self._calm_frames = max_backlog // 4
        self._levels = tuple(max_backlog * k // 8 for k in (5, 6, 7))
        self._eighth = max(1, max_backlog // 8)
        self._restore = restore_s
        self.rates = Rates(sample_fps, sample_fps)
        self._last_down: float | None = None
        self._calm_since: float | None = None  # the caught-up streak
        self._behind_since: float | None = None  # this lag episode
        self._uncalm_since: float | None = None  # not caught up since
        self._at_down = (0, 0)  # (count level, frames waiting) at the last step since caught up
        self._look = (0.0, 0)  # (time, frames waiting) when the lag was last looked at
        self._settle = 0.0  # the lowered rate's old interval

    @classmethod
    def from_settings(cls, settings: Settings) -> AdaptiveSampler:
        return cls(
            sample_fps=settings.video.sample_fps,
            min_sample_fps=settings.video.min_sample_fps,
            lag_budget_s=settings.livekit.lag_budget_s,
            max_backlog=settings.livekit.max_backlog,
            restore_s=settings.livekit.restore_s,
        )

    def rate(self, participant: str) -> float:
        """Frames per media second to sample of `participant`'s camera now (any thread)."""
        return self.rates.of(participant)

    @property
    def at_floor(self) -> bool:
        """No rate can go lower."""
        return self.rates.speaker <= self.min_fps and self.rates.listener <= self.min_fps

    def behind(self, frames: int, age_s: float) -> bool:
        return age_s > self._budget or frames > self._behind_frames

    def caught_up(self, frames: int, age_s: float) -> bool:
        return age_s <= self._budget / 2 and frames <= self._calm_frames

    def forget(self, person: str) -> None:
        """Erasure or revocation: the person is no longer named here (the next session call
        would refresh it too, but none may come)."""
        if person in self.rates.speaking:
            self.set_speaking(self.rates.speaking - {person})

    def set_speaking(self, speaking: frozenset[str]) -> None:
        if speaking != self.rates.speaking:
            r = self.rates
            self.rates = Rates(r.speaker, r.listener, speaking)

    def observe(self, now: float, frames: int, age_s: float) -> None:
        """The queue at media time `now`: `frames` video frames waiting, the oldest frame not yet
        through the session `age_s` old."""
        if self.behind(frames, age_s):
            if self._behind_since is None:
                self._behind_since, self._look = now, (now, frames)
            since = None if self._last_down is None else now - self._last_down
            level = sum(frames > n for n in self._levels)
            # A further eighth of the backlog since the last step, whatever made that step.
            by_count = level > self._at_down[0] and frames >= self._at_down[1] + self._eighth
            # Once a budget into the lag, and once a lowered rate could show (when the cameras
            # reach their next due times, one old interval on): a look every budget, and a step
            # when the waiting frames have not gone down since the last look.
            by_time = False
            if (
                now - self._behind_since >= self._budget
                and (since is None or since >= self._budget + self._settle)
                and now - self._look[0] >= self._budget
            ):
                by_time = frames >= self._look[1]
                self._look = (now, frames)
            if (by_count or by_time) and self._step_down():
                self._last_down, self._at_down = now, (level, frames)
                self._look = (now, frames)
                self._calm_since = None
        else:
            self._behind_since = None
        if self.caught_up(frames, age_s):
            self._uncalm_since, self._at_down = None, (0, 0)  # levels count again from here
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self._restore:
                self._step_up()
                self._calm_since = now  # the next step after as long again
        else:
            if self._uncalm_since is None:
                self._uncalm_since = now
            if now - self._uncalm_since >= self._budget:
                self._calm_since = None

    def to_floor(self, now: float) -> None:
        """A frame is about to be dropped: every rate goes to the floor first."""
        if not self.at_floor:
            log.warning("live queue full: every camera sampled at the floor", extra={"t": now})
            self.rates = Rates(self.min_fps, self.min_fps, self.rates.speaking)
        self._last_down, self._calm_since = now, None

    def _step_down(self) -> bool:
        r = self.rates
        if r.listener > self.min_fps:
            self.rates = Rates(r.speaker, max(self.min_fps, r.listener / 2), r.speaking)
            self._settle = 1.0 / r.listener
        elif r.speaker > self.min_fps:
            self.rates = Rates(max(self.min_fps, r.speaker / 2), r.listener, r.speaking)
            self._settle = 1.0 / r.speaker
        else:
            return False
        log.info(
            "behind the media: sampling less",
            extra={"speaker_fps": self.rates.speaker, "listener_fps": self.rates.listener},
        )
        return True

    def _step_up(self) -> None:
        r = self.rates
        if not r.speaking and r.listener < self.max_fps:  # nobody to favour
            listener = min(self.max_fps, r.listener * 2)
            self.rates = Rates(max(r.speaker, listener), listener, r.speaking)
        elif r.speaker < self.max_fps:
            self.rates = Rates(min(self.max_fps, r.speaker * 2), r.listener, r.speaking)
        elif r.listener < self.max_fps:
            self.rates = Rates(r.speaker, min(self.max_fps, r.listener * 2), r.speaking)
        else:
            return
        log.info(
            "caught up: sampling more",
            extra={"speaker_fps": self.rates.speaker, "listener_fps": self.rates.listener},
        )


class Pacer:
    """Which of a camera's arriving frames to take at a rate that may change between frames: the
    first frame at or after each due time; a late frame moves the due times on, never a burst."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due = 0.0

    def take(self, t: float, fps: float) -> bool:
        if t < self._due:
            return False
        interval = 1.0 / fps
        nxt = self._due + interval  # on the grid; past a gap, one interval from this frame
        self._due = nxt if t < nxt else t + interval
        return True
