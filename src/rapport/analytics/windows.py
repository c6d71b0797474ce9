"""Rolls per-frame, per-segment and per-utterance observations into fixed media-time windows.

A window [k*w, (k+1)*w) closes once the watermark (the media time up to which every input is final)
passes its end. Observations arriving for a window already closed are counted as late and dropped,
never re-emitted. When the media's duration is known, a tail shorter than max(1 s, w/2) is joined to
the last window instead of standing alone.

A participant is part of a window only when they contributed data to it: a frame of their camera,
audio of their microphone (silence included: a live microphone measures that they did not speak), a
speech segment or an utterance. Someone who left, muted everything, or whose consent lapsed is
absent from later windows, never scored 0. Faces of a shared room camera (frames with no
participant) count for the room only.

Every span is clipped to its window's real extent (the last window of a known duration takes the
tail), so shares and ratios stay in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapport.config import Settings
from rapport.frames import FrameSummary, SpeechSegment, TextScore
from rapport.fusion.engagement import Engagement, EngagementInputs, EngagementScorer
from rapport.fusion.late_fusion import FusedAffect, Modality, ModalityEstimate, fuse

_CAMERA = "\x00room-camera"  # scorer key of a shared camera; cannot clash with a participant id

EPSILON_S = 1e-9
"""Media times are sums of sample counts and steps: an overlap this small is float error, not data
(a chunk starting at 6.999999999999999 s does not reach back into the window before 7 s)."""

TURN_GAP_S = 1.0
"""Speech after this much of one's own silence, or after someone else spoke, starts a new turn."""


@dataclass(slots=True)
class _Acc:
    frames: int = 0
    face_frames: int = 0
    faces: int = 0
    attention: float = 0.0
    valence: float = 0.0
    arousal: float = 0.0
    expressiveness: float = 0.0
    speech_s: float = 0.0
    """Set when the window closes, from `spans`."""
    turns: int = 0
    voice_arousal: float = 0.0
    voice_weight: float = 0.0
    voice_valence: float = 0.0
    voice_valence_weight: float = 0.0
    text_valence: float = 0.0
    text_arousal: float = 0.0
    text_weight: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)
    """Speech within the window, for the room's silence share (forgetting a person drops it)."""

    def add_frame(self, f: FrameSummary) -> None:
        self.frames += 1
        self.faces += f.faces
        self.attention += f.attention
        if f.faces and f.valence is not None and f.arousal is not None:
            self.face_frames += 1
            self.valence += f.valence
            self.arousal += f.arousal
            self.expressiveness += f.expressiveness or 0.0

    def remove(self, other: _Acc) -> None:
        """Subtract the frames another accumulator added (every frame field is a sum)."""
        for name in ("frames", "face_frames", "faces"):
            setattr(self, name, max(0, getattr(self, name) - getattr(other, name)))
        for name in ("attention", "valence", "arousal", "expressiveness"):
            setattr(self, name, getattr(self, name) - getattr(other, name))

    def face_estimate(self) -> ModalityEstimate | None:
        if not self.face_frames:
            return None
        n = self.face_frames
        return ModalityEstimate(self.valence / n, self.arousal / n, n / self.frames)

    def voice_estimate(self, window_s: float) -> ModalityEstimate | None:
        if self.voice_weight <= 0:
            return None
        # Confidence grows with how much of the window was speech with measured prosody.
        conf = min(1.0, self.voice_weight / (0.3 * window_s))
        valence = (
            self.voice_valence / self.voice_valence_weight if self.voice_valence_weight else None
        )
        return ModalityEstimate(valence, self.voice_arousal / self.voice_weight, conf)

    def text_estimate(self) -> ModalityEstimate | None:
        if self.text_weight <= 0:
            return None
        w = self.text_weight
        return ModalityEstimate(self.text_valence / w, self.text_arousal / w, min(1.0, w))


@dataclass(slots=True, frozen=True)
class ParticipantResult:
    engagement: Engagement
    affect: FusedAffect
    speaking_share: float
    turns: int
    faces: float


@dataclass(slots=True, frozen=True)
class WindowResult:
    index: int
    start: float
    end: float
    participants: dict[str, ParticipantResult]
    """Only the people who contributed data to this window."""
    room_engagement: float | None
    room_valence: float | None
    room_arousal: float | None
    room_faces: float
    silence_share: float
    evenness: float | None


@dataclass(slots=True)
class _Window:
    index: int
    start: float
    end: float
    """The nominal end, or the media's end for the last window of a known duration."""
    accs: dict[str, _Acc] = field(default_factory=dict)
    room: _Acc = field(default_factory=_Acc)
    camera: _Acc = field(default_factory=_Acc)
    """Frames of a shared room camera, and speech credited to no one: the room's, no person's."""

    def acc(self, participant: str) -> _Acc:
        return self.accs.setdefault(participant, _Acc())

    def clip(self, start: float, end: float) -> tuple[float, float] | None:
        """[start, end) within this window, or None when they do not overlap."""
        lo, hi = max(start, self.start), min(end, self.end)
        return (lo, hi) if hi > lo else None


