from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from rapport.config import RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import Box
from rapport.inference.registry import load_model_dir, write_manifest
from rapport.labels import EXPRESSIONS, valence_arousal
from rapport.perception.face_expression import ExpressionClassifier, preprocess

HAPPY = EXPRESSIONS.index("happy")
# Eileen Collins in skimage's astronaut (512x512), smiling: the box fer's own Haar detector finds
# (scaleFactor 1.1, minNeighbors 5, minSize 50), checked by eye: brows to chin, cheek to cheek.
FACE = Box(177, 66, 272, 161)


@pytest.fixture(scope="module")
def classifier(models_dir: Path) -> ExpressionClassifier:
    return ExpressionClassifier(models_dir, RuntimeSettings())


@pytest.fixture(scope="module")
def astronaut() -> NDArray[np.uint8]:
    return np.ascontiguousarray(data.astronaut())


def test_smiling_astronaut_is_happy(
    classifier: ExpressionClassifier, astronaut: NDArray[np.uint8]
) -> None:
    (e,) = classifier.classify(astronaut, [FACE])
    assert len(e.probs) == len(EXPRESSIONS)
    assert sum(e.probs) == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(e.probs)) == HAPPY and e.probs[HAPPY] > 0.9
    assert valence_arousal(e.probs)[0] > 0.3


def test_blank_grey_box_is_not_confidently_happy(classifier: ExpressionClassifier) -> None:
    grey = np.full((240, 320, 3), 128, np.uint8)
    (e,) = classifier.classify(grey, [Box(110, 70, 210, 170)])
    assert e.probs[HAPPY] < 0.5


def test_batch_equals_singles(
    classifier: ExpressionClassifier, astronaut: NDArray[np.uint8]
) -> None:
    boxes = [FACE, Box(380, 20, 470, 120), Box(-40, 300, 60, 420)]  # face, rocket, off the edge
    batched = classifier.classify(astronaut, boxes)
    singles = [classifier.classify(astronaut, [b])[0] for b in boxes]
    assert len(batched) == 3
    for b, s in zip(batched, singles, strict=True):
        assert np.abs(np.subtract(b.probs, s.probs)).max() <= 1e-5
    assert np.abs(np.subtract(batched[0].probs, batched[1].probs)).max() > 0.1


def test_box_partly_outside_is_clipped_and_wholly_outside_refused(
    classifier: ExpressionClassifier, astronaut: NDArray[np.uint8]
) -> None:
    clipped = classifier.classify(astronaut, [Box(0, 0, 100, 100)])
    assert classifier.classify(astronaut, [Box(-50, -60, 100, 100)]) == clipped
    with pytest.raises(ValueError, match="does not overlap"):
        classifier.classify(astronaut, [Box(600, 10, 700, 100)])


def test_no_boxes_means_no_model_call(classifier: ExpressionClassifier) -> None:
    # An empty frame would fail in preprocessing or the model: [] proves neither ran.
    assert classifier.classify(np.zeros((0, 0, 3), np.uint8), []) == []


def test_name_says_which_model(classifier: ExpressionClassifier) -> None:
    assert classifier.name == "mini-xception-fer2013@onnx-cpu"


def test_missing_models_dir_gives_the_fetch_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="run `rapport models fetch`"):
        ExpressionClassifier(tmp_path / "nowhere", RuntimeSettings())


def test_labels_in_another_order_are_refused(models_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(models_dir / "face-expression", tmp_path / "face-expression")
    m = load_model_dir(tmp_path, "face-expression")
    write_manifest(tmp_path / "face-expression", m.model_copy(update={"labels": EXPRESSIONS[::-1]}))
    with pytest.raises(ModelError, match="labels"):
        ExpressionClassifier(tmp_path, RuntimeSettings())


def _fer_preprocess(bgr: NDArray[np.uint8], rects: list[tuple[int, int, int, int]]) -> NDArray:
    """fer 25.10.3 FER.detect_emotions, transcribed line by line (BGR in, x/y/w/h boxes)."""
    gray_img = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    row, col = gray_img.shape[:2]
    mean = cv2.mean(gray_img[row - 2 : row, 0:col])[0]
    gray_img = cv2.copyMakeBorder(gray_img, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=[mean] * 3)
    faces = []
    for x, y, w, h in rects:
        if h > w:
            diff = h - w
            x -= diff // 2
            w += diff
        elif w > h:
            diff = w - h
            y -= diff // 2
            h += diff
        x1, x2, y1, y2 = x - 10 + 40, x + w + 10 + 40, y - 10 + 40, y + h + 10 + 40
        faces.append(cv2.resize(gray_img[max(0, y1) : y2, max(0, x1) : x2], (64, 64)))
    arr = np.array(faces, dtype="float32") / 255.0
    return (arr - 0.5) * 2.0


def test_preprocessing_is_fers(astronaut: NDArray[np.uint8]) -> None:
    rects = [(177, 66, 95, 95), (5, 10, 60, 80), (400, 450, 100, 50), (470, 3, 30, 30)]
    boxes = [Box(x, y, x + w, y + h) for x, y, w, h in rects]
    want = _fer_preprocess(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), rects)
    got = preprocess(astronaut, boxes)
    assert got.shape == (4, 1, 64, 64) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0], want)
