"""LiveSession: a live tap's items reach the session in arrival order on one worker thread; what
waits is bounded (the oldest video frame, the oldest audio of a stream goes; ticks coalesce); the
end comes after everything queued before it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from prometheus_client import REGISTRY

from rapport.frames import SAMPLE_RATE, AudioChunk, Utterance, VideoFrame
from rapport.live import EndStream, LiveItem, LiveSession, Tick


class Recording:
    """Stands in for the spine's Session: records what it is given, blocking until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.release = threading.Event()
        self.threads: set[str] = set()

    def _log(self, name: str, arg: Any) -> None:
        self.release.wait(10)
        self.threads.add(threading.current_thread().name)
        self.calls.append((name, arg))

    def push_video(self, f: VideoFrame) -> None:
        self._log("video", f.t)

    def push_audio(self, c: AudioChunk, ahead: Sequence[AudioChunk] = ()) -> None:
        self._log("audio", c.t)

    def push_utterance(self, u: Utterance) -> None:
        self._log("text", u.text)

    def tick(self, t: float) -> None:
        self._log("tick", t)

    def end_stream(self, kind: str, stream: str) -> None:
        self._log("end", (kind, stream))

    def finish(self, t: float, dropped: dict[str, int]) -> str:
        self._log("finish", (t, dropped))
        return "summary"


def _frame(t: float) -> VideoFrame:
    return VideoFrame("alice", t, np.zeros((4, 4, 3), np.uint8))


def _audio(who: str, t: float, seconds: float) -> AudioChunk:
    return AudioChunk(who, t, np.zeros(round(seconds * SAMPLE_RATE), np.float32))


def _held(max_backlog: int = 2, max_audio_backlog_s: float = 10.0) -> tuple[LiveSession, Any]:
    """A started LiveSession whose worker waits in `open_session` until `opened` is set."""
    session = Recording()
    opened = threading.Event()

    def open_session() -> Recording:  # the session loads its models meanwhile
        opened.wait(10)
        return session

    live = LiveSession(
        open_session,  # type: ignore[arg-type]
        max_backlog=max_backlog,
        max_audio_backlog_s=max_audio_backlog_s,
        name="live-test",
    )
    live.start()

    def release() -> Recording:
        session.release.set()
        opened.set()
        assert live.join(10)
        return session

    return live, release


def test_items_in_order_oldest_video_dropped_past_the_backlog_and_nothing_after_the_end() -> None:
    live, release = _held(max_backlog=2)
    for i in range(5):  # nothing is taken yet: only 2 frames may wait
        live.put(_frame(i * 0.25))
    live.put(_audio("alice", 0.0, 0.1))
    live.put(Utterance("alice", 1.0, 1.0, "hello"))
    live.put(Tick(1.25))
    live.put(EndStream("video", "alice"))
    live.finish(2.0)
    live.put(Tick(3.0))  # after the end: ignored
    assert live.waiting()[-1] == EndStream("video", "alice")
    session = release()
    assert live.error is None and live.summary == "summary"
    assert session.calls == [
        ("video", 0.75),
        ("video", 1.0),
        ("audio", 0.0),
        ("text", "hello"),
        ("tick", 1.25),
        ("end", ("video", "alice")),
        (
            "finish",
            (2.0, {"video_frames_behind_session": 3, "audio_chunks_behind_session": 0}),
        ),
    ]
    assert live.dropped_video == 3
    assert session.threads == {"live-test"}


def test_what_waits_and_what_is_dropped_are_metrics() -> None:
    def depth() -> float:
        return REGISTRY.get_sample_value("rapport_live_queue_items") or 0.0

    def dropped() -> float:
        labels = {"stage": "live_queue", "reason": "video_backlog"}
        return REGISTRY.get_sample_value("rapport_items_dropped_total", labels) or 0.0

    depth0, dropped0 = depth(), dropped()
    live, release = _held(max_backlog=2)
    for i in range(5):
        live.put(_frame(float(i)))
    live.put(Tick(5.0))
    live.put(Tick(6.0))  # coalesced with the one before
    assert depth() - depth0 == len(live.waiting()) == 3
    assert dropped() - dropped0 == live.dropped_video == 3
    live.finish(7.0)
    release()
    assert depth() == depth0  # taken, or let go of at the end


