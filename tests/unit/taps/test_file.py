from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rapport.errors import MediaError
from rapport.frames import SAMPLE_RATE, AudioChunk, VideoFrame
from rapport.taps import file as file_tap
from rapport.taps.file import probe, read_recording
from rapport.taps.prefetch import prefetch
from tests.fakes.media import (
    Recording,
    make_recording,
    no_av_streams,
    not_media,
    random_bytes,
    truncated,
    zero_duration,
    zero_length,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def av_rec(media: Path) -> Recording:
    return make_recording(media / "talk.mp4")  # 20 s, 640x360, 25 fps, the default script


def decode(
    path: Path, sample_fps: float = 4.0, max_side: int = 320
) -> list[VideoFrame | AudioChunk]:
    return list(read_recording(path, participant="ana", sample_fps=sample_fps, max_side=max_side))


def frames_of(items: list[VideoFrame | AudioChunk]) -> list[VideoFrame]:
    return [i for i in items if isinstance(i, VideoFrame)]


def audio_of(items: list[VideoFrame | AudioChunk]) -> np.ndarray:
    return np.concatenate([i.samples for i in items if isinstance(i, AudioChunk)])


def test_probe_describes_an_audio_video_recording(av_rec: Recording) -> None:
    info = probe(av_rec.path)
    assert info.duration_s == pytest.approx(20.0, abs=0.05)
    assert (info.has_video, info.has_audio) == (True, True)
    assert (info.width, info.height, info.fps) == (640, 360, 25.0)


@pytest.mark.parametrize(("sample_fps", "max_side"), [(4.0, 320), (2.0, 1000), (5.0, 200)])
def test_video_is_sampled_downscaled_and_evenly_spaced(
    av_rec: Recording, sample_fps: float, max_side: int
) -> None:
    frames = frames_of(decode(av_rec.path, sample_fps, max_side))
    assert abs(len(frames) - av_rec.duration_s * sample_fps) <= 1
    expected_hw = (360, 640) if max_side >= 640 else (round(360 * max_side / 640), max_side)
    for f in frames:
        assert f.rgb.shape == (*expected_hw, 3)
        assert f.rgb.dtype == np.uint8 and f.rgb.flags.c_contiguous
        assert f.participant == "ana"
    gaps = np.diff([f.t for f in frames])
    assert frames[0].t == 0.0
    assert np.all(np.abs(gaps - 1 / sample_fps) <= 1 / av_rec.fps + 1e-6)


def test_frames_are_rgb_not_bgr(av_rec: Recording) -> None:
    first = frames_of(decode(av_rec.path))[0].rgb
    r, _g, b = first[:20, :20].reshape(-1, 3).mean(axis=0)  # the cool (blue-grey) corner
    assert b > r + 20
    r, _g, b = first[-20:, -20:].reshape(-1, 3).mean(axis=0)  # the warm corner
    assert r > b + 20


def test_items_come_in_media_time_order_with_both_kinds(av_rec: Recording) -> None:
    items = decode(av_rec.path)
    times = [i.t for i in items]
    assert times == sorted(times)
    assert {type(i) for i in items} == {VideoFrame, AudioChunk}


def test_audio_is_16k_mono_in_contiguous_half_second_chunks(av_rec: Recording) -> None:
    chunks = [i for i in decode(av_rec.path) if isinstance(i, AudioChunk)]
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    assert all(len(c.samples) == SAMPLE_RATE // 2 for c in chunks[:-1])
    assert 0 < len(chunks[-1].samples) <= SAMPLE_RATE // 2
    assert chunks[0].t == 0.0
    for before, after in itertools.pairwise(chunks):
        assert after.t == pytest.approx(before.end)
    assert chunks[-1].end == pytest.approx(av_rec.duration_s, abs=0.1)
    assert all(np.abs(c.samples).max() <= 1.0 for c in chunks)


def test_speech_is_heard_where_the_script_puts_it(av_rec: Recording) -> None:
    audio = audio_of(decode(av_rec.path))

    def rms(a: float, b: float) -> float:
        seg = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))

    speech = av_rec.speech
    assert len(speech) == 6
    silences = [(a.end + 0.1, b.start - 0.1) for a, b in itertools.pairwise(speech)]
    quiet = max(rms(a, b) for a, b in silences if b - a > 0.1)
    assert quiet < 0.005
    for u in speech:
        assert rms(u.start, u.end) > 10 * quiet + 0.02, u.text


def test_video_only_recording(media: Path) -> None:
    rec = make_recording(media / "silent.mp4", duration_s=3.0, with_audio=False)
    info = probe(rec.path)
    assert (info.has_video, info.has_audio) == (True, False)
    items = decode(rec.path)
    assert items and all(isinstance(i, VideoFrame) for i in items)
    assert abs(len(items) - 12) <= 1


