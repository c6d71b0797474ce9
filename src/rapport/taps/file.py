"""Recordings as a tap: sampled RGB frames and 16 kHz mono audio chunks, in media-time order.

Decoding runs in a background thread (video with FFmpeg's own threads too), a bounded queue ahead
of the consumer, so it overlaps with model work.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import cv2
import numpy as np
from av.container import InputContainer
from numpy.typing import NDArray

from rapport.errors import MediaError
from rapport.frames import SAMPLE_RATE, AudioChunk, VideoFrame
from rapport.taps.media import (
    TRUNCATION_TOLERANCE_S,
    MediaInfo,
    declared_end,
    open_media,
    origin,
    pick_streams,
    probe,
    stream_end,
    truncated,
)
from rapport.taps.prefetch import prefetch

__all__ = ["MediaInfo", "probe", "read_recording"]

CHUNK_SAMPLES = SAMPLE_RATE // 2
"""Audio is yielded in 0.5 s chunks (the last one may be shorter)."""
_QUEUE_ITEMS = 16
_MAX_BAD_PACKETS = 3  # more undecodable packets than this and the recording is called corrupt
_MAX_HELD = 256  # items held for ordering before a badly interleaved file forces them out

log = logging.getLogger(__name__)

Item = VideoFrame | AudioChunk


def read_recording(
    path: Path, *, participant: str, sample_fps: float, max_side: int
) -> Iterator[VideoFrame | AudioChunk]:
    """Decode `path`: video sampled at `sample_fps` and no side over `max_side`, audio in chunks.

    The file is probed now (MediaError if unusable); decoding starts at the first `next()`.
    A stream that stops short of its declared length raises MediaError at the end.
    """
    if sample_fps <= 0 or max_side < 1:
        raise ValueError("sample_fps must be > 0 and max_side >= 1")
    probe(path)
    return prefetch(
        lambda: _decode(path, participant, sample_fps, max_side),
        maxsize=_QUEUE_ITEMS,
        name=f"decode:{path.name}",
    )


def _decode(path: Path, participant: str, sample_fps: float, max_side: int) -> Iterator[Item]:
    with open_media(path) as c:
        video, audio = pick_streams(c, path)
        t0 = origin(c)
        sampler = chunker = None
        if video is not None:
            video.thread_type = "AUTO"
            fps = float(video.average_rate or video.guessed_rate or 25)
            sampler = _VideoSampler(participant, sample_fps, max_side, 1.0 / fps)
        if audio is not None:
            chunker = _AudioChunker(participant)
        order = _Ordered(video=sampler is not None, audio=chunker is not None)
        bad = 0
        packets = c.demux([s for s in (video, audio) if s is not None])
        while True:
            try:
                packet = next(packets, None)
            except av.error.FFmpegError as e:  # the container itself is damaged
                raise MediaError(f"recording {path}: unreadable at {_reached(order):.1f} s") from e
            if packet is None:
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:  # a damaged packet: skip a few, then give up
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    raise MediaError(f"recording {path}: corrupt: {e.strerror}") from e
                continue
            for frame in frames:
                if isinstance(frame, av.VideoFrame) and sampler is not None:
                    order.push("video", sampler.push(frame, _time(frame, t0)), sampler.pending)
                elif isinstance(frame, av.AudioFrame) and chunker is not None:
                    pushed = chunker.push(frame, _time(frame, t0), path)
                    order.push("audio", pushed, chunker.pending)
            yield from order.pop_ready()
        if sampler is not None:
            order.push("video", sampler.flush(), None)
        if chunker is not None:
            order.push("audio", chunker.flush(path), None)
        yield from order.pop_ready()
        if bad:
            log.warning("recording had undecodable packets", extra={"packets": bad})
        decoded = []
        if video is not None and sampler is not None:
            decoded.append((sampler.reached, stream_end(video, c)))
        if audio is not None and chunker is not None:
            decoded.append((chunker.reached, stream_end(audio, c)))
        _check_complete(c, path, decoded)


def _reached(order: _Ordered) -> float:
    return min(order.marks.values(), default=0.0)


def _time(frame: av.VideoFrame | av.AudioFrame, t0: float) -> float | None:
    return frame.time - t0 if frame.time is not None else None


def _check_complete(
    c: InputContainer, path: Path, decoded: list[tuple[float, float | None]]
) -> None:
    """MediaError if a stream, or the whole, stops well short of what the container declares."""
    for got, declared in decoded:
        if declared is not None and got < declared - TRUNCATION_TOLERANCE_S:
            raise truncated(path, got, declared)
    whole = declared_end(c)
    got_all = max(got for got, _ in decoded)
    if whole is not None and got_all < whole - TRUNCATION_TOLERANCE_S:
        raise truncated(path, got_all, whole)


class _VideoSampler:
    """Picks, for each tick k / sample_fps, the decoded frame whose time is nearest to it."""

    def __init__(self, participant: str, sample_fps: float, max_side: int, frame_s: float):
        self.participant, self.sample_fps, self.max_side = participant, sample_fps, max_side
        self.frame_s = frame_s
        self.k = 0
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.last_t: float | None = None  # time of the last frame yielded
        self.reached = 0.0  # media time up to which video has been decoded

    @property
    def pending(self) -> float:
        """Time of the frame held back as a candidate: nothing earlier is still to come."""
        return self.prev[0] if self.prev else 0.0

    def push(self, frame: av.VideoFrame, t: float | None) -> list[VideoFrame]:
        if t is None:  # no timestamp: assume the nominal frame rate
            t = self.prev[0] + self.frame_s if self.prev else 0.0
        if self.prev is not None and t <= self.prev[0]:
            return []  # out of order or duplicated: keep the timeline monotonic
        out = []
        while (tick := self.k / self.sample_fps) <= t:
            self.k += 1
            near = self.prev if self.prev and tick - self.prev[0] <= t - tick else (t, frame)
            if near[0] != self.last_t:
                out.append(self._convert(*near))
        self.prev = (t, frame)
        self.reached = t + self.frame_s
        return out

    def flush(self) -> list[VideoFrame]:
        """The last frame, if a tick falls inside its display interval and it was not yielded."""
        if self.prev is None or self.prev[0] == self.last_t:
            return []
        if self.k / self.sample_fps < self.prev[0] + self.frame_s / 2:
            return [self._convert(*self.prev)]
        return []

    def _convert(self, t: float, frame: av.VideoFrame) -> VideoFrame:
        self.last_t = t
        rgb = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
        h, w = rgb.shape[:2]
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
        return VideoFrame(self.participant, max(0.0, t), np.ascontiguousarray(rgb))


class _AudioChunker:
    """Resamples to 16 kHz mono float32 and cuts 0.5 s chunks timed from the first sample."""

    def __init__(self, participant: str) -> None:
        self.participant = participant
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.start: float | None = None
        self.skip = 0  # samples before media time 0, dropped
        self.buf: list[NDArray[np.float32]] = []
        self.held = 0
        self.sent = 0

    @property
    def reached(self) -> float:
        """Media time up to which audio has been decoded."""
        return (self.start or 0.0) + (self.sent + self.held) / SAMPLE_RATE

    @property
    def pending(self) -> float:
        """Time of the next chunk: nothing earlier is still to come."""
        return (self.start or 0.0) + self.sent / SAMPLE_RATE

    def push(self, frame: av.AudioFrame | None, t: float | None, path: Path) -> list[AudioChunk]:
        if self.start is None and frame is not None:
            t = t or 0.0
            self.start, self.skip = max(0.0, t), max(0, round(-t * SAMPLE_RATE))
        try:
            outs = self.resampler.resample(frame)
        except (av.error.FFmpegError, ValueError) as e:
            raise MediaError(f"recording {path}: audio cannot be resampled: {e}") from e
        for out in outs:
            x = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            if self.skip:
                cut = min(self.skip, len(x))
                x, self.skip = x[cut:], self.skip - cut
            self.buf.append(x)
            self.held += len(x)
        chunks = []
        while self.held >= CHUNK_SAMPLES:
            chunks.append(self._take(CHUNK_SAMPLES))
        return chunks

    def flush(self, path: Path) -> list[AudioChunk]:
        chunks = self.push(None, None, path)
        if self.held:
            chunks.append(self._take(self.held))
        return chunks

    def _take(self, n: int) -> AudioChunk:
        data = np.concatenate(self.buf) if len(self.buf) > 1 else self.buf[0]
        chunk, rest = data[:n], data[n:]
        self.buf, self.held = ([rest] if len(rest) else []), len(rest)
        t = (self.start or 0.0) + self.sent / SAMPLE_RATE
        self.sent += n
        samples = np.clip(chunk, -1.0, 1.0).astype(np.float32, copy=False)
        return AudioChunk(self.participant, t, np.ascontiguousarray(samples))


class _Ordered:
    """Merges the two streams' outputs into one media-time order.

    An item is released once no live stream can still produce an earlier one (its watermark).
    """

    def __init__(self, *, video: bool, audio: bool) -> None:
        self.marks: dict[str, float] = {}
        if video:
            self.marks["video"] = 0.0
        if audio:
            self.marks["audio"] = 0.0
        self.heap: list[tuple[float, int, Item]] = []
        self.seq = itertools.count()

    def push(
        self, stream: str, items: list[VideoFrame] | list[AudioChunk], mark: float | None
    ) -> None:
        for item in items:
            heapq.heappush(self.heap, (item.t, next(self.seq), item))
        if mark is None:  # stream finished
            self.marks.pop(stream, None)
        else:
            self.marks[stream] = mark

    def pop_ready(self) -> Iterator[Item]:
        mark = min(self.marks.values(), default=float("inf"))
        while self.heap and (self.heap[0][0] <= mark or len(self.heap) > _MAX_HELD):
            yield heapq.heappop(self.heap)[2]
