"""Transcripts beside a recording: WebVTT, SubRip and JSON Lines, parsed strictly.

Every problem is a TranscriptError naming the file and line: "transcript talk.srt:14: bad timestamp
'00:00:3,00'". Speakers come from WebVTT voice tags (<v Ana>), SRT "Ana: text" prefixes or the JSONL
"speaker" field; otherwise the utterance belongs to `default_participant`.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rapport.errors import TranscriptError
from rapport.frames import Utterance

SUPPORTED = (".vtt", ".srt", ".jsonl")

_VTT_TIME = re.compile(r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
_SRT_TIME = re.compile(r"(\d{1,}):([0-5]\d):([0-5]\d)[,.](\d{3})")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_TAG = re.compile(r"</?[^>]*>|\{\\[^}]*\}")  # markup tags; SSA overrides like {\an8}
_SPEAKER = re.compile(r"^([^\s:<>][^:<>]{0,39}?):\s+(\S.*)$")
_JSON_NUMBER = (int, float)


def load_transcript(path: Path, *, default_participant: str) -> list[Utterance]:
    """Parse `path` (format from its extension, or a WEBVTT header); utterances sorted by start."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise TranscriptError(f"transcript {path}: no such file") from e
    except UnicodeDecodeError as e:
        raise TranscriptError(f"transcript {path}: not UTF-8 text") from e
    except OSError as e:
        raise TranscriptError(f"transcript {path}: cannot read: {e.strerror}") from e
    parsers: dict[str, Callable[[_Lines, str], Iterator[Utterance]]] = {
        ".vtt": _parse_vtt,
        ".srt": _parse_srt,
        ".jsonl": _parse_jsonl,
    }
    kind = path.suffix.lower()
    if kind not in parsers and text.startswith("WEBVTT"):
        kind = ".vtt"
    if kind not in parsers:
        raise TranscriptError(
            f"transcript {path}: unsupported format {path.suffix or '(no extension)'!r} "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    utterances = list(parsers[kind](_Lines(path, text), default_participant))
    if not utterances:
        raise TranscriptError(f"transcript {path}: empty, no utterances found")
    return sorted(utterances, key=lambda u: (u.start, u.end))


class _Lines:
    """The file's lines with 1-based numbers, and errors that point at one of them."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, line: int, message: str) -> TranscriptError:
        return TranscriptError(f"transcript {self.path}:{line}: {message}")

    def blocks(self, first: int = 0) -> Iterator[tuple[int, list[str]]]:
        """Runs of non-blank lines from line index `first`: (1-based number of the first, lines)."""
        block: list[str] = []
        start = 0
        for i in range(first, len(self.lines)):
            line = self.lines[i].rstrip()
            if line.strip():
                if not block:
                    start = i + 1
                block.append(line)
            elif block:
                yield start, block
                block = []
        if block:
            yield start, block


def _parse_vtt(src: _Lines, default: str) -> Iterator[Utterance]:
    header = src.lines[0] if src.lines else ""
    if not re.match(r"WEBVTT(?:[ \t]|$)", header):
        raise src.error(1, "missing 'WEBVTT' header")
    for n, block in src.blocks():
        if n == 1 or re.match(r"(NOTE|STYLE|REGION)(?:[ \t]|$)", block[0]):
            continue  # the header block, comments, style and region definitions
        timing = 0 if "-->" in block[0] else 1  # an optional cue identifier comes first
        if timing >= len(block) or "-->" not in block[timing]:
            raise src.error(n + timing, "expected a cue timing 'start --> end'")
        start, end = _timing(src, n + timing, block[timing], _VTT_TIME)
        speaker, parts = default, list[str]()
        for line in block[timing + 1 :]:
            voice = _VOICE.search(line)
            if voice and parts and voice.group(1).strip() != speaker:  # a new voice: new utterance
                yield from _utterance(speaker, start, end, parts)
                parts = []
            if voice:
                speaker = voice.group(1).strip()
            parts.append(_clean(line))
        yield from _utterance(speaker, start, end, parts)


def _parse_srt(src: _Lines, default: str) -> Iterator[Utterance]:
    for n, block in src.blocks():
        timing = 0 if "-->" in block[0] else 1
        if timing == 1 and not block[0].strip().isdigit():
            raise src.error(n, f"expected a cue number, got {block[0].strip()!r}")
        if timing >= len(block) or "-->" not in block[timing]:
            raise src.error(n + timing, "expected a cue timing 'start --> end'")
        start, end = _timing(src, n + timing, block[timing], _SRT_TIME)
        lines = [_clean(line) for line in block[timing + 1 :]]
        speaker = default
        if lines and (m := _SPEAKER.match(lines[0])):
            speaker, lines[0] = m.group(1).strip(), m.group(2)
        yield from _utterance(speaker, start, end, lines)


def _parse_jsonl(src: _Lines, default: str) -> Iterator[Utterance]:
    for i, line in enumerate(src.lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise src.error(i, f"bad JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise src.error(i, "expected a JSON object")
        times = []
        for key in ("start", "end"):
            value = obj.get(key)
            if value is None:
                raise src.error(i, f"missing {key!r}")
            if (
                isinstance(value, bool)
                or not isinstance(value, _JSON_NUMBER)
                or not math.isfinite(value)
                or value < 0
            ):
                raise src.error(i, f"{key!r} must be a number of seconds >= 0, got {value!r}")
            times.append(float(value))
        text, speaker = obj.get("text"), obj.get("speaker", default)
        if not isinstance(text, str):
            raise src.error(i, "'text' must be a string")
        if not isinstance(speaker, str) or not speaker.strip():
            raise src.error(i, "'speaker' must be a non-empty string")
        _check_order(src, i, times[0], times[1])
        yield from _utterance(speaker.strip(), times[0], times[1], [text])


def _timing(src: _Lines, n: int, line: str, pattern: re.Pattern[str]) -> tuple[float, float]:
    left, _, right = line.partition("-->")
    fields = right.split()
    if not fields:
        raise src.error(n, "cue timing has no end time")
    start, end = _seconds(src, n, left.strip(), pattern), _seconds(src, n, fields[0], pattern)
    _check_order(src, n, start, end)
    return start, end


def _seconds(src: _Lines, n: int, stamp: str, pattern: re.Pattern[str]) -> float:
    m = pattern.fullmatch(stamp)
    if m is None:
        raise src.error(n, f"bad timestamp {stamp!r}")
    h, mm, ss, ms = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mm * 60 + ss + ms / 1000


def _check_order(src: _Lines, n: int, start: float, end: float) -> None:
    if end <= start:
        raise src.error(n, f"cue ends at {end:.3f} s, not after its start at {start:.3f} s")


def _utterance(speaker: str, start: float, end: float, parts: list[str]) -> Iterator[Utterance]:
    text = re.sub(r"\s+", " ", " ".join(parts)).strip()
    if text:  # a cue with no words (markup only) says nothing
        yield Utterance(speaker, start, end, text)


def _clean(line: str) -> str:
    return html.unescape(_TAG.sub("", line)).strip()