def test_a_full_video_backlog_drops_its_oldest_frame_not_the_newest() -> None:
    """Regression: the newest frame was refused when `max_backlog` frames waited."""
    live, release = _held(max_backlog=2)
    for i in range(5):
        live.put(_frame(float(i)))
    assert [i.t for i in live.waiting() if isinstance(i, VideoFrame)] == [3.0, 4.0]
    live.finish(5.0)
    session = release()
    assert [t for name, t in session.calls if name == "video"] == [3.0, 4.0]
    assert live.dropped_video == 3


def test_audio_past_its_bound_drops_that_streams_oldest_chunks_only() -> None:
    live, release = _held(max_audio_backlog_s=0.25)
    for i in range(4):  # alice: 4 x 0.1 s; bob: 0.2 s, within the bound
        live.put(_audio("alice", i * 0.1, 0.1))
    live.put(_audio("bob", 0.0, 0.2))
    live.put(_audio("alice", 5.0, 0.5))  # longer than the bound alone: kept, the rest goes
    live.finish(6.0)
    session = release()
    assert [(n, t) for n, t in session.calls if n == "audio"] == [("audio", 0.0), ("audio", 5.0)]
    assert live.dropped_audio == 4
    assert session.calls[-1][1][1]["audio_chunks_behind_session"] == 4


def test_ticks_coalesce_but_never_move_before_queued_media() -> None:
    live, release = _held(max_backlog=1)
    live.put(Tick(1.0))
    live.put(Tick(2.0))  # replaces the waiting tick
    live.put(_frame(2.1))
    live.put(Tick(3.0))  # after the frame: kept apart
    live.put(_frame(3.1))  # drops frame 2.1: ticks 2.0 and 3.0 meet, 3.0 stays
    live.put(Tick(4.0))
    live.finish(5.0)
    session = release()
    assert [c for c in session.calls if c[0] != "finish"] == [
        ("tick", 3.0),
        ("video", 3.1),
        ("tick", 4.0),
    ]


def test_a_failing_session_is_reported_not_raised() -> None:
    class Broken(Recording):
        def push_audio(self, c: AudioChunk, ahead: Sequence[AudioChunk] = ()) -> None:
            raise RuntimeError("model crashed")

    session = Broken()
    session.release.set()
    live = LiveSession(
        lambda: session,  # type: ignore[arg-type, return-value]
        max_backlog=4,
        max_audio_backlog_s=1.0,
        name="live-broken",
    )
    live.start()
    live.put(_audio("alice", 0.0, 0.01))
    assert live.join(10)
    assert isinstance(live.error, RuntimeError) and live.summary is None
    live.put(_frame(1.0))  # refused: no one would ever take it
    assert live.waiting() == []


# -- the queue alone, against a model --------------------------------------------------------------

Rep = tuple[Any, ...]
"""An item as the session sees it: ("video", t), ("audio", stream, t, samples), ("text", text),
("tick", t), ("end", kind, stream), ("finish", t, dropped). Every put has its own t."""

WAIT_S = 10.0


class Stepped:
    """A fake session the test steps one call at a time: a call announces itself (`entered`),
    waits for a permit, records, then signals `recorded`."""

    def __init__(self) -> None:
        self.calls: list[Rep] = []
        self.entered = threading.Semaphore(0)
        self.permits = threading.Semaphore(0)
        self.recorded = threading.Semaphore(0)

    def _log(self, rep: Rep) -> None:
        self.entered.release()
        if not self.permits.acquire(timeout=WAIT_S):
            raise TimeoutError("the test never released this call")
        self.calls.append(rep)
        self.recorded.release()

    def push_video(self, f: VideoFrame) -> None:
        self._log(("video", f.t))

    def push_audio(self, c: AudioChunk, ahead: Sequence[AudioChunk] = ()) -> None:
        self._log(("audio", c.participant, c.t, len(c.samples)))

    def push_utterance(self, u: Utterance) -> None:
        self._log(("text", u.text))

    def tick(self, t: float) -> None:
        self._log(("tick", t))

    def end_stream(self, kind: str, stream: str) -> None:
        self._log(("end", kind, stream))

    def finish(self, t: float, dropped: dict[str, int]) -> str:
        self._log(("finish", t, dropped))
        return "summary"


