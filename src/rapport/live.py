"""A live session: items from a live tap (the LiveKit bot) pushed into the spine's Session on one
worker thread, in arrival order. The tap never waits for a model, and what waits is bounded:

- video: past `max_backlog` waiting frames, the OLDEST waiting frame is dropped (real-time video
  keeps the newest);
- audio: past `max_audio_backlog_s` seconds waiting for one stream, that stream's oldest chunks are
  dropped (the newest chunk always stays; the VAD starts a new stream at the gap);
- clock ticks: a tick put while the newest waiting item is a tick replaces it, and a drop that
  leaves two ticks side by side removes the earlier one; a tick never moves before earlier media;
- text and stream ends are kept (they come a few a second at most).

Drops are counted (`dropped_video`, `dropped_audio`) and handed to the session's summary; the
drops and the items waiting also go to the process's metrics (rapport/metrics.py).

With a `sampler` (rapport/sampling.py), the queue tells it after every put and take how far the
session lags the media (frames waiting; media age of the oldest frame not yet through the session,
the one in hand included) and, after every session call, who is speaking (`Session.speaking`); a
frame is dropped only after the sampler has taken every rate to its floor.
`finish(t)` ends after everything queued before it; nothing is accepted after it. `suspend(t)` ends
the same way but hands the session over (its open windows go out, no summary).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rapport.events.schema import Event
from rapport.frames import SAMPLE_RATE, AudioChunk, Utterance, VideoFrame
from rapport.metrics import ITEMS_DROPPED, LIVE_QUEUE
from rapport.sampling import AdaptiveSampler
from rapport.session import Session

log = logging.getLogger(__name__)

_DROPPED_VIDEO = ITEMS_DROPPED.labels("live_queue", "video_backlog")
_DROPPED_AUDIO = ITEMS_DROPPED.labels("live_queue", "audio_backlog")
AUDIO_BATCH = 32
"""At most this many microphones' voice activity in one batch: the chunk taken and the next
waiting chunk of the others (only when they wait: a session that keeps up runs them one by one)."""


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
    suspend: bool = False
    """Hand over instead of ending: open windows go out, no summary (Session.suspend)."""


LiveItem = VideoFrame | AudioChunk | Utterance | Tick | EndStream


class _Node:
    __slots__ = ("item", "next", "prev")

    def __init__(self, item: LiveItem | _Finish | None) -> None:
        self.item = item
        self.prev: _Node = self
        self.next: _Node = self


class _Backlog:
    """The waiting items, oldest first, in a doubly linked list so that a drop anywhere is O(1);
    the video nodes and each audio stream's nodes are indexed oldest first. Not thread-safe."""

    def __init__(self, max_video: int, max_audio_samples: int) -> None:
        self._root = _Node(None)  # sentinel: root.next is the oldest item, root.prev the newest
        self._max_video = max_video
        self._max_audio = max_audio_samples
        self._video: deque[_Node] = deque()
        self._audio: dict[str, deque[tuple[_Node, int]]] = {}  # per stream: (node, samples)
        self._samples: dict[str, int] = {}
        self._n = 0  # items linked: what the LIVE_QUEUE gauge holds of this backlog
        self.grace = 0
        """Frames allowed past `max_video` (up to as many again) while sampling has just been
        lowered: the frames already offered were sampled at the old rates."""
        self.dropped_video = 0
        self.dropped_audio = 0

    @property
    def empty(self) -> bool:
        return self._root.next is self._root

    @property
    def video_waiting(self) -> int:
        return len(self._video)

    @property
    def max_video(self) -> int:
        return self._max_video

    @property
    def full(self) -> bool:
        """At the bound: a video frame put now drops the oldest waiting one, unless in grace."""
        return len(self._video) >= self._max_video

    @property
    def oldest_video_t(self) -> float | None:
        if not self._video:
            return None
        item = self._video[0].item
        assert isinstance(item, VideoFrame)
        return item.t

    def put(self, item: LiveItem | _Finish) -> None:
        newest = self._root.prev
        if isinstance(item, Tick) and isinstance(newest.item, Tick):
            newest.item = item  # the later clock value, still after all queued media
            return
        node = _Node(item)
        node.prev, node.next = newest, self._root
        newest.next = self._root.prev = node
        self._n += 1
        LIVE_QUEUE.inc()
        if isinstance(item, VideoFrame):
            self._video.append(node)
            if len(self._video) <= self._max_video:
                self.grace = 0
            elif len(self._video) > self._max_video + self.grace:
                self._drop(self._video.popleft())
                self.dropped_video += 1
                _DROPPED_VIDEO.inc()
        elif isinstance(item, AudioChunk):
            stream = item.participant
            nodes = self._audio.setdefault(stream, deque())
            nodes.append((node, len(item.samples)))
            self._samples[stream] = self._samples.get(stream, 0) + len(item.samples)
            while self._samples[stream] > self._max_audio and len(nodes) > 1:
                old, n = nodes.popleft()
                self._samples[stream] -= n
                self._drop(old)
                self.dropped_audio += 1
                _DROPPED_AUDIO.inc()

    def take(self) -> LiveItem | _Finish | None:
        """The oldest item, removed; None when nothing waits."""
        node = self._root.next
        if node is self._root:
            return None
        self._unlink(node)
        item = node.item
        if isinstance(item, VideoFrame):
            self._video.popleft()  # the oldest waiting frame is the oldest item's
            if len(self._video) <= self._max_video:
                self.grace = 0
        elif isinstance(item, AudioChunk):
            nodes = self._audio[item.participant]
            _, n = nodes.popleft()
            self._samples[item.participant] -= n
            if not nodes:
                del self._audio[item.participant], self._samples[item.participant]
        return item

    def next_audio(self, limit: int) -> list[AudioChunk]:
        """The oldest waiting chunk of each microphone, at most `limit` (they stay queued)."""
        out: list[AudioChunk] = []
        for nodes in itertools.islice(self._audio.values(), limit):
            item = nodes[0][0].item
            assert isinstance(item, AudioChunk)
            out.append(item)
        return out

    def items(self) -> Iterator[LiveItem | _Finish]:
        node = self._root.next
        while node is not self._root:
            assert node.item is not None
            yield node.item
            node = node.next

    def clear(self) -> None:
        self._root.prev = self._root.next = self._root
        LIVE_QUEUE.dec(self._n)
        self._n = 0
        self._video.clear()
        self._audio.clear()
        self._samples.clear()

    def _drop(self, node: _Node) -> None:
        before, after = node.prev, node.next
        self._unlink(node)
        if isinstance(before.item, Tick) and isinstance(after.item, Tick):
            self._unlink(before)  # the later tick says all the earlier one did

    def _unlink(self, node: _Node) -> None:
        node.prev.next = node.next
        node.next.prev = node.prev
        self._n -= 1
        LIVE_QUEUE.dec()


