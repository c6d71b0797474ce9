"""Facial expression: fer's mini-Xception (FER2013, 7 classes) on face boxes, one ORT call a frame.

Preprocessing reproduces fer 25.10.3 (fer/fer.py, FER.detect_emotions) so the converted weights see
what they were trained and shipped with: grey frame padded by 40 px of the mean of its bottom two
rows; the box squared by growing its short side (the odd pixel after), grown by 10 px on every side,
cut out (clipped to the padded frame), resized to 64x64 bilinearly and scaled to [-1, 1]. fer's Haar
detector only yields boxes inside the frame, so boxes are first clipped to the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from rapport.config import RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import Box, Expression
from rapport.inference.registry import MODEL_FILE, load_model_dir
from rapport.inference.runtime import DEVICE, create_session
from rapport.labels import EXPRESSIONS

MODEL_NAME: Final = "face-expression"
SIDE: Final = 64
PADDING: Final = 40  # fer.fer.PADDING
OFFSET: Final = 10  # fer.FER(offsets=(10, 10))


def _fer_rect(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Box clipped to the frame, as fer's integer (x, y, w, h)."""
    x0 = min(max(round(box.x0), 0), width)
    y0 = min(max(round(box.y0), 0), height)
    x1 = min(max(round(box.x1), 0), width)
    y1 = min(max(round(box.y1), 0), height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} does not overlap the {width}x{height} frame")
    return x0, y0, x1 - x0, y1 - y0


def _crop(padded: NDArray[np.uint8], rect: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    x, y, w, h = rect
    if h > w:  # fer.FER.tosquare
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    x1, y1 = max(0, x - OFFSET + PADDING), max(0, y - OFFSET + PADDING)
    x2, y2 = x + w + OFFSET + PADDING, y + h + OFFSET + PADDING
    face = padded[y1:y2, x1:x2]
    return np.asarray(cv2.resize(face, (SIDE, SIDE)), dtype=np.uint8)


def preprocess(rgb: NDArray[np.uint8], boxes: Sequence[Box]) -> NDArray[np.float32]:
    """[N, 1, 64, 64] float32 in [-1, 1], one plane per box, exactly as fer feeds its model."""
    grey = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    height, width = grey.shape
    mean = cv2.mean(grey[height - 2 : height, :])[0]
    padded = np.asarray(
        cv2.copyMakeBorder(grey, *(PADDING,) * 4, cv2.BORDER_CONSTANT, value=[mean] * 3),
        dtype=np.uint8,
    )
    faces = np.stack([_crop(padded, _fer_rect(b, width, height)) for b in boxes])
    return ((faces.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None]


class ExpressionClassifier:
    """Loads models/face-expression once; `classify` is safe to call from one thread at a time."""

    def __init__(self, models_dir: Path, runtime: RuntimeSettings) -> None:
        manifest = load_model_dir(models_dir, MODEL_NAME)
        if manifest.labels != EXPRESSIONS:
            raise ModelError(
                f"model {MODEL_NAME!r} labels {manifest.labels} are not {EXPRESSIONS}: "
                "run `rapport models fetch --force`"
            )
        self._session = create_session(models_dir / MODEL_NAME / MODEL_FILE, runtime)
        self._input = self._session.get_inputs()[0].name
        self._name = manifest.ref(DEVICE).display

    @property
    def name(self) -> str:
        return self._name

    def classify(
        self, rgb: NDArray[np.uint8], boxes: Sequence[Box], stream: str = ""
    ) -> list[Expression | None]:
        """One Expression per box, in order; one batched model call for the whole frame.
        (`stream` is for heads that batch across streams; this one never drops.)"""
        if not boxes:
            return []
        probs = self._session.run(None, {self._input: preprocess(rgb, boxes)})[0]
        return [Expression(probs=tuple(float(p) for p in row)) for row in probs]
