"""The face head: over a real generated recording (tracks and their smoothing survive short gaps),
and over scripted fakes (an engine that drops classifications, smoothing on media time)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rapport.config import FaceSettings, RuntimeSettings, SmoothingSettings
from rapport.frames import Box, Detection, Expression, VideoFrame
from rapport.labels import EXPRESSIONS, valence_arousal
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


# -- scripted fakes -------------------------------------------------------------------------------

_RGB = np.zeros((64, 64, 3), np.uint8)
_FACE = Detection(box=Box(10.0, 10.0, 40.0, 40.0), score=0.9, frontal=0.8)


class ScriptedDetector:
    """Finds the one face on frames whose time is in `present`, nothing elsewhere."""

    def __init__(self, present: Sequence[float]) -> None:
        self._present = set(present)
        self.t = 0.0

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        return [_FACE] if self.t in self._present else []


class ScriptedClassifier:
    """`expression` for every box (None: dropped by the engine), `after` once past `switch_at`."""

    name = "scripted"

    def __init__(self, detector: ScriptedDetector, expression: Expression | None) -> None:
        self._detector = detector
        self._expression = expression
        self.switch_at = math.inf
        self.after: Expression | None = None

    def classify(
        self, rgb: NDArray[np.uint8], boxes: Sequence[Box], stream: str = ""
    ) -> list[Expression | None]:
        e = self.after if self._detector.t > self.switch_at else self._expression
        return [e for _ in boxes]


def _scripted(
    present: Sequence[float], expression: Expression | None, gap_s: float = 0.5
) -> tuple[FaceStream, ScriptedDetector, ScriptedClassifier]:
    detector = ScriptedDetector(present)
    classifier = ScriptedClassifier(detector, expression)
    stream = FaceStream(
        detector,  # type: ignore[arg-type]
        classifier,
        FaceSettings(track_gap_s=gap_s),
        SmoothingSettings(),
        owner="ann",
    )
    return stream, detector, classifier


def _frame(detector: ScriptedDetector, t: float) -> VideoFrame:
    detector.t = t
    return VideoFrame("ann", t, _RGB)


def test_a_track_whose_every_classification_was_dropped_can_end() -> None:
    """Full pack under load: the engine dropped every classification of a face, then the face left.

    Its track ending must not kill the session (it raised KeyError: no smoother was ever made).
    """
    present = [0.0, 0.25, 0.5]
    stream, detector, _ = _scripted(present, expression=None, gap_s=0.5)
    tracks = []
    for k in range(8):  # the face is gone after 0.5 s; its track ends at 1.25 s (> gap_s)
        summary = stream.process(_frame(detector, k / 4))
        assert summary.faces == (1 if k / 4 in present else 0)
        assert summary.valence is None and summary.expressiveness is None
        tracks.append(stream.tracks)
    assert stream.dropped == len(present)
    # The live track is counted whether or not a classification of it got through.
    assert tracks == [1, 1, 1, 1, 1, 0, 0, 0]


def test_smoothing_follows_media_time_not_frame_count() -> None:
    """Happy at t=0, sad after: at 4 and at 8 fps the face's valence after 1 s is the same."""
    happy = Expression(tuple(0.9 if c == "happy" else 0.1 / 6 for c in EXPRESSIONS))
    sad = Expression(tuple(0.9 if c == "sad" else 0.1 / 6 for c in EXPRESSIONS))
    valences = []
    for fps in (4, 8):
        times = [k / fps for k in range(fps + 1)]
        stream, detector, classifier = _scripted(times, expression=happy)
        classifier.switch_at, classifier.after = 0.0, sad
        summaries = [stream.process(_frame(detector, t)) for t in times]
        valences.append(summaries[-1].valence)
    keep = math.exp(-1.0 / SmoothingSettings().tau_s)
    mixed = tuple(keep * h + (1 - keep) * s for h, s in zip(happy.probs, sad.probs, strict=True))
    assert valences[0] is not None and valences[1] is not None
    assert math.isclose(valences[0], valences[1], abs_tol=1e-12)
    assert math.isclose(valences[0], valence_arousal(mixed)[0], abs_tol=1e-12)
