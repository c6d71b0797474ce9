"""VoiceActivity on speech synthesised with flite, laid out on timelines with known silences."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from rapport.config import RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment
from rapport.perception import prosody
from rapport.perception.voice import VoiceActivity

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt)")

Audio = NDArray[np.float32]
Say = Callable[..., Audio]

A = "the quick brown fox jumps over the lazy dog"
B = "she sells sea shells by the sea shore today"


@pytest.fixture(scope="module")
def say(tmp_path_factory: pytest.TempPathFactory) -> Say:
    """flite's 16 kHz voice, trimmed to the speech itself (flite pads it with near-silence)."""
    out = tmp_path_factory.mktemp("flite") / "say.wav"

    def render(text: str, f0: float | None = None, stretch: float | None = None) -> Audio:
        cmd = ["flite", "-voice", "kal16"]
        if f0 is not None:
            cmd += ["--setf", f"int_f0_target_mean={f0}"]
        if stretch is not None:
            cmd += ["--setf", f"duration_stretch={stretch}"]
        subprocess.run([*cmd, "-t", text, "-o", str(out)], check=True)
        with wave.open(str(out)) as w:
            assert w.getframerate() == SAMPLE_RATE
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        x = pcm.astype(np.float32) / 32768.0
        loud = np.flatnonzero(np.abs(x) > 0.01)
        return x[loud[0] : loud[-1] + 1]

    return render


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


def timeline(*parts: Audio | float) -> tuple[Audio, list[tuple[float, float]]]:
    """Concatenate speech clips and silences (given in seconds); also return the speech spans."""
    clips = [silence(p) if isinstance(p, float) else p for p in parts]
    spans, t = [], 0.0
    for p, clip in zip(parts, clips, strict=True):
        d = len(clip) / SAMPLE_RATE
        if not isinstance(p, float):
            spans.append((t, t + d))
        t += d
    return np.concatenate(clips), spans


def run(va: VoiceActivity, audio: Audio, chunk_s: float, t0: float = 0.0) -> list[SpeechSegment]:
    n = round(chunk_s * SAMPLE_RATE)
    out: list[SpeechSegment] = []
    for i in range(0, len(audio), n):
        out += va.push(AudioChunk(va.participant, t0 + i / SAMPLE_RATE, audio[i : i + n]))
    return out + va.flush()


@pytest.fixture
def make_vad(models_dir: Path) -> Callable[..., VoiceActivity]:
    def make(**kw: float) -> VoiceActivity:
        return VoiceActivity(models_dir, RuntimeSettings(), "p1", **kw)

    return make


def test_segments_match_the_speech_intervals(say: Say, make_vad: Callable[..., VoiceActivity]):
    audio, spans = timeline(1.0, say(A), 1.5, say(B), 1.0)
    va = make_vad()
    segs = run(va, audio, 0.5)
    assert va.name == "silero-vad+prosody"
    assert len(segs) == len(spans) == 2
    for seg, (start, end) in zip(segs, spans, strict=True):
        assert seg.participant == "p1"
        assert seg.start == pytest.approx(start, abs=0.3)
        assert seg.end == pytest.approx(end, abs=0.3)
    assert va.speech_seconds == pytest.approx(sum(s.end - s.start for s in segs))


def test_silence_and_quiet_noise_give_no_segments(make_vad: Callable[..., VoiceActivity]):
    rng = np.random.default_rng(7)
    for audio in (silence(5.0), rng.normal(0.0, 0.01, 5 * SAMPLE_RATE).astype(np.float32)):
        va = make_vad()
        assert run(va, audio, 0.5) == []
        assert va.speech_seconds == 0.0


def test_chunk_size_does_not_change_the_segments(say: Say, make_vad: Callable[..., VoiceActivity]):
    audio, _ = timeline(0.7, say(A), 1.5, say(B), 0.9, say(A), 0.33)
    runs = [run(make_vad(), audio, chunk_s) for chunk_s in (0.1, 0.5, 1.7, 0.0137)]
    assert len(runs[0]) == 3
    for other in runs[1:]:
        assert [(s.start, s.end) for s in other] == [(s.start, s.end) for s in runs[0]]
        assert [s.arousal for s in other] == pytest.approx([s.arousal for s in runs[0]])


