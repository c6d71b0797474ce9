from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rapport.frames import Box, VideoFrame
from rapport.samples import DEFAULT_SCRIPT, Recording, SynthesisError, make_recording
from rapport.taps.file import probe, read_recording
from rapport.taps.transcript import load_transcript


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="module")
def talk(media: Path) -> Recording:
    return make_recording(media / "talk.mp4", transcript=media / "talk.vtt")


def detect_faces(rgb: np.ndarray) -> list[Box]:
    """An independent detector (OpenCV's Haar cascade) to check the faces are findable."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    assert not cascade.empty()
    found = cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1.1, 5)
    return [Box(x, y, x + w, y + h) for x, y, w, h in found]


def sampled_frames(rec: Recording, sample_fps: float = 2.0) -> list[VideoFrame]:
    items = read_recording(rec.path, participant="p", sample_fps=sample_fps, max_side=1000)
    return [i for i in items if isinstance(i, VideoFrame)]


def test_default_recording_shape_and_ground_truth(talk: Recording) -> None:
    info = probe(talk.path)
    assert (info.width, info.height, info.fps, info.has_audio) == (640, 360, 25.0, True)
    assert info.duration_s == pytest.approx(20.0, abs=0.05)
    assert len(talk.faces) == 500 and all(len(f) == 1 for f in talk.faces)
    centres = np.array([((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2) for (b,) in talk.faces])
    sides = np.array([b.width for (b,) in talk.faces])
    assert np.ptp(centres[:, 0]) > 20 and np.ptp(centres[:, 1]) > 10  # it moves
    assert sides.max() / sides.min() > 1.1  # and breathes in scale
    assert np.abs(np.diff(centres, axis=0)).max() < 3  # slowly: a few pixels per frame at most


@pytest.mark.parametrize("faces", [1, 2, 4])
def test_faces_are_where_ground_truth_says(media: Path, faces: int) -> None:
    rec = make_recording(media / f"faces{faces}.mp4", duration_s=4.0, faces=faces, speech=())
    for frame in sampled_frames(rec):
        truth = rec.faces[round(frame.t * rec.fps)]
        assert len(truth) == faces
        found = detect_faces(frame.rgb)
        assert len(found) == faces
        for box in truth:
            assert box.width >= 55
            assert max(box.iou(f) for f in found) > 0.6


def test_face_gap_hides_every_face(media: Path) -> None:
    rec = make_recording(media / "gap.mp4", duration_s=4.0, faces=2, face_gap=(1.0, 2.5))
    for frame in sampled_frames(rec):
        hidden = 1.0 <= frame.t < 2.5
        assert (rec.faces[round(frame.t * rec.fps)] == ()) is hidden
        assert (detect_faces(frame.rgb) == []) is hidden


def test_speech_lines_start_near_their_script_times(talk: Recording) -> None:
    assert [u.text for u in talk.speech] == [text for _, text in DEFAULT_SCRIPT]
    for (at, _), u in zip(DEFAULT_SCRIPT, talk.speech, strict=True):
        assert at <= u.start < at + 0.4  # the synthesiser's leading silence is trimmed
        assert u.participant == "presenter"
    for a, b in zip(talk.speech, talk.speech[1:], strict=False):
        assert a.end < b.start  # the default script does not overlap itself


def test_transcript_matches_the_speech(talk: Recording) -> None:
    assert talk.transcript is not None
    got = load_transcript(talk.transcript, default_participant="nobody")
    assert [(u.participant, u.text) for u in got] == [(u.participant, u.text) for u in talk.speech]
    for g, u in zip(got, talk.speech, strict=True):
        assert g.start == pytest.approx(u.start, abs=0.001)
        assert g.end == pytest.approx(u.end, abs=0.001)


def test_default_script_turns_negative_in_the_middle() -> None:
    vader = SentimentIntensityAnalyzer()
    scores = [vader.polarity_scores(text)["compound"] for _, text in DEFAULT_SCRIPT]
    assert scores[0] > 0.3 and scores[1] > 0.3 and scores[-2] > 0.3 and scores[-1] > 0.3
    assert scores[2] < -0.3 and scores[3] < -0.3


def test_mp4_is_faststart_unless_asked_otherwise(talk: Recording, media: Path) -> None:
    head = talk.path.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")
    late = make_recording(media / "late.mp4", duration_s=1.0, faststart=False).path.read_bytes()
    assert late.index(b"moov") > late.index(b"mdat")


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    kwargs = {"duration_s": 2.0, "faces": 2, "speech": ((0.2, "Same every time."),)}
    a = make_recording(tmp_path / "a.mp4", **kwargs)  # type: ignore[arg-type]
    b = make_recording(tmp_path / "b.mp4", **kwargs)  # type: ignore[arg-type]
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.faces == b.faces and a.speech == b.speech


def test_espeak_voice_and_fallback_when_flite_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_recording(
        tmp_path / "e.wav",
        duration_s=3.0,
        with_video=False,
        voice="espeak-ng",
        speech=((0.5, "Spoken by espeak."),),
    )
    assert len(rec.speech) == 1 and rec.speech[0].end > rec.speech[0].start + 0.5
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "flite" else real_which(name))
    rec = make_recording(
        tmp_path / "f.wav", duration_s=3.0, with_video=False, speech=((0.5, "Flite is gone."),)
    )
    assert len(rec.speech) == 1


def test_no_synthesiser_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SynthesisError, match=r"needs flite or espeak-ng: install them"):
        make_recording(tmp_path / "x.mp4", duration_s=1.0, speech=((0.0, "Nobody to say this."),))


def test_silent_recording_needs_no_synthesiser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    rec = make_recording(tmp_path / "quiet.mp4", duration_s=1.0, speech=())
    assert rec.speech == () and probe(rec.path).has_audio


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration_s": 0.0},
        {"size": (641, 360)},
        {"with_audio": False, "with_video": False},
        {"faces": -1},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_recording(tmp_path / "x.mp4", **kwargs)  # type: ignore[arg-type]


def test_video_in_an_audio_only_container_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="audio only"):
        make_recording(tmp_path / "x.wav", duration_s=1.0)