class WindowAggregator:
    def __init__(self, settings: Settings, duration: float | None = None) -> None:
        self._w = settings.window.seconds
        self._duration = duration
        self._min_tail = max(1.0, self._w / 2)
        self._engagement_settings = settings.engagement
        self._windows: dict[int, _Window] = {}
        self._next_index = 0
        self._scorers: dict[str, EngagementScorer] = {}
        self._last_speaker: str | None = None
        self._last_end: dict[str, float] = {}
        self.late = 0

    @property
    def open_windows(self) -> int:
        return len(self._windows)

    def forget(self, participant: str) -> None:
        """Remove one person from every open window and from all state (consent revoked)."""
        self._scorers.pop(participant, None)
        self._last_end.pop(participant, None)
        if self._last_speaker == participant:
            self._last_speaker = None
        for win in self._windows.values():
            acc = win.accs.pop(participant, None)
            if acc is not None:
                win.room.remove(acc)

    def _last_index(self) -> int | None:
        """Index of the last window when the duration is known (the tail joins it)."""
        if self._duration is None:
            return None
        return max(0, int((self._duration - self._min_tail) // self._w))

    def _window(self, index: int) -> _Window | None:
        if index < self._next_index:
            return None
        last = self._last_index()
        if last is not None:
            index = min(index, last)
        win = self._windows.get(index)
        if win is None:
            end = (index + 1) * self._w
            if index == last and self._duration is not None:
                end = max(self._duration, index * self._w)
            win = self._windows[index] = _Window(index, index * self._w, end)
        return win

    def _spans(
        self, start: float, end: float, *, count_late: bool = True
    ) -> Iterable[tuple[_Window, float]]:
        """Windows overlapping [start, end) with the overlap in seconds (an instant: its window).
        Parts for windows already closed are dropped (counted as late unless told otherwise)."""
        if self._duration is not None:
            end = min(end, self._duration)
            start = min(start, end)
        first, last = int(start // self._w), int(max(start, end - 1e-9) // self._w)
        last_index = self._last_index()
        if last_index is not None:
            first, last = min(first, last_index), min(last, last_index)
        for k in range(first, last + 1):
            win = self._window(k)
            if win is None:
                self.late += count_late
                continue
            overlap = min(end, win.end) - max(start, win.start)
            if overlap > EPSILON_S or start == end:
                yield win, max(0.0, overlap)

    def add_presence(self, participant: str, start: float, end: float) -> None:
        """`participant`'s stream carried data over [start, end) (e.g. a live microphone, silent
        or not): they are part of the windows it covers."""
        for win, _ in self._spans(start, end, count_late=False):
            win.acc(participant)

    def add_frame(self, f: FrameSummary) -> None:
        win = self._window(int(f.t // self._w))
        if win is None:
            self.late += 1
            return
        win.room.add_frame(f)
        if f.participant is None:
            win.camera.add_frame(f)
        else:
            win.acc(f.participant).add_frame(f)

    def add_speech(self, seg: SpeechSegment) -> None:
        p = seg.participant
        new_turn = (
            self._last_speaker != p or seg.start - self._last_end.get(p, -math.inf) > TURN_GAP_S
        )
        self._last_speaker = p
        self._last_end[p] = seg.end
        if new_turn:
            win = self._window(int(seg.start // self._w))
            if win is None:
                self.late += 1
            else:
                win.acc(p).turns += 1
        for win, overlap in self._spans(seg.start, seg.end):
            acc = win.acc(p)
            span = win.clip(seg.start, seg.end)
            if span is not None:
                acc.spans.append(span)
            if seg.arousal is not None and overlap > 0:
                weight = overlap * seg.confidence
                acc.voice_arousal += seg.arousal * weight
                acc.voice_weight += weight
                if seg.valence is not None:
                    acc.voice_valence += seg.valence * weight
                    acc.voice_valence_weight += weight

    def add_room_speech(self, start: float, end: float) -> None:
        """Speech no participant can be credited with: it only makes the room less silent."""
        for win, _ in self._spans(start, end):
            span = win.clip(start, end)
            if span is not None:
                win.camera.spans.append(span)

    def add_text(self, score: TextScore) -> None:
        duration = max(score.end - score.start, 1e-3)
        for win, overlap in self._spans(score.start, max(score.end, score.start + 1e-3)):
            # Each window gets the share of the utterance it holds, times the head's confidence.
            weight = score.confidence * max(overlap, 1e-3) / duration
            acc = win.acc(score.participant)
            acc.text_valence += score.valence * weight
            acc.text_arousal += score.arousal * weight
            acc.text_weight += weight

    def resume_at(self, t: float) -> float:
        """A session carried on from media time `t` by another worker: windows start again at the
        next boundary (an earlier one may have been emitted, or held data this one never saw);
        returns that boundary. Items before it count as late."""
        self._next_index = max(self._next_index, math.ceil(t / self._w - 1e-9))
        return self._next_index * self._w

    def advance(self, watermark: float) -> list[WindowResult]:
        """Close, in order, every window whose end is at or before `watermark`."""
        out: list[WindowResult] = []
        last = self._last_index()
        while (self._next_index + 1) * self._w <= watermark + 1e-9:
            if last is not None and self._next_index >= last:
                break  # the last window takes the tail: flush() closes it
            out.append(self._close(self._next_index, self._next_index * self._w + self._w))
        return out

    def flush(self, end: float) -> list[WindowResult]:
        """Close every remaining window up to media time `end` (the last one may be short)."""
        out = self.advance(end)
        if end > self._next_index * self._w + 1e-6:
            out.append(self._close(self._next_index, end))
        self._windows.clear()  # anything past the end can no longer be reported
        return out

    def _close(self, index: int, end: float) -> WindowResult:
        win = self._windows.pop(index, None) or _Window(index, index * self._w, end)
        win.end = end
        self._next_index = index + 1
        length = max(end - win.start, 1e-6)
        speech = [*win.camera.spans, *(s for acc in win.accs.values() for s in acc.spans)]
        spoken = _union_length([(a, min(b, end)) for a, b in speech if min(b, end) > a])
        present = len(win.accs)
        results: dict[str, ParticipantResult] = {}
        for p, acc in sorted(win.accs.items()):
            # Speech is counted up to the window's real end (a session may end mid-window).
            acc.speech_s = sum(min(b, end) - a for a, b in acc.spans if min(b, end) > a)
            results[p] = self._participant(p, acc, end, length, present)
        shares = {p: r.speaking_share for p, r in results.items()}
        contributors = list(results.values())
        if win.camera.frames:
            # The shared camera is scored like one more member of the room: its attention and
            # expressiveness, and the room's overall speech as its participation.
            win.camera.speech_s = spoken
            win.camera.turns = sum(r.turns for r in results.values())
            contributors.append(self._participant(_CAMERA, win.camera, end, length, 1))
        scores = [r.engagement.score for r in contributors]
        valences = [r.affect.valence for r in contributors if r.affect.valence is not None]
        arousals = [r.affect.arousal for r in contributors if r.affect.arousal is not None]
        return WindowResult(
            index=index,
            start=win.start,
            end=end,
            participants=results,
            room_engagement=_mean(scores),
            room_valence=_mean(valences),
            room_arousal=_mean(arousals),
            room_faces=win.room.faces / win.room.frames if win.room.frames else 0.0,
            silence_share=min(1.0, max(0.0, 1.0 - spoken / length)),
            evenness=evenness(shares),
        )

    def _participant(
        self, p: str, acc: _Acc, end: float, length: float, present: int
    ) -> ParticipantResult:
        estimates: dict[Modality, ModalityEstimate] = {}
        for modality, est in (
            (Modality.FACE, acc.face_estimate()),
            (Modality.VOICE, acc.voice_estimate(length)),
            (Modality.TEXT, acc.text_estimate()),
        ):
            if est is not None:
                estimates[modality] = est
        share = min(1.0, acc.speech_s / length)
        scorer = self._scorers.setdefault(p, EngagementScorer(self._engagement_settings))
        engagement = scorer.score(
            end,
            EngagementInputs(
                attention=acc.attention / acc.frames if acc.frames else None,
                expressiveness=acc.expressiveness / acc.face_frames if acc.face_frames else None,
                speaking_share=share,
                turns=acc.turns,
                participants=max(1, present),
            ),
        )
        return ParticipantResult(
            engagement=engagement,
            affect=fuse(estimates),
            speaking_share=share,
            turns=acc.turns,
            faces=acc.faces / acc.frames if acc.frames else 0.0,
        )


def evenness(shares: dict[str, float]) -> float | None:
    """Normalised Shannon entropy of speaking shares: 1 when even, 0 when one person speaks."""
    if len(shares) < 2:
        return None
    total = sum(shares.values())
    if total <= 0:
        return None
    probs = [s / total for s in shares.values() if s > 0]
    h = -sum(q * math.log(q) for q in probs)
    return h / math.log(len(shares))


def slope_per_minute(times: list[float], values: list[float]) -> float | None:
    """Least-squares slope of values against times (seconds), per minute."""
    if len(values) < 2:
        return None
    mt, mv = sum(times) / len(times), sum(values) / len(values)
    var = sum((t - mt) ** 2 for t in times)
    if var <= 0:
        return None
    cov = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True))
    return cov / var * 60.0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for s, e in sorted(spans):
        if cur_end is None or s > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total
