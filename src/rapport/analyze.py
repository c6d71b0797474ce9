"""Analysing one recording: a file tap feeding a Session, events to JSONL, a summary to JSON."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rapport.analytics.payloads import Reporting
from rapport.config import Settings
from rapport.consent.gate import ConsentGate
from rapport.errors import MediaError, TranscriptError
from rapport.events.bus import EventBus, JsonlFile, check_writable, write_atomically
from rapport.events.schema import Event
from rapport.frames import Utterance, VideoFrame
from rapport.pack import OfflinePack
from rapport.session import ROOM_STREAM, Session
from rapport.speakers import ATTRIBUTE_S
from rapport.taps.file import MediaInfo, probe, read_recording
from rapport.taps.transcript import load_transcript

Progress = Callable[[float], None]
"""Called with the media time reached, in seconds."""


@dataclass(slots=True)
class AnalysisResult:
    session_id: str
    summary: Event
    """The session.summary event: the summary with the models that produced it."""
    models: dict[str, str]
    notes: list[str]
    events: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Plan:
    """What will be analysed, decided before any model runs (so bad input fails first)."""

    info: MediaInfo
    utterances: list[Utterance]
    modalities: list[str]
    transcribe: bool
    notes: list[str]
    participant: str

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({u.participant for u in self.utterances}))

    @property
    def owner(self) -> str | None:
        """One named speaker owns the stream; several make the camera a shared room camera."""
        speakers = self.speakers
        return speakers[0] if len(speakers) == 1 else (None if speakers else self.participant)

    @property
    def stream(self) -> str:
        return self.owner or ROOM_STREAM


def plan(recording: Path, transcript: Path | None, participant: str, stt: bool) -> Plan:
    info = probe(recording)
    notes: list[str] = []
    utterances: list[Utterance] = []
    if transcript is not None:
        utterances = load_transcript(transcript, default_participant=participant)
        utterances, outside = _within(utterances, info.duration_s)
        if not utterances:
            raise TranscriptError(
                f"transcript {transcript}: no cue falls within the recording's "
                f"{info.duration_s:.1f} s"
            )
        if outside:
            notes.append(f"{outside} transcript cue(s) past the end of the media ignored or cut")
    modalities: list[str] = []
    if info.has_video:
        modalities.append("face")
    else:
        notes.append("no video stream: analysing voice (and text) only")
    if info.has_audio:
        modalities.append("voice")
    else:
        notes.append("no audio stream: analysing video only")
    transcribe = not utterances and info.has_audio and stt
    if utterances or transcribe:
        modalities.append("text")
    if transcribe:
        notes.append("no transcript: transcribing speech with pocketsphinx")
    if not modalities:
        raise MediaError(f"{recording}: nothing to analyse")
    return Plan(info, utterances, modalities, transcribe, notes, participant)


def _within(utterances: list[Utterance], duration: float) -> tuple[list[Utterance], int]:
    """Cues clipped to [0, duration]; also how many were cut or dropped."""
    kept = [
        u if u.end <= duration else Utterance(u.participant, u.start, duration, u.text)
        for u in utterances
        if u.start < duration
    ]
    return kept, sum(1 for u in utterances if u.end > duration)


def open_session(
    p: Plan,
    *,
    settings: Settings,
    pack: OfflinePack,
    bus: EventBus,
    reporting: Reporting,
    gate: ConsentGate | None = None,
) -> Session:
    if gate is not None and p.owner is None:
        gate.set_members(ROOM_STREAM, p.speakers)
    return Session(
        settings=settings,
        pack=pack,
        bus=bus,
        owner=p.owner,
        speakers=p.speakers,
        reporting=reporting,
        transcribe=p.transcribe,
        duration_s=p.info.duration_s,
        gate=gate,
    )


def feed(
    session: Session,
    recording: Path,
    p: Plan,
    settings: Settings,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    speed: float = 0.0,
) -> float:
    """Push the recording's items into `session` in media order; returns the media time reached.

    `speed` 1.0 paces the items as a live source would (tests of live behaviour, demos); 0 runs
    as fast as the models go. `stop` ends the feed early. Transcript cues are pushed as the media
    reaches them (ATTRIBUTE_S ahead, the reach of speaker attribution), as a live source gives them.
    """
    cues = deque(sorted(p.utterances, key=lambda u: u.start))
    began = time.monotonic()
    t = 0.0
    for item in read_recording(
        recording,
        participant=p.stream,
        sample_fps=settings.video.sample_fps,
        max_side=settings.video.max_side,
    ):
        t = item.t if isinstance(item, VideoFrame) else item.end
        if speed > 0:
            ahead = t / speed - (time.monotonic() - began)
            if ahead > 0 and stop is not None and stop.wait(ahead):
                return t
            if ahead > 0 and stop is None:
                time.sleep(ahead)
        if stop is not None and stop.is_set():
            return t
        while cues and cues[0].start <= t + ATTRIBUTE_S:
            session.push_utterance(cues.popleft())
        if isinstance(item, VideoFrame):
            session.push_video(item)
        else:
            session.push_audio(item)
        if progress is not None:
            progress(t)
    while cues:
        session.push_utterance(cues.popleft())
    return max(t, p.info.duration_s)


def analyze(
    recording: Path,
    *,
    settings: Settings,
    pack: OfflinePack,
    out: Path,
    summary_path: Path | None,
    transcript: Path | None = None,
    participant: str = "participant",
    reporting: Reporting = "participant",
    stt: bool = True,
    progress: Progress | None = None,
    extra_sinks: list[Callable[[Event], None]] | None = None,
) -> AnalysisResult:
    p = plan(recording, transcript, participant, stt)
    for path in (out, summary_path):
        if path is not None:
            check_writable(path)
    models = pack.model_names(p.modalities, transcribed=p.transcribe)
    session_id = f"ses_{uuid.uuid4().hex[:24]}"
    count = 0

    def counted(_: Event) -> None:
        nonlocal count
        count += 1

    with JsonlFile(out) as sink:
        bus = EventBus(session_id, models, [sink, counted, *(extra_sinks or [])])
        session = open_session(p, settings=settings, pack=pack, bus=bus, reporting=reporting)
        session.start(source="recording", modalities=p.modalities)
        feed(session, recording, p, settings, progress=progress)
        summary = session.finish(p.info.duration_s)
    if summary_path is not None:
        write_atomically(summary_path, summary.model_dump_json(indent=2) + "\n")
    return AnalysisResult(session_id, summary, models, p.notes, count, dict(session.counts))