def test_times_follow_the_chunk_clock_across_a_gap(
    say: Say, make_vad: Callable[..., VoiceActivity]
):
    audio, spans = timeline(1.0, say(A), 1.0)
    va = make_vad()
    n = round(0.5 * SAMPLE_RATE)
    chunks = [audio[i : i + n] for i in range(0, len(audio), n)]
    segs: list[SpeechSegment] = []
    for t0 in (10.0, 100.0):  # the same recording twice, 90 s apart
        for k, chunk in enumerate(chunks):
            segs += va.push(AudioChunk("p1", t0 + k * 0.5, chunk))
    segs += va.flush()
    assert [round(s.start) for s in segs] == [11, 101]
    assert segs[1].start - segs[0].start == pytest.approx(90.0, abs=1e-6)
    assert segs[0].end == pytest.approx(10.0 + spans[0][1], abs=0.3)


def test_long_speech_is_cut_at_max_speech(say: Say, make_vad: Callable[..., VoiceActivity]):
    audio, spans = timeline(0.5, say(A, stretch=2.0), 0.5)
    segs = run(make_vad(max_speech_s=1.0), audio, 0.5)
    assert len(segs) >= 3
    assert all(s.end - s.start <= 1.0 + 1e-9 for s in segs)
    assert segs[0].start == pytest.approx(spans[0][0], abs=0.3)
    assert segs[-1].end == pytest.approx(spans[0][1], abs=0.3)


def test_louder_higher_speech_gets_higher_arousal_once_a_baseline_exists(
    say: Say, make_vad: Callable[..., VoiceActivity]
):
    flat = [say(t) for t in (A, B, "we should meet again next week to finish the plan")]
    line = "i cannot believe we finally did it"
    excited = say(line, f0=160, stretch=0.8) * 2.5
    audio, _ = timeline(0.5, flat[0], 1.0, flat[1], 1.0, flat[2], 1.0, excited, 1.0, say(line), 1.0)
    segs = run(make_vad(), audio, 0.5)
    assert len(segs) == 5
    first, *_, lively, calm = segs
    assert (first.arousal, first.confidence) == (0.0, 0.0)  # no baseline yet
    assert lively.arousal is not None and calm.arousal is not None
    assert lively.arousal > 0.5
    assert lively.arousal > calm.arousal + 0.5
    confidences = [s.confidence for s in segs]
    assert confidences[-1] > confidences[0]


def test_unvoiced_audio_has_no_prosody():
    noise = np.random.default_rng(3).normal(0.0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)
    assert prosody.measure(noise) is None
    assert prosody.measure(silence(0.01)) is None


def test_baseline_scores_against_earlier_segments_only():
    base = prosody.ArousalBaseline()
    calm = prosody.Prosody(f0_st=0.0, range_st=3.0, level_db=-30.0, rate=3.0, voiced_s=2.0)
    scores = [base.score(calm) for _ in range(prosody.MIN_BASELINE)]
    assert scores == [(0.0, 0.0)] * prosody.MIN_BASELINE  # nothing to compare with yet
    loud = prosody.Prosody(f0_st=4.0, range_st=6.0, level_db=-20.0, rate=4.0, voiced_s=2.0)
    quiet = prosody.Prosody(f0_st=-4.0, range_st=1.0, level_db=-40.0, rate=2.0, voiced_s=0.5)
    up, c_up = base.score(loud)
    down, c_down = base.score(quiet)
    assert up > 0.9 and down < -0.5
    assert 0.0 < c_down < c_up  # shorter voicing, despite a larger baseline
    assert base.size == prosody.MIN_BASELINE + 2


