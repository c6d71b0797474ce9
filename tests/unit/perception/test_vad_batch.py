"""Voice activity of several microphones in one batch (vad.prefetch): each stream gets the
probabilities, states and segments it gets alone, whatever the order its chunks come in; a
prefetched result serves only the exact samples and state it was computed from; and the live
queue batches the microphones' chunks that wait."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from prometheus_client import REGISTRY

from rapport.config import RuntimeSettings
from rapport.consent.gate import Grant
from rapport.events.schema import EventType
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment
from rapport.live import LiveSession
from rapport.perception.vad import WINDOW, SileroVad, prefetch
from rapport.perception.voice import VoiceActivity
from tests.fakes.heads import LiveRoom, audio
from tests.unit.perception.test_voice import A, B, Say, say, timeline  # noqa: F401
from tests.unit.test_live import WAIT_S

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt)")

Audio = NDArray[np.float32]


@pytest.fixture(scope="module")
def shared(models_dir: Path) -> SileroVad:
    return SileroVad.load(models_dir, RuntimeSettings())


@pytest.fixture(scope="module")
def tracks(say: Say) -> list[Audio]:  # noqa: F811
    """Four microphones: speech at different places, one of them silent."""
    a, b = say(A), say(B)
    rng = np.random.default_rng(3)
    noisy = timeline(1.1, b, 0.4)[0]
    return [
        timeline(0.3, a, 0.8, b, 0.5)[0],
        noisy + rng.normal(0, 0.002, noisy.shape).astype(np.float32),
        timeline(0.2, a, 1.5)[0],
        np.zeros(SAMPLE_RATE * 3, np.float32),
    ]


def _stream(shared: SileroVad, who: str) -> VoiceActivity:
    return VoiceActivity(
        Path("unused"), RuntimeSettings(), who, vad=SileroVad(shared.session), prosody=False
    )


def _chunks(who: str, x: Audio, sizes: list[int]) -> list[AudioChunk]:
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(AudioChunk(who, i / SAMPLE_RATE, x[i : i + n]))
        i, k = i + n, k + 1
    return out


def _segments(va: VoiceActivity, chunks: list[AudioChunk]) -> list[SpeechSegment]:
    out: list[SpeechSegment] = []
    for c in chunks:
        out += va.push(c)
    return out + va.flush()


def _key(segments: list[SpeechSegment]) -> list[tuple[float, float]]:
    return [(round(s.start, 4), round(s.end, 4)) for s in segments]


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([160, 512, 1000, 1600, 2048, 3200]), min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_batched_streams_get_what_each_gets_alone(
    shared: SileroVad, tracks: list[Audio], sizes: list[int], order: object
) -> None:
    people = [f"p{i}" for i in range(len(tracks))]
    chunks = {
        who: _chunks(who, x, sizes[i:] + sizes[:i])
        for i, (who, x) in enumerate(zip(people, tracks, strict=True))
    }
    alone = {who: _key(_segments(_stream(shared, who), chunks[who])) for who in people}
    assert any(alone.values()), "the tracks hold speech"

    # The live order: any interleaving that keeps each microphone's chunks in order; before each
    # chunk, every other microphone's next chunk is prefetched with it, as the live queue does.
    streams = {who: _stream(shared, who) for who in people}
    queue = {who: list(chunks[who]) for who in people}
    got: dict[str, list[SpeechSegment]] = {who: [] for who in people}
    while any(queue.values()):
        who = order.choice([p for p in people if queue[p]])  # type: ignore[attr-defined]
        chunk = queue[who].pop(0)
        ahead = [streams[who].ahead(chunk)]
        ahead += [streams[p].ahead(queue[p][0]) for p in people if p != who and queue[p]]
        prefetch([a for a in ahead if a is not None])
        got[who] += streams[who].push(chunk)
    batched = {who: _key(got[who] + streams[who].flush()) for who in people}
    assert batched == alone  # (an order taking one microphone to its end batches nothing)


def test_prefetched_probabilities_equal_a_stream_alone(
    shared: SileroVad, tracks: list[Audio]
) -> None:
    n = 6 * WINDOW
    parts = [x[:n] for x in tracks]
    alone = []
    for x in parts:
        v = SileroVad(shared.session)
        alone.append(np.concatenate([v.probs(x[: n // 2]), v.probs(x[n // 2 :])]))
    vads = [SileroVad(shared.session) for _ in parts]
    lengths = [n // 2, n // 3 // WINDOW * WINDOW, WINDOW, n // 2]  # uneven: the batch shrinks
    prefetch([(v, x[:k]) for v, x, k in zip(vads, parts, lengths, strict=True)])
    for v, x, k, want in zip(vads, parts, lengths, alone, strict=True):
        head = v.probs(x[:k])
        assert v.prefetched == k // WINDOW
        np.testing.assert_allclose(head, want[: k // WINDOW], atol=1e-5)
        rest = v.probs(x[k:n])  # the state it left runs on
        np.testing.assert_allclose(np.concatenate([head, rest]), want, atol=1e-5)


def test_a_stale_prefetch_is_not_used(shared: SileroVad, tracks: list[Audio]) -> None:
    x, y = tracks[0][: 4 * WINDOW], tracks[1][: 4 * WINDOW]  # silence; noise
    want = SileroVad(shared.session).probs(y)
    v, other = SileroVad(shared.session), SileroVad(shared.session)
    prefetch([(v, x), (other, y)])
    np.testing.assert_allclose(v.probs(y), want, atol=1e-6)  # other samples: computed anew
    assert v.prefetched == 0
    v.probs(x)  # the stream moves on: its state is no longer the fresh one `want` started from
    prefetch([(v, y), (other, x)])
    v.reset()  # a new stream (or a revocation) between: the state it was computed from is gone
    np.testing.assert_allclose(v.probs(y), want, atol=1e-6)
    assert v.prefetched == 0
    with pytest.raises(ValueError, match="multiples"):
        prefetch([(v, x[:-1]), (other, y)])


def test_the_live_queue_batches_waiting_microphones(
    shared: SileroVad, tracks: list[Audio], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four microphones' 100 ms chunks all wait before the worker starts, as under load: the
    # events equal those of the same chunks pushed one by one, and most windows ran in batches.
    people = ["ann", "bob", "cy", "dee"]
    chunks = sorted(
        (c for who, x in zip(people, tracks, strict=True) for c in _chunks(who, x, [1600])),
        key=lambda c: (c.t, c.participant),
    )
    end = max(c.end for c in chunks)

    def room() -> LiveRoom:
        r = LiveRoom()
        for who in people:
            r.gate.grant(Grant(f"con_{who}", who, frozenset({"face", "voice", "text"}), 1e9))
        monkeypatch.setattr(
            r.pack,
            "voice_activity",
            lambda who, **kw: VoiceActivity(
                Path("unused"), RuntimeSettings(), who, vad=SileroVad(shared.session), **kw
            ),
        )
        r.clock.t = end
        return r

    one_by_one = room()
    for chunk in chunks:
        one_by_one.session.push_audio(chunk)
    one_by_one.session.finish(end)

    batched = room()
    live = LiveSession(lambda: batched.session, max_backlog=64, max_audio_backlog_s=60, name="b")
    before = REGISTRY.get_sample_value("rapport_vad_windows_batched_total") or 0.0
    for chunk in chunks:
        live.put(chunk)
    live.start()
    live.finish(end)
    assert live.join(WAIT_S) and live.error is None
    after = REGISTRY.get_sample_value("rapport_vad_windows_batched_total") or 0.0
    windows = sum(len(x) // WINDOW for x in tracks)
    assert after - before > windows / 2

    def windows_of(r: LiveRoom) -> list[object]:
        return [
            (e.media_time.start, e.media_time.end, e.data.model_dump()["participants"])
            for e in r.events
            if e.type == EventType.ENGAGEMENT_WINDOW
        ]

    assert batched.session.counts == one_by_one.session.counts
    assert batched.session.counts["speech_segments"] >= 4
    assert windows_of(batched) == windows_of(one_by_one) and windows_of(batched)


def test_look_ahead_skips_a_microphone_whose_consent_has_lapsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bob's consent ends at media time 3 s while his microphone is open and his chunks wait: the
    # session may not run his audio ahead of its turn (at his turn the gate drops it).
    room = LiveRoom()
    room.gate.grant(Grant("con_ann", "ann", frozenset({"face", "voice", "text"}), 1e9))
    room.gate.grant(Grant("con_bob", "bob", frozenset({"face", "voice", "text"}), 3.0))
    asked: list[str] = []
    look = VoiceActivity.ahead

    def spy(va: VoiceActivity, chunk: AudioChunk) -> object:
        asked.append(va.participant)
        return look(va, chunk)

    monkeypatch.setattr(VoiceActivity, "ahead", spy)
    for k in range(20):  # both talk for 2 s: both microphones open
        t = round(k / 10, 6)
        room.clock.t = t
        room.session.push_audio(audio("ann", t, 0.1, True), ahead=[audio("bob", t, 0.1, True)])
        room.session.push_audio(audio("bob", t, 0.1, True))
    assert asked.count("bob") == 19  # allowed: looked ahead from his second chunk (his first
    # opens his microphone)
    asked.clear()
    room.clock.t = 4.0
    room.session.push_audio(audio("ann", 2.0, 0.1, True), ahead=[audio("bob", 2.0, 0.1, True)])
    assert asked == ["ann"]