def _rep(item: LiveItem) -> Rep:
    if isinstance(item, VideoFrame):
        return ("video", item.t)
    if isinstance(item, AudioChunk):
        return ("audio", item.participant, item.t, len(item.samples))
    if isinstance(item, Utterance):
        return ("text", item.text)
    if isinstance(item, Tick):
        return ("tick", item.t)
    return ("end", item.kind, item.stream)


STREAMS = st.sampled_from(["alice", "bob", "carol"])


class LiveQueue(RuleBasedStateMachine):
    """Arbitrary puts, finishes and worker steps; the waiting items must always equal a plain list
    model of the rules, and the rules' invariants must hold of the real queue."""

    @initialize(
        max_backlog=st.integers(1, 4),
        bound_samples=st.sampled_from([160, 320, 800]),
    )
    def start(self, max_backlog: int, bound_samples: int) -> None:
        self.max_backlog, self.bound = max_backlog, bound_samples
        self.session = Stepped()
        self.live = LiveSession(
            lambda: self.session,  # type: ignore[arg-type, return-value]
            max_backlog=max_backlog,
            max_audio_backlog_s=bound_samples / SAMPLE_RATE,
            name="live-model",
        )
        self.live.start()
        self.model: list[Rep] = []  # waiting, oldest first (with the finish, once put)
        self.in_hand: Rep | None = None  # the item inside a session call now
        self.expected: list[Rep] = []  # calls completed
        self.puts: list[Rep] = []  # every accepted media put, in order
        self.dropped = {"video": 0, "audio": 0}
        self.finished = False
        self.clock = 0

    # -- the model ------------------------------------------------------------------------------

    def _drop_at(self, i: int) -> None:
        del self.model[i]
        if 0 < i < len(self.model) and self.model[i - 1][0] == self.model[i][0] == "tick":
            del self.model[i - 1]

    def _model_put(self, rep: Rep) -> None:
        if rep[0] == "tick" and self.model and self.model[-1][0] == "tick":
            self.model[-1] = rep
        else:
            self.model.append(rep)
        if rep[0] == "video":
            videos = [i for i, r in enumerate(self.model) if r[0] == "video"]
            if len(videos) > self.max_backlog:
                self._drop_at(videos[0])
                self.dropped["video"] += 1
        elif rep[0] == "audio":
            while True:
                mine = [i for i, r in enumerate(self.model) if r[:2] == rep[:2]]
                if len(mine) < 2 or sum(self.model[i][3] for i in mine) <= self.bound:
                    break
                self._drop_at(mine[0])
                self.dropped["audio"] += 1

    def _counts(self) -> dict[str, int]:
        return {
            "video_frames_behind_session": self.dropped["video"],
            "audio_chunks_behind_session": self.dropped["audio"],
        }

    def _worker_takes(self) -> None:
        """The worker takes the oldest waiting item, if any, and blocks inside its call."""
        if self.in_hand is None and self.model:
            assert self.session.entered.acquire(timeout=WAIT_S)
            self.in_hand = self.model.pop(0)

    def _put(self, item: LiveItem) -> None:
        self.clock += 1
        self.live.put(item)
        if not self.finished:
            if isinstance(item, (VideoFrame, AudioChunk)):
                self.puts.append(_rep(item))
            self._model_put(_rep(item))
            self._worker_takes()

    # -- rules ----------------------------------------------------------------------------------

    @rule()
    def video(self) -> None:
        self._put(_frame(float(self.clock)))

    @rule(stream=STREAMS, samples=st.integers(1, 500))
    def audio(self, stream: str, samples: int) -> None:
        self._put(AudioChunk(stream, float(self.clock), np.zeros(samples, np.float32)))

    @rule(stream=STREAMS)
    def text(self, stream: str) -> None:
        self._put(Utterance(stream, 0.0, 0.0, f"line {self.clock}"))

    @rule()
    def tick(self) -> None:
        self._put(Tick(float(self.clock)))

    @rule(kind=st.sampled_from(["video", "audio"]), stream=STREAMS)
    def end_stream(self, kind: str, stream: str) -> None:
        self._put(EndStream(kind, stream))

    @rule()
    def finish(self) -> None:
        self.clock += 1
        self.live.finish(float(self.clock))
        if not self.finished:
            self.finished = True
            self.model.append(("finish", float(self.clock)))
            self._worker_takes()

    @precondition(lambda self: self.in_hand is not None)
    @rule(steps=st.integers(1, 6))
    def work(self, steps: int) -> None:
        for _ in range(steps):
            if self.in_hand is None:
                return
            self.session.permits.release()
            assert self.session.recorded.acquire(timeout=WAIT_S)
            done = self.in_hand
            if done[0] == "finish":  # the summary's counts are the model's
                done = (*done, self._counts())
            self.expected.append(done)
            self.in_hand = None
            self._worker_takes()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def waiting_is_the_model(self) -> None:
        waiting = [_rep(i) for i in self.live.waiting()]
        assert waiting == [r for r in self.model if r[0] != "finish"]
        assert self.session.calls == self.expected  # arrival order of the kept items
        assert (self.live.dropped_video, self.live.dropped_audio) == (
            self.dropped["video"],
            self.dropped["audio"],
        )

    @invariant()
    def waiting_is_bounded_and_newest(self) -> None:
        waiting = [_rep(i) for i in self.live.waiting()]
        videos = [r for r in waiting if r[0] == "video"]
        put_videos = [r for r in self.puts if r[0] == "video"]
        assert len(videos) <= self.max_backlog
        assert videos == put_videos[len(put_videos) - len(videos) :]  # the newest ones
        for stream in {r[1] for r in waiting if r[0] == "audio"}:
            mine = [r for r in waiting if r[:2] == ("audio", stream)]
            assert sum(r[3] for r in mine) <= self.bound or len(mine) == 1
            put = [r for r in self.puts if r[:2] == ("audio", stream)]
            assert mine == put[len(put) - len(mine) :]
        kinds = [r[0] for r in waiting]
        assert all(a != "tick" or b != "tick" for a, b in itertools.pairwise(kinds))

    def teardown(self) -> None:
        if not hasattr(self, "live"):
            return
        self.finish()
        rest = ([self.in_hand] if self.in_hand else []) + self.model
        self.session.permits.release(len(rest) + 100)  # even if the queue strayed from the model
        assert self.live.join(WAIT_S) and self.live.error is None
        rest = [(*r, self._counts()) if r[0] == "finish" else r for r in rest]
        assert self.session.calls == [*self.expected, *rest]
        assert self.session.calls[-1][0] == "finish"  # last, whenever it was put
        assert self.live.summary == "summary"


TestLiveQueue = LiveQueue.TestCase


def test_wait_idle_returns_once_every_item_put_has_been_through_the_session() -> None:
    session = Recording()
    live = LiveSession(lambda: session, max_backlog=4, max_audio_backlog_s=10.0, name="live-idle")  # type: ignore[arg-type, return-value]
    live.start()
    for i in range(3):
        live.put(_frame(i * 0.25))
    assert not live.wait_idle(0.05)  # the session holds the first item
    session.release.set()
    assert live.wait_idle(10)
    assert [name for name, _ in session.calls] == ["video"] * 3
    live.finish(1.0)
    assert live.join(10) and live.wait_idle(0)