def test_bad_settings_and_foreign_chunks_are_refused(
    models_dir: Path, make_vad: Callable[..., VoiceActivity]
):
    with pytest.raises(ValueError):
        make_vad(on=0.3, off=0.4)
    with pytest.raises(ValueError):
        make_vad(max_speech_s=0.1)
    with pytest.raises(ValueError, match="p2"):
        make_vad().push(AudioChunk("p2", 0.0, silence(0.1)))


def test_missing_model_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="fetch"):
        VoiceActivity(tmp_path, RuntimeSettings(), "p1")


def test_pending_since_reports_speech_still_in_progress(
    say: Say, make_vad: Callable[..., VoiceActivity]
):
    audio, spans = timeline(1.0, say(A), 1.0)
    va = make_vad()
    assert va.push(AudioChunk("p1", 0.0, audio[:SAMPLE_RATE])) == []
    assert va.pending_since is None
    mid = round((spans[0][0] + 1.0) * SAMPLE_RATE)
    assert va.push(AudioChunk("p1", 1.0, audio[SAMPLE_RATE:mid])) == []
    since = va.pending_since
    assert since == pytest.approx(spans[0][0], abs=0.3)
    (seg,) = va.push(AudioChunk("p1", mid / SAMPLE_RATE, audio[mid:]))
    assert seg.start == since
    assert va.pending_since is None
    assert va.flush() == []


def test_without_prosody_segments_carry_no_arousal(
    say: Say, make_vad: Callable[..., VoiceActivity]
):
    audio, spans = timeline(0.5, say(A), 0.5, say(A), 0.5)
    va = make_vad(prosody=False)
    segments = va.push(AudioChunk("p1", 0.0, audio)) + va.flush()
    assert len(segments) == len(spans)
    assert all(s.arousal is None and s.confidence == 0.0 for s in segments)


def test_a_cut_closes_open_speech_at_the_boundary_and_goes_on(
    say: Say, make_vad: Callable[..., VoiceActivity]
):
    audio, spans = timeline(0.5, say(A, stretch=1.5), 0.8)
    whole = run(make_vad(), audio, 0.1)
    assert len(whole) == 1
    boundary = (spans[0][0] + spans[0][1]) / 2  # mid-speech
    va = make_vad()
    n = round(0.1 * SAMPLE_RATE)
    cut: list[SpeechSegment] = []
    for i in range(0, len(audio), n):
        chunk = AudioChunk("p1", i / SAMPLE_RATE, audio[i : i + n])
        cut += va.push(chunk)
        if va.pending_since is not None and chunk.end >= boundary > va.pending_since:
            cut += va.cut(boundary)
            assert va.pending_since == pytest.approx(boundary, abs=0.032)  # the rest goes on
    cut += va.flush()
    assert len(cut) == 2
    assert cut[0].start == whole[0].start and cut[1].end == whole[0].end
    assert cut[0].end == cut[1].start == pytest.approx(boundary, abs=0.032)
    assert va.cut(boundary) == []  # nothing open: nothing to cut


@pytest.mark.parametrize("seconds", [7.25, 10.0, 12.5])
def test_no_segment_ends_after_its_stream(seconds: float):
    # Found by the session tests: a live session cuts open speech at each window boundary (5 s);
    # at the stream's end the zero-padded last VAD window then closed a segment at max_speech_s,
    # 16 ms past the end, in a window its speaker never was in.
    from rapport.config import RuntimeSettings as Runtime
    from tests.fakes.heads import FakeVad

    fake: Any = FakeVad()
    vad = VoiceActivity(Path("/nonexistent"), Runtime(), "ann", max_speech_s=5.0, vad=fake)
    segments: list[SpeechSegment] = []
    for k in range(round(seconds / 0.25)):  # speech throughout, in 0.25 s chunks
        chunk = AudioChunk("ann", k * 0.25, np.full(4000, 0.3, np.float32))
        segments += vad.push(chunk)
        segments += vad.cut(chunk.end // 5.0 * 5.0)
    segments += vad.flush()
    assert max(s.end for s in segments) <= seconds + 1e-9
    assert sum(s.end - s.start for s in segments) == pytest.approx(seconds, abs=0.05)
