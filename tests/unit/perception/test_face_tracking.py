"""FaceTracker: hand-made detections for the rules, then the real detector on generated scenes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from rapport.config import FaceSettings, RuntimeSettings
from rapport.frames import Box, Detection
from rapport.perception.faces import FaceDetector, FaceTracker, TrackUpdate


def det(x: float, y: float, side: float = 100.0) -> Detection:
    return Detection(Box(x, y, x + side, y + side), score=0.9, frontal=1.0)


def ids(update: TrackUpdate) -> dict[int, Detection | None]:
    return dict(update.slots)


# ---- the rules, on hand-made detections ----------------------------------------------------------


def test_ids_start_at_one_and_persist() -> None:
    tr = FaceTracker(0.3, 3.0)
    a, b = det(0, 0), det(300, 0)
    assert ids(tr.update(0.0, [a, b])) == {1: a, 2: b}
    a2, b2, c = det(10, 5), det(290, 0), det(600, 0)
    assert ids(tr.update(0.25, [c, b2, a2])) == {1: a2, 2: b2, 3: c}


def test_best_pair_first() -> None:
    tr = FaceTracker(0.3, 3.0)
    tr.update(0.0, [det(0, 0), det(50, 0)])
    # x overlaps track 1 enough (IoU 0.43) but track 2 better (0.82); y is track 1's best (0.90).
    x, y = det(40, 0), det(-5, 0)
    assert ids(tr.update(0.25, [x, y])) == {1: y, 2: x}


def test_overlap_is_matched_before_distance() -> None:
    tr = FaceTracker(0.3, 3.0)
    tr.update(0.0, [det(0, 0, side=200)])
    shifted = det(30, 0, side=200)  # IoU 0.74, centre 0.15 sides away
    centred = det(45, 45, side=110)  # IoU 0.30, same centre
    assert ids(tr.update(0.25, [centred, shifted])) == {1: shifted, 2: centred}


def test_fast_motion_keeps_its_id() -> None:
    tr = FaceTracker(0.3, 3.0)
    tr.update(0.0, [det(0, 0)])
    moved = det(80, 0)  # IoU 0.11: no overlap match, but 0.8 face sides away
    assert moved.box.iou(det(0, 0).box) < 0.3
    assert ids(tr.update(0.25, [moved])) == {1: moved}


def test_far_jumps_and_scale_jumps_are_new_faces() -> None:
    tr = FaceTracker(0.3, 3.0)
    tr.update(0.0, [det(0, 0)])
    far = det(300, 0)
    assert ids(tr.update(0.25, [far])) == {1: None, 2: far}
    huge = det(-100, -100, side=300)  # same centre as track 1, three times its size
    assert ids(tr.update(0.5, [huge])) == {1: None, 2: None, 3: huge}


def test_gap_gives_none_slots_then_the_track_ends() -> None:
    tr = FaceTracker(0.3, gap_s=1.0)
    tr.update(0.0, [det(0, 0)])
    assert tr.update(0.5, []) == TrackUpdate(slots=((1, None),), ended=())
    back = det(5, 0)
    assert tr.update(1.0, [back]) == TrackUpdate(slots=((1, back),), ended=())  # gap == gap_s
    assert tr.update(2.0, []).slots == ((1, None),)
    assert tr.update(2.25, []) == TrackUpdate(slots=(), ended=(1,))
    assert tr.update(2.5, []) == TrackUpdate(slots=(), ended=())  # reported once
    assert ids(tr.update(2.75, [back])) == {2: back}  # ids are never reused


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        FaceTracker(0.0, 1.0)
    with pytest.raises(ValueError):
        FaceTracker(0.3, -1.0)
    tr = FaceTracker(0.3, 1.0)
    tr.update(1.0, [])
    with pytest.raises(ValueError, match="backwards"):
        tr.update(0.5, [])


# ---- the real detector on generated scenes -------------------------------------------------------

FPS = 4.0
CROP = (115, 20, 220)  # x, y, side: the astronaut's head and shoulders
FACE = Box(178, 80, 270, 177)  # her face in the full image (as in test_face_detection)
SIDE = 220  # pasted size: a ~95 px face in a 640x360 frame


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> FaceDetector:
    return FaceDetector(models_dir, RuntimeSettings(), FaceSettings())


def background() -> NDArray[np.uint8]:
    yy, xx = np.mgrid[0:360, 0:640]
    return np.stack([90 + xx / 16, 110 + yy / 12, 130 - xx / 20], axis=-1).astype(np.uint8)


def paste(frame: NDArray[np.uint8], x: int, y: int, mirror: bool = False) -> Box:
    """Blend the head (an ellipse, soft edge) in with its crop's corner at (x, y); its face box."""
    cx, cy, side = CROP
    head = data.astronaut()[cy : cy + side, cx : cx + side]
    head = cv2.resize(head, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    if mirror:
        head = head[:, ::-1]
    mask = np.zeros((SIDE, SIDE), np.float32)
    cv2.ellipse(
        mask, (SIDE // 2, SIDE // 2), (SIDE * 36 // 100, SIDE * 42 // 100), 0, 0, 360, 1, -1
    )
    mask = cv2.GaussianBlur(mask, (0, 0), SIDE * 0.03)[..., None]
    region = frame[y : y + SIDE, x : x + SIDE]
    region[:] = (region * (1 - mask) + head * mask).astype(np.uint8)
    s = SIDE / side
    if mirror:  # the face box mirrored within the crop
        return Box(x + (cx + side - FACE.x1) * s, y + (FACE.y0 - cy) * s,
                   x + (cx + side - FACE.x0) * s, y + (FACE.y1 - cy) * s)  # fmt: skip
    return Box(x + (FACE.x0 - cx) * s, y + (FACE.y0 - cy) * s,
               x + (FACE.x1 - cx) * s, y + (FACE.y1 - cy) * s)  # fmt: skip


def who(update: TrackUpdate, truth: dict[str, Box]) -> dict[int, str | None]:
    """Each live track's id -> the face its detection lies on (None: no detection)."""
    out: dict[int, str | None] = {}
    for tid, d in update.slots:
        if d is None:
            out[tid] = None
            continue
        ious = {name: d.box.iou(box) for name, box in truth.items()}
        out[tid] = max(ious, key=lambda name: ious[name])
        assert ious[out[tid]] >= 0.5  # a detection on a face, not between them
    return out


def test_two_moving_faces_keep_their_ids(detector: FaceDetector) -> None:
    tr = FaceTracker(0.3, 3.0)
    first: dict[int, str | None] = {}
    for k in range(20):
        frame = background()
        truth = {
            "a": paste(frame, 10 + 4 * k, 20 + 3 * k),
            "b": paste(frame, 410 - 5 * k, 100, True),
        }
        faces = who(tr.update(k / FPS, detector.detect(frame)), truth)
        first = first or faces
        assert faces == first and set(faces) == {1, 2} and set(faces.values()) == {"a", "b"}


def test_faces_back_within_the_gap_keep_their_ids(detector: FaceDetector) -> None:
    tr = FaceTracker(0.3, gap_s=3.0)
    first: dict[int, str | None] = {}
    timeline = [True] * 4 + [False] * 4 + [True] * 4  # both gone for 1 s
    for k, shown in enumerate(timeline):
        frame = background()
        truth = {}
        if shown:
            truth = {"a": paste(frame, 40 + 6 * k, 40), "b": paste(frame, 380, 100 - 4 * k, True)}
        update = tr.update(k / FPS, detector.detect(frame))
        faces = who(update, truth)
        first = first or faces
        assert set(first.values()) == {"a", "b"}
        assert faces == (first if shown else {1: None, 2: None})
        assert update.ended == ()


def test_faces_back_after_the_gap_are_new(detector: FaceDetector) -> None:
    tr = FaceTracker(0.3, gap_s=1.0)
    ended: list[int] = []
    for k, shown in enumerate([True] * 2 + [False] * 6 + [True] * 2):  # gone for 1.5 s
        frame = background()
        truth = {"a": paste(frame, 200, 60)} if shown else {}
        update = tr.update(k / FPS, detector.detect(frame))
        ended += update.ended
    assert ended == [1]
    assert who(update, truth) == {2: "a"}


def test_crossing_faces_do_not_swap(detector: FaceDetector) -> None:
    """a goes right, b goes left just below it; mid-way b hides a's mouth and a may be lost."""
    tr = FaceTracker(0.3, 3.0)
    first: dict[int, str | None] = {}
    seen = {"a": 0, "b": 0}  # frames in which each face was tracked
    for k in range(21):
        frame = background()
        truth = {"a": paste(frame, 21 * k, 0), "b": paste(frame, 420 - 21 * k, 87, True)}
        faces = who(tr.update(k / FPS, detector.detect(frame)), truth)
        first = first or faces
        assert set(faces) == {1, 2} and set(first.values()) == {"a", "b"}
        for tid, face in faces.items():
            assert face in (None, first[tid])
            if face is not None:
                seen[face] += 1
    assert seen["a"] >= 18 and seen["b"] >= 18
