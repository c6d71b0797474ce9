"""Face expression with a ViT (e.g. trpakov/vit-face-expression, FER2013): crops of the tracked
faces from every stream in the process go through one shared batcher.

A crop is the face box squared and grown by MARGIN, cut from the frame in grey (FER2013 is grey,
the model sees it as three equal channels), resized to the model's side, rescaled and normalised
with the checkpoint's preprocessor values. Under overload a face's item may be dropped (the
batcher keeps the newest video); it then gets no expression this frame, and its smoother holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from rapport.config import EngineSettings
from rapport.frames import Box, Expression
from rapport.inference.batcher import Dropped
from rapport.inference.heads import HeadModel, batcher
from rapport.labels import to_expressions

SLOT: Final = "face-vit"
MARGIN: Final = 0.1


class FaceViT:
    def __init__(self, head: HeadModel, settings: EngineSettings) -> None:
        pre = head.config("preprocessor_config.json")
        size = pre.get("size", {})
        shape = head.manifest.input.shape
        self._side = int(size.get("height") or size.get("shortest_edge") or shape[-1] or 224)
        self._scale = float(pre.get("rescale_factor", 1 / 255))
        self._mean = np.asarray(pre.get("image_mean", [0.5] * 3), np.float32)[:, None, None]
        self._std = np.asarray(pre.get("image_std", [0.5] * 3), np.float32)[:, None, None]
        self._mapping = head.mapping
        self.name = head.name
        self.batcher = batcher(head, settings, _stack)

    def crop(self, rgb: NDArray[np.uint8], box: Box) -> NDArray[np.float32]:
        """[3, side, side] float32, normalised as the checkpoint expects."""
        h, w = rgb.shape[:2]
        cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        half = max(box.x1 - box.x0, box.y1 - box.y0) * (1 + MARGIN) / 2
        x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
        x1, y1 = min(w, round(cx + half)), min(h, round(cy + half))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"face box {box} does not overlap the {w}x{h} frame")
        grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        face = cv2.resize(grey, (self._side, self._side), interpolation=cv2.INTER_LINEAR)
        x = np.repeat(face[None].astype(np.float32) * self._scale, 3, axis=0)
        return np.asarray((x - self._mean) / self._std, dtype=np.float32)

    def classify(
        self, rgb: NDArray[np.uint8], boxes: Sequence[Box], stream: str = ""
    ) -> list[Expression | None]:
        """One Expression per box, in order (None: dropped under overload)."""
        futures = [
            self.batcher.submit(self.crop(rgb, b), stream=f"{stream}#{i}")
            for i, b in enumerate(boxes)
        ]
        out: list[Expression | None] = []
        for f in futures:
            try:
                out.append(Expression(to_expressions(f.result().tolist(), self._mapping)))
            except Dropped:
                out.append(None)
        return out


def _stack(items: list[NDArray[np.float32]]) -> list[tuple[list[int], dict[str, Any]]]:
    return [(list(range(len(items))), {"pixel_values": np.stack(items)})]
