"""A live room's session: a microphone per participant (each with its own VAD), items interleaved
as they arrive, a clock tick closing windows; speech is credited to the microphone's owner."""

from __future__ import annotations

import heapq
import time
from pathlib import Path

from rapport.config import Settings
from rapport.consent.gate import ConsentGate, Grant
from rapport.events.bus import EventBus
from rapport.events.schema import Event
from rapport.frames import AudioChunk, VideoFrame
from rapport.pack import OfflinePack
from rapport.samples import make_recording
from rapport.session import Session
from rapport.taps.file import read_recording


def test_each_microphone_is_its_owners_voice(models_dir: Path, media_dir: Path) -> None:
    alice = make_recording(
        media_dir / "mic-alice.wav",
        duration_s=10.0,
        with_video=False,
        speech=((0.5, "Good morning, I have an update on the launch."),),
    )
    bob = make_recording(
        media_dir / "mic-bob.wav",
        duration_s=10.0,
        with_video=False,
        speech=((5.5, "Thanks, that sounds great to me."),),
    )
    settings = Settings(models_dir=models_dir, window={"seconds": 5})
    pack = OfflinePack(settings)
    events: list[Event] = []
    gate = ConsentGate()
    for who in ("alice", "bob"):
        gate.grant(Grant(f"cns_{who}", who, frozenset({"voice"}), time.time() + 3600))
    session = Session(
        settings=settings,
        pack=pack,
        bus=EventBus("ses_t", {}, [events.append]),
        owner=None,
        gate=gate,
    )
    session.start(source="livekit", modalities=["voice"])

    def chunks(path: Path, who: str) -> list[tuple[float, int, AudioChunk]]:
        items = read_recording(path, participant=who, sample_fps=4, max_side=640)
        return [(c.end, i, c) for i, c in enumerate(items) if not isinstance(c, VideoFrame)]

    merged = heapq.merge(chunks(alice.path, "alice"), chunks(bob.path, "bob"), key=lambda x: x[:2])
    for end, _, chunk in merged:
        session.push_audio(chunk)
        session.tick(end)
    summary = session.finish(10.0)
    turns = [e for e in events if e.type == "turns.window"]
    assert len(turns) == 2
    first, second = (t.model_dump()["data"]["speaking_shares"] for t in turns)
    assert first.get("alice", 0) > 0.3 and first.get("bob", 0) == 0
    assert second.get("bob", 0) > 0.2 and second.get("alice", 0) == 0
    assert set(summary.model_dump()["data"]["turns"]) == {"alice", "bob"}
    pack.close()
