"""Full-range BlazeFace, tiling and the auto range choice, on generated scenes of real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

from rapport.config import FaceSettings, RuntimeSettings
from rapport.frames import Box, Detection
from rapport.perception.face_detection import FULL_RANGE, SHORT_RANGE, FaceDetector, ssd_anchors
from rapport.perception.face_range import (
    MISS_S,
    SETTLE_S,
    FaceDetectors,
    RangeChoice,
    TiledDetector,
    tiles,
)
from rapport.perception.face_tracking import FaceTracker
from rapport.scenes import evaluation_set, gallery, match, moving, scene, tally


@pytest.fixture(scope="module")
def detectors(models_dir: Path) -> FaceDetectors:
    return FaceDetectors(models_dir, RuntimeSettings(), FaceSettings(detector="auto"))


@pytest.fixture(scope="module")
def full(models_dir: Path) -> FaceDetector:
    return FaceDetector(models_dir, RuntimeSettings(), FaceSettings(), FULL_RANGE)


def test_full_range_anchor_layout() -> None:
    a = ssd_anchors(FULL_RANGE)
    assert a.shape == (2304, 2) and FULL_RANGE.anchors == 2304 and SHORT_RANGE.anchors == 896
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48])  # (y, x) order, one anchor per cell
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48])


def test_tiled_full_range_meets_the_target(detectors: FaceDetectors) -> None:
    """Recall >= 0.9 on faces >= 24 px, precision >= 0.95 (IoU >= 0.3), on 48 held-out scenes
    (~260 faces); short range alone finds under half of them."""
    scenes = evaluation_set(40, seed=7)
    assert detectors.full is not None and detectors.short is not None
    tiled = tally(scenes, [[d.box for d in detectors.full.detect(s.rgb)] for s in scenes])
    short = tally(scenes, [[d.box for d in detectors.short.detect(s.rgb)] for s in scenes])
    assert sum(tiled.total[1:]) >= 200
    assert tiled.recall(24) >= 0.9
    assert tiled.precision >= 0.95
    assert short.recall(24) < 0.5 and short.recall(96) >= 0.7


def test_whole_frame_full_range_beats_short_on_mid_sized_faces(
    detectors: FaceDetectors, full: FaceDetector
) -> None:
    s = scene([56, 60, 64, 50, 70], seed=3, backdrop="gradient")
    truth = [f.box for f in s.faces]
    assert detectors.short is not None
    by_full = match(truth, [d.box for d in full.detect(s.rgb)])
    by_short = match(truth, [d.box for d in detectors.short.detect(s.rgb)])
    assert len(by_full.pairs) >= 4 and not by_full.extra
    assert len(by_short.pairs) <= 1


def test_tiles_cover_the_frame_with_overlap() -> None:
    ts = tiles(640, 360)
    assert len(ts) == 8 and all(t[2:] == (220, 220) for t in ts)
    cover = np.zeros((360, 640), int)
    for x, y, w, h in ts:
        cover[y : y + h, x : x + w] += 1
    assert cover.min() >= 1
    assert [x for x, *_ in ts[:4]] == [0, 140, 280, 420]  # 80 px overlaps
    assert len(tiles(360, 640)) == 8 and tiles(360, 640)[1][:2] == (140, 0)


def test_ids_are_kept_through_a_moving_scene(detectors: FaceDetectors) -> None:
    frames = moving([36, 60, 90], frames=16, seed=5)
    tracker = FaceTracker(0.3, 1.0)
    assert detectors.full is not None
    track_of: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for i, sc in enumerate(frames):
        update = tracker.update(i / 4, detectors.full.detect(sc.rgb))
        for tid, d in update.slots:
            if d is None:
                continue
            m = match([f.box for f in sc.faces], [d.box])
            for ti, _ in m.pairs:
                track_of[sc.faces[ti].identity].add(tid)
    assert [len(v) for v in track_of.values()] == [1, 1, 1]
    assert len(set.union(*track_of.values())) == 3


def test_auto_uses_full_range_for_a_room_camera(detectors: FaceDetectors) -> None:
    s = scene([30, 40, 50, 100], seed=11)
    room = detectors.for_stream(None)
    assert room.current == "full"
    found = room.detect(0.0, s.rgb)
    assert len(match([f.box for f in s.faces], [d.box for d in found]).pairs) >= 3
    assert room.current == "full" and room.switches == 0


def test_auto_tiles_a_room_camera_only_where_tiles_find_more(detectors: FaceDetectors) -> None:
    # One big face on a room camera: full range over the whole frame, the tiles once per probe
    # (a recording without --participant cost ~25 ms a frame, 8x a whole-frame pass).
    close = scene([150], seed=2, backdrop="office")
    room = detectors.for_stream(None)
    for k in range(4 * 30):
        assert len(room.detect(k / 4, close.rgb)) == 1
    assert room.tiled == 3  # at 0, 10 and 20 s

    # Small faces: the tiles find more, so they run on every frame.
    small = scene([28, 32, 36, 40], seed=4, backdrop="gradient")
    crowd = detectors.for_stream(None)
    found = [len(crowd.detect(k / 4, small.rgb)) for k in range(4 * 15)]
    assert crowd.tiled == 4 * 15
    assert min(found) >= 3


def test_auto_on_a_room_camera_meets_the_target(detectors: FaceDetectors) -> None:
    scenes = evaluation_set(40, seed=7)
    room = detectors.for_stream(None)
    result = tally(
        scenes, [[d.box for d in room.detect(i / 4, s.rgb)] for i, s in enumerate(scenes)]
    )
    assert result.recall(24) >= 0.9 and result.precision >= 0.95


def test_auto_stays_short_on_a_close_face(detectors: FaceDetectors) -> None:
    s = scene([180], seed=2, backdrop="office")
    cam = detectors.for_stream("ann")
    for k in range(4 * 30):  # 30 s at 4 fps, probes included
        assert len(cam.detect(k / 4, s.rgb)) == 1
    assert (cam.current, cam.switches) == ("short", 0)


def test_auto_switches_on_small_faces_and_back(detectors: FaceDetectors) -> None:
    empty = scene([], seed=4, backdrop="gradient")
    small = scene([40, 44], seed=4, backdrop="gradient")
    close = scene([180], seed=2, backdrop="office")
    cam = detectors.for_stream("ann")
    t = 0.0
    while cam.current == "short":  # nobody there (the first frame's probe agrees): misses
        assert cam.detect(t, empty.rgb) == []
        t += 0.25
    assert t == pytest.approx(MISS_S + 0.25)
    assert len(cam.detect(t, small.rgb)) == 2  # small faces: full range finds them
    start = t = t + 0.25
    while cam.current == "full":
        cam.detect(t, close.rgb)
        t += 0.25
        assert t - start < SETTLE_S + 1
    assert t - start == pytest.approx(SETTLE_S + 0.25)
    assert cam.switches == 2


def test_auto_comes_back_to_short_range_where_it_finds_the_face(
    detectors: FaceDetectors,
) -> None:
    # The bot's LOW layer: a talking head 19 % of a 320x180 frame, between TO_FULL and TO_SHORT.
    # Blank frames as the camera started sent the stream to full range, and it stayed there for
    # good (twice the cost per frame): short range finds this face, so it now comes back.
    blank = np.zeros((180, 320, 3), np.uint8)
    head = scene([62], size=(320, 180), seed=0, backdrop="office")
    cam = detectors.for_stream("ann")
    t = 0.0
    while cam.current == "short":
        assert cam.detect(t, blank) == []
        t += 0.25
    start = t
    while cam.current == "full" and t - start < 3 * SETTLE_S:
        assert len(cam.detect(t, head.rgb)) == 1
        t += 0.25
    assert cam.current == "short" and t - start == pytest.approx(SETTLE_S + 0.25)
    for _ in range(4 * 30):  # and stays: short range keeps finding it
        assert len(cam.detect(t, head.rgb)) == 1
        t += 0.25
    assert (cam.current, cam.switches) == ("short", 2)


class _Scripted:
    """Stands in for a detector: returns the next scripted list of face widths."""

    def __init__(self, name: str, widths: list[list[float]]) -> None:
        self.name, self.widths, self.calls = name, widths, 0

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        w = self.widths[min(self.calls, len(self.widths) - 1)]
        self.calls += 1
        return [Detection(Box(0, 0, x, x), 0.9, 1.0) for x in w]


def test_auto_switches_a_gallery_on_its_first_frame(detectors: FaceDetectors) -> None:
    # A 3x3 gallery recording analysed as one person's camera: short range finds one face, the
    # first probe finds nine (it used to wait for the probe at 10 s).
    g = gallery(9, seed=3)
    cam = detectors.for_stream("participant")
    counts = [len(cam.detect(k / 4, g.rgb)) for k in range(8)]
    assert cam.current == "full" and counts[0] >= 8 and min(counts) >= 8


def test_auto_probe_switches_when_full_range_finds_more() -> None:
    d = FaceDetectors.__new__(FaceDetectors)
    d.mode = "auto"
    d.short = _Scripted("s", [[200]])  # type: ignore[assignment]
    d.full = _Scripted("f", [[200], [200, 30, 30]])  # type: ignore[assignment]
    cam = RangeChoice(d, "ann")
    frame = np.zeros((360, 640, 3), np.uint8)
    t = 0.0
    while t < 9.9:
        assert len(cam.detect(t, frame)) == 1
        t += 0.5
    # Probed on the first frame only (same count), then every 10 s.
    assert cam.current == "short" and d.full.calls == 1  # type: ignore[attr-defined]
    assert len(cam.detect(10.0, frame)) == 3  # the probe's result is used
    assert cam.current == "full"


def test_auto_stays_on_full_range_while_short_range_misses_a_face() -> None:
    # 120 px of 640 (19 %): between the thresholds, short range is asked once per SETTLE_S.
    d = FaceDetectors.__new__(FaceDetectors)
    d.mode = "auto"
    d.short = _Scripted("s", [[], [], [], [120]])  # type: ignore[assignment]
    d.full = _Scripted("f", [[120]])  # type: ignore[assignment]
    cam = RangeChoice(d, "ann")
    frame = np.zeros((360, 640, 3), np.uint8)
    t = 0.0
    while cam.current == "short":  # the first frame, then misses for MISS_S
        cam.detect(t, frame)
        t += 0.5
    asked = d.short.calls  # type: ignore[attr-defined]
    for _ in range(int(3 * SETTLE_S / 0.5)):
        assert len(cam.detect(t, frame)) == 1
        t += 0.5
    assert cam.current == "full"  # short range missed it each time it was asked
    assert d.short.calls - asked == 2  # type: ignore[attr-defined]
    while cam.current == "full":
        cam.detect(t, frame)
        t += 0.5
    assert d.short.calls - asked == 3  # type: ignore[attr-defined]


def test_auto_takes_a_face_as_small_only_when_it_stays_small() -> None:
    # A talking head near TO_FULL (17 % of 640 is 109 px): short range measures it 100 px on one
    # frame, 115 px on the next. It switched to full range on the first small frame; now a face
    # must stay small for MISS_S, as a lost face must stay lost.
    d = FaceDetectors.__new__(FaceDetectors)
    d.mode = "auto"
    d.short = _Scripted("s", [[100], [115]] * 200)  # type: ignore[assignment]
    d.full = _Scripted("f", [[110]])  # type: ignore[assignment]
    cam = RangeChoice(d, "ann")
    frame = np.zeros((360, 640, 3), np.uint8)
    for k in range(4 * 30):
        assert len(cam.detect(k / 4, frame)) == 1
    assert (cam.current, cam.switches) == ("short", 0)
    d.short = _Scripted("s", [[100]])  # type: ignore[assignment]
    start = t = 30.0
    while cam.current == "short":
        cam.detect(t, frame)
        t += 0.25
    assert t - start == pytest.approx(MISS_S + 0.25)


def test_auto_does_not_flap_on_a_face_the_two_ranges_measure_either_side_of_the_threshold() -> None:
    # Full range measures 115 px of 640 (18 %), short range 100 px (15.6 %): short range finds it
    # but would send the stream straight back, so full range keeps it (it flipped every ~12 s).
    d = FaceDetectors.__new__(FaceDetectors)
    d.mode = "auto"
    d.short = _Scripted("s", [[100]])  # type: ignore[assignment]
    d.full = _Scripted("f", [[115]])  # type: ignore[assignment]
    cam = RangeChoice(d, "ann")
    frame = np.zeros((360, 640, 3), np.uint8)
    for k in range(4 * 60):
        cam.detect(k / 4, frame)
    assert (cam.current, cam.switches) == ("full", 1)


def test_names_say_what_can_run(models_dir: Path, detectors: FaceDetectors) -> None:
    assert detectors.name == "blazeface-short-range@onnx-cpu|blazeface-full-range@onnx-cpu"
    runtime = RuntimeSettings()
    only_full = FaceDetectors(models_dir, runtime, FaceSettings(detector="full"))
    assert only_full.name == "blazeface-full-range@onnx-cpu" and only_full.short is None
    assert isinstance(only_full.full, TiledDetector)
    untiled = FaceSettings(detector="full", full_range_tiles=False)
    plain = FaceDetectors(models_dir, runtime, untiled)
    assert isinstance(plain.full, FaceDetector)
    short = FaceDetectors(models_dir, runtime, FaceSettings(detector="short"))
    assert short.name == "blazeface-short-range@onnx-cpu" and short.full is None
    assert short.for_stream(None).current == "short"  # a fixed choice, even for a room camera


def test_detector_setting_is_validated() -> None:
    assert FaceSettings().detector == "auto"
    with pytest.raises(ValidationError):
        FaceSettings(detector="far")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FaceSettings(full_range_tiles="sometimes")  # type: ignore[arg-type]
