"""The face head over one video stream: detect, track, classify, smooth, reduce to one summary.

Per-face results never leave this module: a frame comes out as counts and means over its faces.
Detection (every frame) and classification (frames with a face) are timed per head in the
process's metrics (rapport/metrics.py). Given the pack's FaceDetectors, the stream keeps its own
short/full-range choice (face_range.RangeChoice); one tracker follows faces across a switch.
"""

from __future__ import annotations

from rapport.config import FaceSettings, SmoothingSettings
from rapport.frames import Expression, FrameSummary, VideoFrame
from rapport.fusion.smoothing import ExpressionSmoother
from rapport.labels import NEUTRAL_INDEX
from rapport.metrics import INFERENCE_SECONDS
from rapport.perception.face_range import FaceDetectors, RangeChoice
from rapport.perception.faces import FaceDetector, FaceTracker
from rapport.perception.heads import ExpressionHead

_DETECTION = INFERENCE_SECONDS.labels("face_detection")
_EXPRESSION = INFERENCE_SECONDS.labels("face_expression")


class FaceStream:
    def __init__(
        self,
        detector: FaceDetector | FaceDetectors,
        classifier: ExpressionHead,
        faces: FaceSettings,
        smoothing: SmoothingSettings,
        owner: str | None,
    ) -> None:
        """`owner`: the participant this stream shows, or None for a shared room camera."""
        self._detector = detector
        self._choice: RangeChoice | None = (
            detector.for_stream(owner) if isinstance(detector, FaceDetectors) else None
        )
        self._classifier = classifier
        self._smoothing = smoothing
        self._owner = owner
        self._tracker = FaceTracker(faces.track_iou, faces.track_gap_s)
        # One smoother per live track, made when the track starts (not at its first classification,
        # which an overloaded engine may never deliver) and dropped when it ends. It outlives gaps
        # shorter than track_gap_s: a returning face resumes it.
        self._smoothers: dict[int, ExpressionSmoother] = {}
        self._stream = f"faces-{id(self):x}"
        self.dropped = 0

    def process(self, frame: VideoFrame) -> FrameSummary:
        with _DETECTION.time():
            if self._choice is not None:
                detections = self._choice.detect(frame.t, frame.rgb)
            else:
                detections = self._detector.detect(frame.rgb)
        update = self._tracker.update(frame.t, detections)
        for track_id in update.ended:
            del self._smoothers[track_id]
        for track_id, _ in update.slots:
            if track_id not in self._smoothers:
                self._smoothers[track_id] = ExpressionSmoother.from_settings(self._smoothing)
        present = [(tid, d) for tid, d in update.slots if d is not None]
        expressions: list[Expression | None] = []
        if present:
            with _EXPRESSION.time():
                expressions = self._classifier.classify(
                    frame.rgb, [d.box for _, d in present], stream=self._stream
                )
        valence: list[float] = []
        arousal: list[float] = []
        expressive: list[float] = []
        for (track_id, _), expression in zip(present, expressions, strict=True):
            if expression is None:  # dropped by an overloaded head: the smoother holds
                self.dropped += 1
                continue
            smoothed = self._smoothers[track_id].update(frame.t, expression)
            if smoothed is not None:
                valence.append(smoothed.valence)
                arousal.append(smoothed.arousal)
                expressive.append(1.0 - smoothed.probs[NEUTRAL_INDEX])
        return FrameSummary(
            participant=self._owner,
            t=frame.t,
            faces=len(present),
            attention=max((d.frontal for _, d in present), default=0.0),
            valence=_mean(valence),
            arousal=_mean(arousal),
            expressiveness=_mean(expressive),
        )

    @property
    def detector_range(self) -> str | None:
        """'short' or 'full': the range the next frame will use; None for a single detector."""
        return self._choice.current if self._choice is not None else None

    @property
    def tracks(self) -> int:
        """Live tracks, including faces missing right now but still within their gap."""
        return len(self._smoothers)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
