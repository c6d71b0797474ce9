"""LiveSession: a live tap's items reach the session in arrival order on one worker thread; video
past the backlog is dropped and counted, audio and ticks never are; the end comes after them."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from rapport.frames import AudioChunk, Utterance, VideoFrame
from rapport.live import EndStream, LiveSession, Tick


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

    def push_audio(self, c: AudioChunk) -> None:
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


def test_items_in_order_video_dropped_past_the_backlog_and_nothing_after_the_end() -> None:
    session = Recording()
    opened = threading.Event()

    def open_session() -> Recording:  # the session loads its models meanwhile
        opened.wait(10)
        return session

    live = LiveSession(open_session, max_backlog=2, name="live-test")  # type: ignore[arg-type]
    live.start()
    for i in range(5):  # nothing is taken yet: only 2 frames may wait
        live.put(_frame(i * 0.25))
    live.put(AudioChunk("alice", 0.0, np.zeros(1600, np.float32)))
    live.put(Utterance("alice", 1.0, 1.0, "hello"))
    live.put(Tick(1.25))
    live.put(EndStream("video", "alice"))
    live.finish(2.0)
    live.put(Tick(3.0))  # after the end: ignored
    session.release.set()
    opened.set()
    assert live.join(10)
    assert live.error is None and live.summary == "summary"
    assert [name for name, _ in session.calls] == [
        "video",
        "video",
        "audio",
        "text",
        "tick",
        "end",
        "finish",
    ]
    assert live.dropped_video == 3
    assert session.calls[-1][1] == (2.0, {"video_frames_behind_session": 3})
    assert session.threads == {"live-test"}


def test_a_failing_session_is_reported_not_raised() -> None:
    class Broken(Recording):
        def push_audio(self, c: AudioChunk) -> None:
            raise RuntimeError("model crashed")

    session = Broken()
    session.release.set()
    live = LiveSession(lambda: session, max_backlog=4, name="live-broken")  # type: ignore[arg-type, return-value]
    live.start()
    live.put(AudioChunk("alice", 0.0, np.zeros(160, np.float32)))
    assert live.join(10)
    assert isinstance(live.error, RuntimeError) and live.summary is None
