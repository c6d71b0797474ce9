"""The face head over a real generated recording: tracks and their smoothing survive short gaps."""

from pathlib import Path

from rapport.config import FaceSettings, RuntimeSettings, SmoothingSettings
from rapport.frames import VideoFrame
from rapport.perception.face_expression import ExpressionClassifier
from rapport.perception.face_stream import FaceStream
from rapport.perception.faces import FaceDetector
from rapport.samples import make_recording
from rapport.taps.file import read_recording


def _run(models_dir: Path, video: Path, gap_s: float) -> list[tuple[float, int, int]]:
    runtime, faces = RuntimeSettings(), FaceSettings(track_gap_s=gap_s)
    stream = FaceStream(
        FaceDetector(models_dir, runtime, faces),
        ExpressionClassifier(models_dir, runtime),
        faces,
        SmoothingSettings(),
        owner="ann",
    )
    out = []
    for item in read_recording(video, participant="ann", sample_fps=4, max_side=640):
        if isinstance(item, VideoFrame):
            summary = stream.process(item)
            assert summary.participant == "ann"
            out.append((item.t, summary.faces, stream.tracks))
    return out


def test_two_faces_keep_their_tracks_through_a_short_gap(models_dir: Path, tmp_path: Path) -> None:
    video = make_recording(
        tmp_path / "gap.mp4", duration_s=6.0, faces=2, face_gap=(2.0, 3.0), with_audio=False
    ).path
    seen = _run(models_dir, video, gap_s=3.0)
    assert all(n == 2 for t, n, _ in seen if t < 1.9 or t > 3.1)
    assert all(n == 0 for t, n, _ in seen if 2.1 < t < 2.9)  # a gap, not a guess
    assert all(tracks == 2 for _, _, tracks in seen)  # no new tracks: ids and state kept


def test_tracks_end_after_a_gap_longer_than_allowed(models_dir: Path, tmp_path: Path) -> None:
    video = make_recording(
        tmp_path / "long-gap.mp4", duration_s=6.0, faces=1, face_gap=(1.0, 4.0), with_audio=False
    ).path
    seen = _run(models_dir, video, gap_s=1.0)
    assert [tracks for t, _, tracks in seen if 2.5 < t < 3.9] == [0] * len(
        [t for t, _, _ in seen if 2.5 < t < 3.9]
    )
    assert seen[-1][1:] == (1, 1)  # the face is back, on a fresh track
