"""Opening a recording with PyAV: checks, stream choice, durations, and errors users can read.

Every PyAV error is converted here into a one-line MediaError (`raise ... from e`).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream

from rapport.errors import MediaError

TRUNCATION_TOLERANCE_S = 0.5
"""A stream that ends this much before its declared end is called truncated."""
_TAIL_S = 3.0  # probe reads packets from this far before the declared end


@dataclass(frozen=True, slots=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    fps: float | None
    """Average frame rate of the video; None without video."""


def probe(path: Path) -> MediaInfo:
    """Describe a recording, or raise MediaError saying why it cannot be analysed.

    Reads the packets of the last few seconds, so a file cut short is caught here, before decoding.
    """
    with open_media(path) as c:
        video, audio = pick_streams(c, path)
        declared = declared_end(c)
        if c.format.name == "wav":  # FFmpeg trusts the file size; the header knows better
            promised = _wav_promised_s(path)
            if promised is not None and (declared is None or promised > declared):
                declared = promised
        tail = max(0.0, declared - _TAIL_S) if declared else 0.0
        measured = packets_end(c, tail, path)
        if declared is None:
            declared = measured or 0.0
        elif declared > 0 and measured is None:
            raise MediaError(
                f"recording {path}: truncated: no media after {tail:.1f} s "
                f"but the file declares {declared:.1f} s"
            )
        elif measured is not None and measured < declared - TRUNCATION_TOLERANCE_S:
            raise truncated(path, measured, declared)
        if declared <= 0:
            raise MediaError(f"recording {path}: zero duration, nothing to analyse")
        return MediaInfo(
            duration_s=declared,
            has_video=video is not None,
            has_audio=audio is not None,
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            fps=(float(video.average_rate or video.guessed_rate or 0) or None) if video else None,
        )


def open_media(path: Path) -> InputContainer:
    """Open `path` for demuxing; MediaError for anything that is not a readable media file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise MediaError(f"recording {path}: no such file") from e
    except OSError as e:
        raise MediaError(f"recording {path}: cannot read: {e.strerror}") from e
    if path.is_dir():
        raise MediaError(f"recording {path}: is a directory, not a media file")
    if size == 0:
        raise MediaError(f"recording {path}: empty file (0 bytes)")
    try:
        return av.open(str(path), "r")
    except av.error.InvalidDataError as e:
        if _looks_like_mp4(path):
            raise MediaError(
                f"recording {path}: truncated or unfinished MP4 (its index, the moov atom, "
                "is missing)"
            ) from e
        raise MediaError(f"recording {path}: not an audio or video file FFmpeg can read") from e
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(f"recording {path}: cannot open: {_reason(e)}") from e


def pick_streams(c: InputContainer, path: Path) -> tuple[VideoStream | None, AudioStream | None]:
    """The first real video stream (not cover art) and the first audio stream."""
    video = next((s for s in c.streams.video if not s.disposition & Disposition.attached_pic), None)
    audio = next(iter(c.streams.audio), None)
    if video is None and audio is None:
        found = ", ".join(sorted({str(s.type) for s in c.streams})) or "nothing"
        raise MediaError(f"recording {path}: no audio or video stream (found: {found})")
    return video, audio


def origin(c: InputContainer) -> float:
    """Media time 0 in container seconds: the container's start, never before 0.

    Negative starts are encoder priming (e.g. AAC) that players skip; so do we.
    """
    return max(0.0, (c.start_time or 0) / av.time_base)


def declared_end(c: InputContainer) -> float | None:
    """Where the container says the media ends, in media time; None when it does not say."""
    start = (c.start_time or 0) / av.time_base
    if c.duration:
        return start + c.duration / av.time_base - origin(c)
    ends = [
        float((s.start_time or 0) * s.time_base + s.duration * s.time_base) - origin(c)
        for s in (*c.streams.video, *c.streams.audio)
        if s.duration and s.time_base
    ]
    return max(ends) if ends else None


def stream_end(s: VideoStream | AudioStream, c: InputContainer) -> float | None:
    """Where one stream says it ends, in media time; None when it does not say."""
    if not s.duration or s.time_base is None:
        return None
    return float(((s.start_time or 0) + s.duration) * s.time_base) - origin(c)


def packets_end(c: InputContainer, from_s: float, path: Path) -> float | None:
    """End time of the last audio/video packet found reading from `from_s`; None if none."""
    streams = [*c.streams.video, *c.streams.audio]
    t0 = origin(c)
    if from_s > 0:
        with suppress(av.error.FFmpegError):  # not seekable: read from the start instead
            c.seek(int((from_s + t0) * av.time_base), backward=True)
    end: float | None = None
    try:
        for p in c.demux(streams):
            if p.pts is not None and p.time_base is not None:
                t = float((p.pts + (p.duration or 0)) * p.time_base) - t0
                end = t if end is None else max(end, t)
    except av.error.FFmpegError as e:
        raise MediaError(f"recording {path}: corrupt or truncated: {_reason(e)}") from e
    return end


def truncated(path: Path, end: float, declared: float) -> MediaError:
    return MediaError(
        f"recording {path}: truncated: media stops at {end:.1f} s "
        f"but the file declares {declared:.1f} s"
    )


def _wav_promised_s(path: Path) -> float | None:
    """Seconds of sound a RIFF/WAVE header promises; None when it does not say."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        kind, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if kind == b"fmt " and pos + 20 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        if kind == b"data":  # 0 and 0xFFFFFFFF: a streaming writer's placeholders
            return size / byte_rate if byte_rate and 0 < size < 0xFFFFFFFF else None
        pos += 8 + size + (size & 1)
    return None


def _looks_like_mp4(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp"


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(text).splitlines()[0]