class LiveSession:
    def __init__(
        self,
        open_session: Callable[[], Session],
        *,
        max_backlog: int,
        max_audio_backlog_s: float,
        name: str,
        sampler: AdaptiveSampler | None = None,
    ) -> None:
        """`open_session` runs on the worker thread (a session loads models) and must start it;
        `sampler`: told how far the session lags (see above), under this queue's lock."""
        self._open = open_session
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._backlog = _Backlog(max_backlog, round(max_audio_backlog_s * SAMPLE_RATE))
        self._finishing = False
        self._busy = True  # the worker is opening the session, or inside it with an item
        self.sampler = sampler
        self._now = 0.0  # the newest media time put
        self._in_hand: float | None = None  # media time of the frame inside the session now
        self.summary: Event | None = None
        self.error: BaseException | None = None
        self.session: Session | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    @property
    def dropped_video(self) -> int:
        """Video frames dropped while waiting for the session."""
        return self._backlog.dropped_video

    @property
    def dropped_audio(self) -> int:
        """Audio chunks dropped while waiting for the session."""
        return self._backlog.dropped_audio

    def start(self) -> None:
        self._thread.start()

    def put(self, item: LiveItem) -> None:
        with self._lock:
            if self._finishing:
                return
            t = _media_time(item)
            self._now = max(self._now, t if t is not None else self._now)
            if self.sampler is not None and isinstance(item, VideoFrame) and self._backlog.full:
                if not self.sampler.at_floor:  # lower every rate instead of dropping this frame
                    self._backlog.grace = self._backlog.max_video
                self.sampler.to_floor(self._now)
            self._backlog.put(item)
            self._adapt()
            self._ready.notify_all()

    def finish(self, t: float, *, suspend: bool = False) -> None:
        """End at media time `t`: items queued before are processed, then the summary goes out
        (`suspend`: the open windows, and no summary)."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
            self._backlog.put(_Finish(t, suspend))
            self._ready.notify_all()

    def forget(self, person: str) -> None:
        """Erasure: the sampler no longer names the person (safe from any thread)."""
        with self._lock:
            if self.sampler is not None:
                self.sampler.forget(person)

    def waiting(self) -> list[LiveItem]:
        """The items waiting for the worker now, oldest first (O(n): for tests and diagnostics)."""
        with self._lock:
            return [i for i in self._backlog.items() if not isinstance(i, _Finish)]

    def join(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every item put so far has been through the session (or the session
        ended); False on timeout. For tests, benchmarks and soaks that step a live source."""
        with self._ready:
            return self._ready.wait_for(
                lambda: (self._backlog.empty and not self._busy) or self.done.is_set(), timeout
            )

    def _adapt(self) -> None:
        if self.sampler is None:
            return
        waiting = (self._backlog.oldest_video_t, self._in_hand)
        oldest = min((t for t in waiting if t is not None), default=self._now)
        self.sampler.observe(self._now, self._backlog.video_waiting, self._now - oldest)

    def _take(self, session: Session) -> tuple[LiveItem | _Finish, list[AudioChunk]]:
        """The next item and, for an audio chunk, the other microphones' next waiting chunks."""
        speaking = session.speaking if self.sampler is not None else frozenset()
        with self._ready:
            self._busy = False
            self._in_hand = None
            if self.sampler is not None:
                self.sampler.set_speaking(speaking)
                self._adapt()
            self._ready.notify_all()  # someone may wait for the session to be idle
            while (item := self._backlog.take()) is None:
                self._ready.wait()
            self._busy = True
            if isinstance(item, VideoFrame):
                self._in_hand = item.t
                self._adapt()
            elif isinstance(item, AudioChunk):
                return item, self._backlog.next_audio(AUDIO_BATCH - 1)
            return item, []

    def _work(self) -> None:
        try:
            self.session = session = self._open()
            while True:
                item, ahead = self._take(session)
                if isinstance(item, VideoFrame):
                    session.push_video(item)
                elif isinstance(item, AudioChunk):
                    session.push_audio(item, ahead)
                elif isinstance(item, Utterance):
                    session.push_utterance(item)
                elif isinstance(item, Tick):
                    session.tick(item.t)
                elif isinstance(item, EndStream):
                    session.end_stream(item.kind, item.stream)
                elif item.suspend:
                    session.suspend(item.t)
                    return
                else:  # nothing is queued after the finish: the counts are final
                    dropped = {
                        "video_frames_behind_session": self.dropped_video,
                        "audio_chunks_behind_session": self.dropped_audio,
                    }
                    self.summary = session.finish(item.t, dropped)
                    return
        except BaseException as e:  # reported by the owner; the service goes on
            self.error = e
        finally:
            with self._lock:  # nothing more is taken: refuse new items, let go of waiting ones
                self._finishing = True
                self._backlog.clear()
                if self.sampler is not None:
                    self.sampler.set_speaking(frozenset())  # names no one once ended
                self.done.set()
                self._ready.notify_all()


def _media_time(item: LiveItem) -> float | None:
    if isinstance(item, VideoFrame | Tick):
        return item.t
    if isinstance(item, AudioChunk):
        return item.end
    return None  # text and stream ends say nothing of the media clock
