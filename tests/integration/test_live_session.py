"""A live room's session: a microphone per participant (each with its own VAD), items interleaved
as they arrive, a clock tick closing windows; speech is credited to the microphone's owner, and a
window closes on time while someone is talking across its end."""

from __future__ import annotations

import heapq
import time
from pathlib import Path

import numpy as np

from rapport.config import Settings
from rapport.consent.gate import ConsentGate, Grant
from rapport.events.bus import EventBus
from rapport.events.schema import Event
from rapport.frames import SAMPLE_RATE, AudioChunk, VideoFrame
from rapport.pack import OfflinePack
from rapport.samples import make_recording
from rapport.session import Session
from rapport.taps.file import read_recording


def test_each_microphone_is_its_owners_voice(models_dir: Path, media_dir: Path) -> None:
    alice = make_recording(
        media_dir / "mic-alice.wav",
        duration_s=10.0,
        with_video=False,
        speech=((3.0, "Good morning, I have an update on the launch, and some good news too."),),
    )
    bob = make_recording(
        media_dir / "mic-bob.wav",
        duration_s=10.0,
        with_video=False,
        speech=((7.5, "Thanks, that sounds great."),),
    )
    settings = Settings(models_dir=models_dir, window={"seconds": 5})
    pack = OfflinePack(settings)
    events: list[Event] = []
    reached: list[float] = []  # media time fed when each event came out
    gate = ConsentGate()
    for who in ("alice", "bob"):
        gate.grant(Grant(f"cns_{who}", who, frozenset({"voice"}), time.time() + 3600))
    session = Session(
        settings=settings,
        pack=pack,
        bus=EventBus("ses_t", {}, [events.append, lambda _: reached.append(session.media_time)]),
        owner=None,
        gate=gate,
        live=True,
    )
    session.start(source="livekit", modalities=["voice"])

    def chunks(path: Path, who: str) -> list[tuple[float, int, AudioChunk]]:
        """In 100 ms pieces, as the bot hands them over (livekit.audio_chunk_ms)."""
        items = read_recording(path, participant=who, sample_fps=4, max_side=640)
        audio = np.concatenate([c.samples for c in items if not isinstance(c, VideoFrame)])
        n = SAMPLE_RATE // 10
        pieces = [
            AudioChunk(who, i / SAMPLE_RATE, audio[i : i + n]) for i in range(0, len(audio), n)
        ]
        return [(c.end, i, c) for i, c in enumerate(pieces)]

    merged = heapq.merge(chunks(alice.path, "alice"), chunks(bob.path, "bob"), key=lambda x: x[:2])
    for end, _, chunk in merged:
        session.push_audio(chunk)
        session.tick(end)
    summary = session.finish(10.0)
    turns = [(e, at) for e, at in zip(events, reached, strict=True) if e.type == "turns.window"]
    assert len(turns) == 2
    (first, first_at), (second, _) = ((t.model_dump()["data"], at) for t, at in turns)
    # alice talks from 3 s to past 5 s: the first window still closed within 0.2 s of its end
    assert first_at <= 5.2
    assert first["speaking_shares"].get("alice", 0) > 0.3 and not first["turns"].get("bob")
    assert second["speaking_shares"].get("alice", 0) > 0.05  # her sentence went on
    assert second["speaking_shares"].get("bob", 0) > 0.1
    assert summary.model_dump()["data"]["turns"] == {"alice": 1, "bob": 1}  # a cut is no turn
    pack.close()
