"""Property-based: the window aggregator alone, fed presence, frames, speech (anywhere: across
window ends, into a short last window, past the end of the media), unattributed speech and text,
with people forgotten at any moment, the watermark moving on and the end anywhere. Each closed
window is checked against a model: contiguous on one timeline; the last one ends at the media's
end; exactly the people who contributed since they were last forgotten; speaking shares and the
silence share computed from the speech spans as the model computes them, all in [0, 1]."""

from __future__ import annotations

import math

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rapport.analytics.windows import WindowAggregator, WindowResult
from rapport.config import Settings, WindowSettings
from rapport.frames import FrameSummary, SpeechSegment, TextScore

PEOPLE = ("ann", "bob", "cy")
people = st.sampled_from(PEOPLE)
times = st.integers(0, 400).map(lambda k: k / 10)  # 0..40 s in tenths
lengths = st.integers(0, 80).map(lambda k: k / 10)


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


class WindowsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.done = False

    @initialize(
        w=st.sampled_from([1.0, 2.0, 5.0]),
        duration=st.one_of(st.none(), st.integers(10, 300).map(lambda k: k / 10)),
    )
    def open(self, w: float, duration: float | None) -> None:
        self.w, self.duration = w, duration
        self.agg = WindowAggregator(Settings(window=WindowSettings(seconds=w)), duration)
        self.watermark = 0.0
        self.closed: list[WindowResult] = []
        # Everything fed: (kind, who, start, end, position, windows closed by then).
        self.fed: list[tuple[str, str | None, float, float, int, int]] = []
        # Where in `fed` each person was last forgotten.
        self.forgotten: dict[str, int] = {}

    def _feed(self, kind: str, who: str | None, start: float, end: float) -> None:
        # With how many windows were closed then: parts for those were late, and are dropped.
        self.fed.append((kind, who, start, end, len(self.fed), len(self.closed)))

    @precondition(lambda self: not self.done)
    @rule(who=people, start=times, length=lengths)
    def presence(self, who: str, start: float, length: float) -> None:
        self.agg.add_presence(who, start, start + length)
        self._feed("presence", who, start, start + length)

    @precondition(lambda self: not self.done)
    @rule(who=st.one_of(st.none(), people), t=times, faces=st.integers(0, 2))
    def video(self, who: str | None, t: float, faces: int) -> None:
        v = 0.5 if faces else None
        self.agg.add_frame(FrameSummary(who, t, faces, 0.8 if faces else 0.0, v, v, v))
        self._feed("frame", who, t, t)

    @precondition(lambda self: not self.done)
    @rule(who=people, start=times, length=lengths)
    def speech(self, who: str, start: float, length: float) -> None:
        self.agg.add_speech(SpeechSegment(who, start, start + length, 0.2, 0.9, 0.1))
        self._feed("speech", who, start, start + length)

    @precondition(lambda self: not self.done)
    @rule(start=times, length=lengths)
    def room_speech(self, start: float, length: float) -> None:
        self.agg.add_room_speech(start, start + length)
        self._feed("speech", None, start, start + length)

    @precondition(lambda self: not self.done)
    @rule(who=people, start=times, length=lengths)
    def text(self, who: str, start: float, length: float) -> None:
        self.agg.add_text(TextScore(who, start, start + length, 0.5, 0.1, 0.9))
        self._feed("text", who, start, start + length)

    @precondition(lambda self: not self.done)
    @rule(who=people)
    def forget(self, who: str) -> None:
        self.agg.forget(who)
        self.forgotten[who] = len(self.fed)

    @precondition(lambda self: not self.done)
    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0, 7.0]))
    def advance(self, dt: float) -> None:
        self.watermark += dt
        if self.duration is not None:
            self.watermark = min(self.watermark, self.duration)
        self._close(self.agg.advance(self.watermark))

    @precondition(lambda self: not self.done)
    @rule()
    def flush(self) -> None:
        # A session ends after everything it was given (items past the end are the tap's bug).
        last_item = max((b for *_, b, _, _ in self.fed), default=0.0)
        end = self.duration if self.duration is not None else max(self.watermark, last_item) + 0.05
        self.done = True
        self._close(self.agg.flush(end))
        assert self.closed and math.isclose(self.closed[-1].end, end)

    @precondition(lambda self: self.done)
    @rule()
    def after_the_end(self) -> None:
        """Nothing happens after the end (the machine needs a rule it can always take)."""

    def teardown(self) -> None:
        if hasattr(self, "agg") and not self.done:
            self.flush()

    def _close(self, windows: list[WindowResult]) -> None:
        """Windows just closed are checked against the model as it stands now."""
        for win in windows:
            start = self.closed[-1].end if self.closed else 0.0
            assert math.isclose(win.start, start, abs_tol=1e-9) and win.end > win.start
            assert win.index == len(self.closed)
            self.closed.append(win)
            self._check(win, last=self.done and win is windows[-1])

    @invariant()
    def nothing_closes_past_the_watermark(self) -> None:
        if hasattr(self, "agg") and self.closed and not self.done:
            assert self.closed[-1].end <= self.watermark + 1e-9

    def _check(self, win: WindowResult, last: bool) -> None:
        length = win.end - win.start
        spans: list[tuple[float, float]] = []
        speech: dict[str, float] = {}
        present: set[str] = set()
        for kind, who, a, b, n, closed in self.fed:
            if who is not None and n < self.forgotten.get(who, -1):
                continue  # forgotten since: nothing of theirs counts
            if win.index < closed:
                continue  # it came late for this window
            if self.duration is not None:
                a, b = min(a, self.duration), min(b, self.duration)
            if a == b or kind == "frame":  # an instant counts in the window that holds it
                inside = win.start <= a < win.end or (last and a == win.end)
            else:
                inside = a < win.end and b > win.start
            if not inside:
                continue
            if kind == "speech" and b > a:
                lo, hi = max(a, win.start), min(b, win.end)
                if hi > lo:
                    spans.append((lo, hi))
                    if who is not None:
                        speech[who] = speech.get(who, 0.0) + hi - lo
            if who is not None:
                present.add(who)
        assert set(win.participants) == present, (win.start, set(win.participants), present)
        assert win.silence_share == pytest.approx(max(0.0, 1 - _union(spans) / length), abs=1e-6)
        assert 0.0 <= win.silence_share <= 1.0
        for who, r in win.participants.items():
            assert r.speaking_share == pytest.approx(min(1.0, speech.get(who, 0.0) / length))
            assert 0.0 <= r.engagement.score <= 1.0
        if win.evenness is not None:
            assert -1e-9 <= win.evenness <= 1.0 + 1e-9


TestWindows = WindowsMachine.TestCase