@pytest.mark.parametrize("name", ["voice.wav", "voice.m4a"])
def test_audio_only_recording(media: Path, name: str) -> None:
    rec = make_recording(media / name, duration_s=4.0, with_video=False)
    info = probe(rec.path)
    assert (info.has_video, info.has_audio) == (False, True)
    assert (info.width, info.height, info.fps) == (None, None, None)
    items = decode(rec.path)
    assert all(isinstance(i, AudioChunk) for i in items)
    assert len(audio_of(items)) / SAMPLE_RATE == pytest.approx(4.0, abs=0.1)


def test_sampling_faster_than_the_video_yields_each_frame_once(media: Path) -> None:
    rec = make_recording(media / "slow.mp4", duration_s=2.0, fps=10, with_audio=False)
    frames = frames_of(decode(rec.path, sample_fps=30.0))
    times = [f.t for f in frames]
    assert len(times) == len(set(times)) == 20


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("decode:")]


def test_closing_early_stops_the_decoder_thread(av_rec: Recording) -> None:
    it = read_recording(av_rec.path, participant="ana", sample_fps=4.0, max_side=320)
    assert _decoder_threads() == []  # nothing starts before the first next()
    next(it)
    assert len(_decoder_threads()) == 1
    it.close()  # type: ignore[attr-defined]
    assert _decoder_threads() == []


def test_errors_are_raised_before_iteration(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        read_recording(tmp_path / "nope.mp4", participant="ana", sample_fps=4.0, max_side=320)
    with pytest.raises(ValueError, match="sample_fps"):
        read_recording(tmp_path / "nope.mp4", participant="ana", sample_fps=0.0, max_side=320)


Builder = Callable[[Path, Path], Path]

BAD_INPUTS: dict[str, tuple[Builder, str]] = {
    "missing": (lambda d, good: d / "missing.mp4", "no such file"),
    "directory": (lambda d, good: d, "is a directory"),
    "zero length": (lambda d, good: zero_length(d / "empty.mp4"), "empty file (0 bytes)"),
    "text file": (lambda d, good: not_media(d / "notes.txt"), "not an audio or video file"),
    "text as mp4": (lambda d, good: not_media(d / "notes.mp4"), "not an audio or video file"),
    "random bytes": (lambda d, good: random_bytes(d / "noise.mp4"), "not an audio or video file"),
    "no streams": (lambda d, good: no_av_streams(d / "subs.mkv"), "no audio or video stream"),
    "zero duration": (lambda d, good: zero_duration(d / "nothing.wav"), "zero duration"),
    "mp4 cut in half": (lambda d, good: truncated(good, d / "half.mp4", 0.5), "truncated"),
    "mp4 nearly whole": (lambda d, good: truncated(good, d / "most.mp4", 0.98), "truncated"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_give_one_line_media_errors(
    tmp_path: Path, av_rec: Recording, case: str
) -> None:
    build, expected = BAD_INPUTS[case]
    path = build(tmp_path, av_rec.path)
    with pytest.raises(MediaError) as err:
        decode(path)
    message = str(err.value)
    assert expected in message
    assert str(path) in message and "\n" not in message


def test_mp4_with_index_at_end_cut_short_fails_at_open(media: Path, tmp_path: Path) -> None:
    rec = make_recording(media / "late_index.mp4", duration_s=4.0, faststart=False)
    assert decode(rec.path)  # whole, it is fine
    cut = truncated(rec.path, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(MediaError, match=r"truncated or unfinished MP4 \(its index, the moov"):
        probe(cut)


@pytest.mark.parametrize("name", ["cut.mkv", "cut.wav", "cut.m4a"])
def test_other_containers_cut_short_are_truncated(media: Path, tmp_path: Path, name: str) -> None:
    suffix = Path(name).suffix
    rec = make_recording(media / f"whole{suffix}", duration_s=6.0, with_video=suffix == ".mkv")
    cut = truncated(rec.path, tmp_path / name, 0.5)
    with pytest.raises(MediaError, match="truncated"):
        decode(cut)


def test_decoding_itself_catches_a_stream_that_stops_early(
    av_rec: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the probe's look at the tail, the decoder must still notice the missing half.
    monkeypatch.setattr(file_tap, "probe", lambda path: None)
    cut = truncated(av_rec.path, tmp_path / "half.mp4", 0.5)
    with pytest.raises(MediaError, match="truncated"):
        decode(cut)


def test_prefetch_closed_early_stops_pulling_and_closes_the_producer() -> None:
    pulled: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(10_000):
                pulled.append(i)
                yield i
        finally:
            closed.set()

    it = prefetch(produce, maxsize=2, name="test-prefetch")
    assert next(it) == 0
    it.close()  # type: ignore[attr-defined]
    assert closed.is_set()
    assert len(pulled) <= 2 + 3  # the queue, the one in hand, and one in flight at most
    assert not any(t.name == "test-prefetch" for t in threading.enumerate())


def test_prefetch_passes_items_in_order_and_raises_the_producers_error() -> None:
    def produce() -> Iterator[int]:
        yield from range(50)
        raise MediaError("boom at the end")

    got: list[int] = []
    with pytest.raises(MediaError, match="boom at the end"):
        got.extend(prefetch(produce, maxsize=3, name="test-prefetch"))
    assert got == list(range(50))
