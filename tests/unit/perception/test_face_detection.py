"""FaceDetector (BlazeFace short-range via ONNX Runtime) on real photographs from scikit-image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from rapport.config import FaceSettings, RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import Box
from rapport.perception.face_detection import frontal_score, ssd_anchors, weighted_nms
from rapport.perception.faces import FaceDetector

# Eileen Collins' face in skimage's 512x512 astronaut, by eye: cheek to cheek, hairline to chin.
ASTRONAUT_FACE = Box(178, 80, 270, 177)


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> FaceDetector:
    return FaceDetector(models_dir, RuntimeSettings(), FaceSettings())


def grey_to_rgb(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))


def test_finds_the_astronaut(detector: FaceDetector) -> None:
    (face,) = detector.detect(data.astronaut())
    assert face.box.iou(ASTRONAUT_FACE) >= 0.5
    # mediapipe's preprocessing of this square image is a plain resize to 128x128, on which LiteRT's
    # best logit is 2.4779 (test_convert_tflite): sigmoid 0.9226.
    assert face.score == pytest.approx(0.9226, abs=1e-3)
    assert detector.name == "blazeface-short-range@onnx-cpu"


@pytest.mark.parametrize(("width", "height", "x", "y"), [(640, 360, 340, 60), (360, 640, 40, 350)])
def test_boxes_are_in_frame_pixels(
    detector: FaceDetector, width: int, height: int, x: int, y: int
) -> None:
    """The astronaut's head and shoulders, enlarged 1.2x and pasted off-centre into wide and tall
    frames (letterboxed on different axes)."""
    x0, y0, side, scale = 115, 20, 220, 1.2
    crop = data.astronaut()[y0 : y0 + side, x0 : x0 + side]
    n = round(side * scale)
    frame = np.full((height, width, 3), 100, np.uint8)
    frame[y : y + n, x : x + n] = cv2.resize(crop, (n, n), interpolation=cv2.INTER_LINEAR)
    f = ASTRONAUT_FACE
    expected = Box(
        x + (f.x0 - x0) * scale,
        y + (f.y0 - y0) * scale,
        x + (f.x1 - x0) * scale,
        y + (f.y1 - y0) * scale,
    )
    (face,) = detector.detect(frame)
    assert face.box.iou(expected) >= 0.7  # a letterbox offset error of a few px fails this


@pytest.mark.parametrize("name", ["coffee", "chelsea", "grey"])
def test_no_face_no_detection(detector: FaceDetector, name: str) -> None:
    img = np.full((360, 640, 3), 128, np.uint8) if name == "grey" else getattr(data, name)()
    assert detector.detect(img) == []


def test_thresholds_come_from_settings(models_dir: Path) -> None:
    img = data.astronaut()  # face ~95 px, score ~0.92
    runtime = RuntimeSettings()
    assert len(FaceDetector(models_dir, runtime, FaceSettings(min_face_px=80)).detect(img)) == 1
    assert FaceDetector(models_dir, runtime, FaceSettings(min_face_px=120)).detect(img) == []
    assert FaceDetector(models_dir, runtime, FaceSettings(min_score=0.97)).detect(img) == []


def test_frontal_drops_as_the_head_turns(detector: FaceDetector) -> None:
    (facing,) = detector.detect(data.astronaut())
    (mirrored,) = detector.detect(np.ascontiguousarray(data.astronaut()[:, ::-1]))
    (turned,) = detector.detect(grey_to_rgb(data.camera()))  # the cameraman, near profile
    assert facing.frontal > 0.75
    assert mirrored.frontal == pytest.approx(facing.frontal, abs=0.1)
    assert turned.frontal < facing.frontal - 0.25


def test_frontal_score_formula() -> None:
    # right eye, left eye, nose, mouth, right ear, left ear (x, y); the nose x varies
    def kps(nose_x: float) -> NDArray[np.float32]:
        pts = [(0.4, 0.4), (0.6, 0.4), (nose_x, 0.5), (0.5, 0.6), (0.3, 0.45), (0.7, 0.45)]
        return np.array(pts, np.float32)

    assert frontal_score(kps(0.5)) == pytest.approx(1.0)
    assert frontal_score(kps(0.45)) == pytest.approx(((1 - 0.5) + (1 - 0.25)) / 2, abs=1e-6)
    assert frontal_score(kps(0.75)) == 0.0  # beyond the far ear: profile
    flat = kps(0.5)
    flat[[1, 5], 0] = flat[[0, 4], 0]
    assert frontal_score(flat) == 0.0


def test_anchors_follow_mediapipe_layout() -> None:
    a = ssd_anchors()
    assert a.shape == (896, 2)
    # stride 8: 16x16 cells, 2 anchors each, then stride 16: 8x8 cells, 6 anchors each; (y, x, k)
    np.testing.assert_allclose(a[0], a[1])
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[32], [0.5 / 16, 1.5 / 16])
    np.testing.assert_allclose(a[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_weighted_nms_merges_overlaps_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[1] += 4.0
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    (b0, k0, s0), (b1, _, s1) = weighted_nms(boxes, kps, scores, 0.3)
    np.testing.assert_allclose(b0, [0.25, 0, 10.25, 10])  # (0.9 * 0 + 0.3 * 1) / 1.2
    np.testing.assert_allclose(k0, 1.0)
    assert (s0, s1) == pytest.approx((0.9, 0.8))
    np.testing.assert_allclose(b1, boxes[2])


def test_missing_model_and_bad_frames(tmp_path: Path, detector: FaceDetector) -> None:
    with pytest.raises(ModelError, match="fetch"):
        FaceDetector(tmp_path, RuntimeSettings(), FaceSettings())
    with pytest.raises(ValueError, match="H x W x 3"):
        detector.detect(data.camera())
