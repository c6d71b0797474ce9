"""Face detection with MediaPipe's BlazeFace models (short and full range), converted to ONNX.

Pre- and post-processing follow MediaPipe's face_detection graphs: the frame is letterboxed (aspect
kept, black borders) into the model's square input and scaled to [-1, 1]; raw outputs are decoded
against the model's SSD anchors, scores are sigmoids of logits clipped to +-100, and overlapping
boxes (IoU > 0.3) are merged by score-weighted averaging. One deliberate change: shrinking averages
areas where MediaPipe samples bilinearly, so large frames do not alias.

Short range (128x128, 896 anchors) was trained on faces within about 2 m of the camera: faces
narrower than about 1/7 of the frame's longer side (~90 px at 640 px) score under the default
threshold. Full range (192x192, 2304 anchors on one stride-4 grid) finds faces down to about 1/25
of the longer side (~24 px at 640 px) and close faces too, at about twice the cost. The anchor
layouts were read from the FaceDetectionOptions compiled into the mediapipe 0.10.21 wheel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from rapport.config import FaceSettings, RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import Box, Detection
from rapport.inference.registry import MODEL_FILE, load_model_dir
from rapport.inference.runtime import DEVICE, create_session

NMS_IOU: Final = 0.3
_SCORE_CLIP: Final = 100.0
# Keypoint order in the model's output.
_R_EYE, _L_EYE, _NOSE, _MOUTH, _R_EAR, _L_EAR = range(6)

Floats = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its model slot, input size, anchor layout and output names."""

    slot: str
    """Folder under models/ (fetch.py's asset name)."""
    kind: str
    """What `rapport models fetch --force` should have put there, for the error message."""
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    """2 with MediaPipe's interpolated scale (aspect ratio 1.0 plus one), 1 without."""
    outputs: tuple[str, str]
    """(regressors [N, A, 16], scores [N, A, 1]) as the TFLite model names them."""

    @property
    def anchors(self) -> int:
        return sum((-(-self.size // s)) ** 2 * self.anchors_per_layer for s in self.strides)


SHORT_RANGE: Final = BlazeFaceSpec(
    slot="face-detection",
    kind="BlazeFace short-range",
    size=128,
    strides=(8, 16, 16, 16),
    anchors_per_layer=2,
    outputs=("regressors", "classificators"),
)
FULL_RANGE: Final = BlazeFaceSpec(
    slot="face-detection-full",
    kind="BlazeFace full-range",
    size=192,
    strides=(4,),
    anchors_per_layer=1,  # interpolated_scale_aspect_ratio 0.0
    outputs=("Identity", "Identity_1"),
)


def ssd_anchors(spec: BlazeFaceSpec = SHORT_RANGE) -> Floats:
    """Anchor centres [A, 2] (x, y in 0..1), as MediaPipe's SsdAnchorsCalculator makes them.

    With fixed_anchor_size every anchor is 1x1, so only centres matter; layers with equal strides
    share one grid, cell by cell: (y, x, anchor) order, matching the model's output order.
    """
    out = []
    strides = spec.strides
    i = 0
    while i < len(strides):
        stride, per_cell = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            per_cell, i = per_cell + spec.anchors_per_layer, i + 1
        n = -(-spec.size // stride)
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def frontal_score(kps: Floats) -> float:
    """How squarely a face is turned to the camera, 0..1, from its 6 keypoints [6, 2].

    For the eye pair and the ear (tragion) pair, r = (nose_x - right_x) / (left_x - right_x) is
    where the nose sits between them: 0.5 when the head faces the camera, drifting to 0 or 1 and
    beyond as it turns (yaw). Each pair gives 1 - |2r - 1| clipped to 0..1; the result is their
    mean (ears: wide baseline, eyes: reliable keypoints). Pitch and roll are not measured.
    """
    scores = []
    for right, left in ((_R_EYE, _L_EYE), (_R_EAR, _L_EAR)):
        span = float(kps[left, 0] - kps[right, 0])
        if abs(span) < 1e-6:
            scores.append(0.0)
            continue
        r = float(kps[_NOSE, 0] - kps[right, 0]) / span
        scores.append(min(1.0, max(0.0, 1.0 - abs(2.0 * r - 1.0))))
    return sum(scores) / len(scores)


def _iou(box: Floats, boxes: Floats) -> Floats:
    """IoU of one [4] box (x0, y0, x1, y1) with each of [n, 4] boxes; 0 where the union is empty."""
    lo = np.maximum(boxes[:, :2], box[:2])
    hi = np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(
    boxes: Floats, kps: Floats, scores: Floats, iou: float
) -> list[tuple[Floats, Floats, float]]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU > `iou` with its best box)
    becomes one detection whose box and keypoints are the score-weighted mean of the cluster's;
    its score is the best one.
    """
    out = []
    rest = np.argsort(-scores, kind="stable")
    while rest.size:
        top = rest[0]
        overlap = _iou(boxes[top], boxes[rest])
        member = overlap > iou
        member[0] = True  # the best box is always in its own cluster
        cluster, rest = rest[member], rest[~member]
        w = scores[cluster] / scores[cluster].sum()
        box = (boxes[cluster] * w[:, None]).sum(axis=0)
        kp = (kps[cluster] * w[:, None, None]).sum(axis=0)
        out.append((box.astype(np.float32), kp.astype(np.float32), float(scores[top])))
    return out


class FaceDetector:
    """One BlazeFace variant on ONNX Runtime (CPU); `detect` may be called from several threads."""

    def __init__(
        self,
        models_dir: Path,
        runtime: RuntimeSettings,
        faces: FaceSettings,
        spec: BlazeFaceSpec = SHORT_RANGE,
    ) -> None:
        manifest = load_model_dir(models_dir, spec.slot)
        self._session = create_session(models_dir / spec.slot / MODEL_FILE, runtime)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if (
            len(inputs) != 1
            or list(inputs[0].shape[1:]) != [3, spec.size, spec.size]
            or {o.name for o in outputs} != set(spec.outputs)
        ):
            raise ModelError(
                f"model {spec.slot!r} is not {spec.kind}: run `rapport models fetch --force`"
            )
        self._input = inputs[0].name
        self._name = manifest.ref(DEVICE).display
        self._spec = spec
        self._faces = faces
        self._anchors = ssd_anchors(spec)
        self._min_logit = float(np.log(faces.min_score / (1.0 - faces.min_score)))

    @property
    def name(self) -> str:
        """e.g. 'blazeface-short-range@onnx-cpu'"""
        return self._name

    @property
    def spec(self) -> BlazeFaceSpec:
        return self._spec

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        """Faces in an H x W x 3 RGB frame, best score first, boxes in that frame's pixels."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 frame, got {rgb.shape} {rgb.dtype}")
        size = self._spec.size
        h, w = rgb.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        px, py = (size - nw) // 2, (size - nh) // 2
        # INTER_AREA when shrinking (anti-aliased), bilinear when enlarging.
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[py : py + nh, px : px + nw] = cv2.resize(rgb, (nw, nh), interpolation=interp)
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32) * (1 / 127.5) - 1.0
        reg, logits = self._session.run(list(self._spec.outputs), {self._input: blob})

        # Threshold in logit space, then sigmoid only the survivors (no overflow in exp).
        logits = np.clip(logits[0, :, 0], -_SCORE_CLIP, _SCORE_CLIP)
        keep = np.flatnonzero(logits >= self._min_logit)
        if keep.size == 0:
            return []
        scores = (1.0 / (1.0 + np.exp(-logits[keep]))).astype(np.float32)
        raw, anchors = reg[0, keep] / size, self._anchors[keep]
        centre = raw[:, :2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]

        # Letterbox (0..1 of the square canvas) -> frame pixels; the scale is the same on both axes
        # up to rounding, so frontal_score can use letterbox coordinates.
        sx, sy = nw / w, nh / h
        out = []
        for box, kp, score in weighted_nms(boxes, kps, scores, NMS_IOU):
            x0, y0 = (box[0] * size - px) / sx, (box[1] * size - py) / sy
            x1, y1 = (box[2] * size - px) / sx, (box[3] * size - py) / sy
            if min(x1 - x0, y1 - y0) < self._faces.min_face_px:
                continue
            clipped = Box(
                float(max(0.0, x0)), float(max(0.0, y0)), float(min(w, x1)), float(min(h, y1))
            )
            if clipped.area == 0:  # wholly outside the frame
                continue
            out.append(Detection(box=clipped, score=score, frontal=frontal_score(kp)))
        return out
