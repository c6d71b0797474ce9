"""Recordings for tests: good ones (re-exported from rapport.samples) and bad ones.

Every builder writes one file and returns its path.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from rapport.samples import DEFAULT_SCRIPT, Recording, make_recording

__all__ = [
    "DEFAULT_SCRIPT",
    "Recording",
    "make_recording",
    "no_av_streams",
    "not_media",
    "random_bytes",
    "truncated",
    "zero_duration",
    "zero_length",
]


def not_media(path: Path) -> Path:
    """A plain text file (with whatever extension `path` has)."""
    path.write_text("Meeting notes\n- agenda\n- actions\nThis is not a recording.\n")
    return path


def random_bytes(path: Path, size: int = 64_000, seed: int = 7) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def zero_length(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def zero_duration(path: Path) -> Path:
    """A valid WAV header with no samples: media, but nothing in it."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"")
    return path


def no_av_streams(path: Path) -> Path:
    """A file FFmpeg opens (as SubRip subtitles) that has neither audio nor video."""
    path.write_text("1\n00:00:01,000 --> 00:00:02,500\nHello there.\n\n")
    return path


def truncated(good: Path, out: Path, fraction: float) -> Path:
    """The first `fraction` of `good`'s bytes, as a recording cut off mid-write would be."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    data = good.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
