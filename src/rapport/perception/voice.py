"""Voice head: speech segments of one participant's audio, each with a prosodic arousal estimate.

Silero VAD gives a speech probability per 32 ms window (see vad.py). A segment opens at the first
window with p >= ``on``; once open, a window with p < ``off`` marks a tentative end that a window
with p >= ``on`` cancels, and the segment closes at that mark after ``min_silence_s`` without one.
Segments shorter than ``min_speech_s`` are dropped; one reaching ``max_speech_s`` is cut there (the
next opens at once), so a monologue still yields timely estimates. Window boundaries sit on a fixed
grid from the stream's first sample, so the segments do not depend on how audio was chunked.
Arousal comes from prosody.py, against this participant's own baseline.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rapport.config import RuntimeSettings
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment
from rapport.perception import prosody as _prosody
from rapport.perception.vad import WINDOW, WINDOW_S, SileroVad

_GAP_S = 0.1
"""A chunk starting further than this from where the last one ended begins a new stream."""


class VoiceActivity:
    """Streaming VAD + prosody for one participant; not thread-safe (one per audio track)."""

    def __init__(
        self,
        models_dir: Path,
        runtime: RuntimeSettings,
        participant: str,
        *,
        on: float = 0.5,
        off: float = 0.35,
        min_speech_s: float = 0.25,
        min_silence_s: float = 0.3,
        max_speech_s: float = 20.0,
        prosody: bool = True,
        vad: SileroVad | None = None,
    ) -> None:
        """`prosody=False` leaves arousal to the caller (e.g. per speaker of a shared mic);
        `vad`, a fresh SileroVad on a shared session, saves loading the model again."""
        if not 0.0 < off < on < 1.0:
            raise ValueError(f"need 0 < off < on < 1, got on={on} off={off}")
        if min_speech_s < 0 or min_silence_s < 0 or max_speech_s <= max(min_speech_s, WINDOW_S):
            raise ValueError("durations must be >= 0 and max_speech_s above min_speech_s")
        self.participant = participant
        self._on, self._off = on, off
        self._min_speech = round(min_speech_s / WINDOW_S)
        self._min_silence = max(1, round(min_silence_s / WINDOW_S))
        self._max_speech = round(max_speech_s / WINDOW_S)
        self._vad = vad if vad is not None else SileroVad.load(models_dir, runtime)
        self._baseline = _prosody.ArousalBaseline() if prosody else None
        self.speech_seconds = 0.0
        """Total duration of the segments emitted so far."""
        self._t0: float | None = None  # media time of the stream's first sample
        self._rest = np.zeros(0, np.float32)  # samples short of a whole window
        self._done = 0  # windows processed in this stream
        self._start: int | None = None  # window where the open segment began
        self._silence: int | None = None  # window of its tentative end
        self._audio: list[NDArray[np.float32]] = []  # the open segment's samples

    @property
    def name(self) -> str:
        return "silero-vad+prosody"

    @property
    def pending_since(self) -> float | None:
        """Start of the segment open now, even one still too short to be kept; else None.

        Nothing before this time can change any more, so it bounds the stream's watermark."""
        if self._start is None or self._t0 is None:
            return None
        return self._t0 + self._start * WINDOW_S

    def push(self, chunk: AudioChunk) -> list[SpeechSegment]:
        """Feed audio of any length; returns the segments that closed within it."""
        if chunk.participant != self.participant:
            raise ValueError(f"chunk of {chunk.participant!r} pushed to {self.participant!r}")
        out: list[SpeechSegment] = []
        if self._t0 is None or abs(chunk.t - self._stream_end()) > _GAP_S:
            if self._t0 is not None:
                out += self.flush()
            self._t0 = chunk.t
        pending = np.concatenate([self._rest, chunk.samples.astype(np.float32, copy=False)])
        usable = len(pending) // WINDOW * WINDOW
        self._rest = pending[usable:]
        if usable:
            out += self._step(pending[:usable])
        return out

    @property
    def prefetched(self) -> int:
        """VAD windows of this stream computed in a batch with other streams' (vad.prefetch)."""
        return self._vad.prefetched

    def ahead(self, chunk: AudioChunk) -> tuple[SileroVad, NDArray[np.float32]] | None:
        """What `push(chunk)` would hand the VAD next (for `vad.prefetch`), or None: nothing, or a
        gap first (a new stream). Changes nothing."""
        if self._t0 is None or abs(chunk.t - self._stream_end()) > _GAP_S:
            return None
        pending = np.concatenate([self._rest, chunk.samples.astype(np.float32, copy=False)])
        usable = len(pending) // WINDOW * WINDOW
        return (self._vad, pending[:usable]) if usable else None

    def flush(self) -> list[SpeechSegment]:
        """End of stream: run the partial last window and close an open segment."""
        out: list[SpeechSegment] = []
        if self._t0 is not None:
            end_t = self._stream_end()
            if len(self._rest):
                tail = np.zeros(WINDOW, np.float32)
                tail[: len(self._rest)] = self._rest
                # The padded window reaches past the stream's end: so may a segment it closes.
                out += [
                    s if s.end <= end_t else dataclasses.replace(s, end=end_t)
                    for s in self._step(tail)
                ]
            if self._start is not None:
                end = self._silence if self._silence is not None else self._done
                out += self._close(end, end_t)
        self._new_stream()
        return out

    def cut(self, t: float) -> list[SpeechSegment]:
        """Close the speech open at media time `t` there, and go on with it as a new segment from
        `t` (a live window closes on time instead of waiting for the speaker to pause). The piece
        before `t` is kept however short: it is the end of real speech, not a blip."""
        if self._start is None or self._t0 is None:
            return []
        at = math.ceil((t - self._t0) / WINDOW_S - 1e-9)  # the first VAD window from t on
        if not self._start < at <= self._done:
            return []
        if self._silence is not None and self._silence <= at:
            return self._close(self._silence, keep_short=True)  # it had ended; nothing goes on
        rest = self._audio[at - self._start :]
        out = self._close(at, keep_short=True)
        self._start, self._audio = at, rest
        return out

    def reset(self) -> None:
        """Drop everything held (open speech, its samples): used when consent is revoked."""
        self._new_stream()

    def _new_stream(self) -> None:
        self._vad.reset()
        self._t0, self._rest, self._done = None, np.zeros(0, np.float32), 0
        self._start, self._silence, self._audio = None, None, []

    def _stream_end(self) -> float:
        assert self._t0 is not None
        return self._t0 + self._done * WINDOW_S + len(self._rest) / SAMPLE_RATE

    def _step(self, samples: NDArray[np.float32]) -> list[SpeechSegment]:
        out: list[SpeechSegment] = []
        probs = self._vad.probs(samples)
        for k, p in enumerate(probs.tolist()):
            i = self._done + k
            if self._start is None:
                if p >= self._on:
                    self._start, self._silence = i, None
                    self._audio = [samples[k * WINDOW : (k + 1) * WINDOW]]
                continue
            self._audio.append(samples[k * WINDOW : (k + 1) * WINDOW])
            if p >= self._on:
                self._silence = None
            elif p < self._off and self._silence is None:
                self._silence = i
            if self._silence is not None and i + 1 - self._silence >= self._min_silence:
                out += self._close(self._silence)
            elif i + 1 - self._start >= self._max_speech:
                cut = self._silence if self._silence is not None else i + 1
                out += self._close(cut)
                if cut == i + 1:
                    self._start = i + 1
        self._done += len(probs)
        return out

    def _close(
        self, end: int, end_t: float | None = None, *, keep_short: bool = False
    ) -> list[SpeechSegment]:
        """Close the open segment at window `end` (exclusive), clipped to `end_t` if given."""
        assert self._start is not None and self._t0 is not None
        start, n, audio = self._start, end - self._start, self._audio
        self._start, self._silence, self._audio = None, None, []
        if n < (1 if keep_short else max(1, self._min_speech)):
            return []
        t_start = self._t0 + start * WINDOW_S
        t_end = self._t0 + end * WINDOW_S
        if end_t is not None:
            t_end = min(t_end, end_t)
        arousal: float | None = None
        confidence = 0.0
        if self._baseline is not None:
            features = _prosody.measure(np.concatenate(audio)[: n * WINDOW])
            if features is not None:
                arousal, confidence = self._baseline.score(features)
        self.speech_seconds += t_end - t_start
        return [SpeechSegment(self.participant, t_start, t_end, arousal, confidence)]
