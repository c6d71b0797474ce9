"""A live session: items from a live tap (the LiveKit bot) pushed into the spine's Session on one
worker thread, in arrival order. The tap never waits for a model: past `max_backlog` queued video
frames, new ones are dropped (and counted); audio, text and clock ticks are never dropped (a VAD
needs every chunk, a tick carries revocations' purges)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rapport.events.schema import Event
from rapport.frames import AudioChunk, Utterance, VideoFrame
from rapport.session import Session

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Tick:
    t: float


@dataclass(slots=True, frozen=True)
class EndStream:
    """A camera ("video") or microphone ("audio") of `stream` stopped: muted, unpublished,
    unsubscribed, or its participant left."""

    kind: str
    stream: str


@dataclass(slots=True, frozen=True)
class _Finish:
    t: float


LiveItem = VideoFrame | AudioChunk | Utterance | Tick | EndStream


class LiveSession:
    def __init__(
        self, open_session: Callable[[], Session], *, max_backlog: int, name: str
    ) -> None:
        """`open_session` runs on the worker thread (a session loads models) and must start it."""
        self._open = open_session
        self._max_backlog = max_backlog
        self._queue: queue.SimpleQueue[LiveItem | _Finish] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._video_queued = 0
        self._finishing = False
        self.dropped_video = 0
        self.summary: Event | None = None
        self.error: BaseException | None = None
        self.session: Session | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: LiveItem) -> None:
        with self._lock:
            if self._finishing:
                return
            if isinstance(item, VideoFrame):
                if self._video_queued >= self._max_backlog:
                    self.dropped_video += 1
                    return
                self._video_queued += 1
        self._queue.put(item)

    def finish(self, t: float) -> None:
        """End at media time `t`: items queued before are processed, then the summary goes out."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        self._queue.put(_Finish(t))

    def join(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def _work(self) -> None:
        try:
            self.session = session = self._open()
            while True:
                item = self._queue.get()
                if isinstance(item, VideoFrame):
                    with self._lock:
                        self._video_queued -= 1
                    session.push_video(item)
                elif isinstance(item, AudioChunk):
                    session.push_audio(item)
                elif isinstance(item, Utterance):
                    session.push_utterance(item)
                elif isinstance(item, Tick):
                    session.tick(item.t)
                elif isinstance(item, EndStream):
                    session.end_stream(item.kind, item.stream)
                else:
                    self.summary = session.finish(
                        item.t, {"video_frames_behind_session": self.dropped_video}
                    )
                    return
        except BaseException as e:  # reported by the owner; the service goes on
            self.error = e
        finally:
            self.done.set()
