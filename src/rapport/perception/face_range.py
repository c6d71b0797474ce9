"""Which BlazeFace runs on a stream: short range, full range (tiled), or chosen per stream (auto).

Full range over the whole 640x360 frame shrinks it to 192 px, so a 24 px face is 7 px there and
is missed; the tiled pass adds a 4x2 grid of overlapping tiles (each 220x220 at 640x360) where it
is ~21 px. Measured on rapport.scenes (scripts/face_detection_recall.py, 745 faces), faces >= 24
px: recall 0.35 short, 0.70 full whole-frame, 0.96 full tiled (0.92 at 24-31 px), precision
>= 0.98; one pass costs ~1.3 ms short, ~2.7 ms full, so tiled full (9 passes) ~25 ms per frame.

`auto` keeps one small state machine per stream (RangeChoice), on media time, with hysteresis:
- a shared room camera (no owner) always runs full range;
- a participant's camera starts on short range and switches to full when a face narrower than
  TO_FULL of the frame's longer side (short range's limit is ~1/7) has been seen for MISS_S (one
  small frame is no trend: box widths vary by ~10 % frame to frame), when no face has been found
  for MISS_S, or when the full-range probe run on its first frame and every PROBE_S after
  finds more faces than short did (a gallery of small tiles switches at once);
- it switches back once every frame for SETTLE_S had a face, all at least TO_FULL of the longer
  side, and on the last of them either all are at least TO_SHORT or short range, asked then,
  finds every one at least 5 % above TO_FULL by its own box (a stream sent to full range by a
  moment without a face, e.g. blank frames as a camera starts, comes back; one whose face short
  range measures under TO_FULL stays, instead of flapping);
- full range adds its tiles only where they find faces the whole-frame pass misses: a tiled pass
  every PROBE_S, and on every frame for SETTLE_S after one found more (one face of a talking head
  costs ~3 ms a frame, not ~25). `faces.detector: full` tiles every frame.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from rapport.config import FaceSettings, RuntimeSettings
from rapport.frames import Box, Detection
from rapport.perception.face_detection import FULL_RANGE, SHORT_RANGE, FaceDetector

log = logging.getLogger(__name__)

Range = Literal["short", "full"]

TO_FULL: Final = 0.17
TO_SHORT: Final = 0.22
MISS_S: Final = 2.0
_BACK_MARGIN: Final = 1.05
SETTLE_S: Final = 10.0
PROBE_S: Final = 10.0
_TILE_GRID: Final = (4, 2)  # columns x rows on a landscape frame (transposed for portrait)
_TILE_OVERLAP: Final = 0.125
"""Of the longer side (80 px at 640): the largest face the tiles must hold whole; bigger ones are
the whole-frame pass's."""
_EDGE_PX: Final = 2.0
_MERGE_IOU: Final = 0.3
_MERGE_INSIDE: Final = 0.6


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the overlapping tiles covering a frame, row by row."""
    cols, rows = _TILE_GRID if width >= height else _TILE_GRID[::-1]
    overlap = round(_TILE_OVERLAP * max(width, height))
    tw = min(width, math.ceil((width + (cols - 1) * overlap) / cols))
    th = min(height, math.ceil((height + (rows - 1) * overlap) / rows))
    xs = [round(i * (width - tw) / (cols - 1)) for i in range(cols)]
    ys = [round(i * (height - th) / (rows - 1)) for i in range(rows)]
    return [(x, y, tw, th) for y in ys for x in xs]


class TiledDetector:
    """A detector run on the whole frame and on overlapping tiles, results merged.

    A tile's detection touching one of its inner edges (a face cut by the tile) is dropped: the
    overlap puts any face that small wholly inside a neighbour. Merging keeps the best-scored of
    boxes that overlap (IoU > 0.3, or one mostly inside the other). Frames whose longer side is
    under twice the model's input gain nothing from tiles and get the whole-frame pass only.
    """

    def __init__(self, detector: FaceDetector) -> None:
        self._detector = detector

    @property
    def name(self) -> str:
        return self._detector.name

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        return self.detect_both(rgb)[1]

    def detect_whole(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        """The whole-frame pass alone."""
        return self._detector.detect(rgb)

    def detect_both(self, rgb: NDArray[np.uint8]) -> tuple[list[Detection], list[Detection]]:
        """(the whole-frame pass's faces, those merged with the tiles')."""
        whole = self._detector.detect(rgb)
        found = list(whole)
        h, w = rgb.shape[:2]
        if max(h, w) < 2 * self._detector.spec.size:
            return whole, found
        for x, y, tw, th in tiles(w, h):
            for d in self._detector.detect(np.ascontiguousarray(rgb[y : y + th, x : x + tw])):
                b = d.box
                if (
                    (x > 0 and b.x0 <= _EDGE_PX)
                    or (y > 0 and b.y0 <= _EDGE_PX)
                    or (x + tw < w and b.x1 >= tw - _EDGE_PX)
                    or (y + th < h and b.y1 >= th - _EDGE_PX)
                ):
                    continue
                box = Box(b.x0 + x, b.y0 + y, b.x1 + x, b.y1 + y)
                found.append(Detection(box=box, score=d.score, frontal=d.frontal))
        found.sort(key=lambda d: -d.score)
        kept: list[Detection] = []
        for d in found:
            if not any(_same_face(d.box, k.box) for k in kept):
                kept.append(d)
        return whole, kept


def _same_face(a: Box, b: Box) -> bool:
    if a.iou(b) > _MERGE_IOU:
        return True
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    return ix * iy > _MERGE_INSIDE * min(a.area, b.area)


class FaceDetectors:
    """The detectors `faces.detector` needs, loaded once per process and shared by all streams."""

    def __init__(self, models_dir: Path, runtime: RuntimeSettings, faces: FaceSettings) -> None:
        self.mode = faces.detector
        self.short = (
            FaceDetector(models_dir, runtime, faces, SHORT_RANGE)
            if faces.detector in ("short", "auto")
            else None
        )
        self.full: FaceDetector | TiledDetector | None = None
        if faces.detector in ("full", "auto"):
            full = FaceDetector(models_dir, runtime, faces, FULL_RANGE)
            self.full = TiledDetector(full) if faces.full_range_tiles else full

    @property
    def name(self) -> str:
        """What produces the boxes: one model's display name, or both joined by '|' for auto
        (a stream may have run either, frame by frame)."""
        names = [d.name for d in (self.short, self.full) if d is not None]
        return "|".join(names)

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        """Stateless use (one image): full range where loaded, else short range."""
        detector = self.full or self.short
        assert detector is not None
        return detector.detect(rgb)

    def for_stream(self, owner: str | None) -> RangeChoice:
        return RangeChoice(self, owner)


class RangeChoice:
    """One stream's detector choice (see the module notes); not thread-safe."""

    def __init__(self, detectors: FaceDetectors, owner: str | None) -> None:
        self._d = detectors
        if detectors.mode == "auto":
            self.current: Range = "full" if owner is None else "short"
        else:
            self.current = detectors.mode
        self._fixed = detectors.mode != "auto" or owner is None
        self._last_face = -math.inf  # when short range last found a face
        self._small_since: float | None = None  # short range: since when a face is small
        self._settled_since: float | None = None  # full range: since when all faces are large
        self._last_probe: float | None = None
        self._tiles_until = -math.inf  # full range: tile every frame until then
        self._next_tiles = -math.inf  # full range: the next tiled pass
        self.switches = 0
        self.tiled = 0
        """Frames on which full range ran its tiles."""

    def detect(self, t: float, rgb: NDArray[np.uint8]) -> list[Detection]:
        """Detect on the frame at media time `t` with the current range, then update the choice."""
        short, full = self._d.short, self._d.full
        long_side = max(rgb.shape[:2])
        if self.current == "full" or self._fixed:
            detector = full if self.current == "full" else short
            assert detector is not None
            if isinstance(detector, TiledDetector) and self._d.mode == "auto":
                found = self._full(t, detector, rgb)
            else:
                found = detector.detect(rgb)
                self.tiled += isinstance(detector, TiledDetector)
            if not self._fixed:
                self._after_full(t, found, rgb)
            return found
        assert short is not None and full is not None
        found = short.detect(rgb)
        if self._last_probe is None:  # a stream's first frame is probed: a gallery at once
            self._last_face, self._last_probe = t, t - PROBE_S
        if found:
            self._last_face = t
        if any(d.box.width < TO_FULL * long_side for d in found):
            self._small_since = t if self._small_since is None else self._small_since
        elif found:
            self._small_since = None
        # Held for MISS_S: a talking head near TO_FULL measures either side of it frame by frame.
        small = self._small_since is not None and t - self._small_since >= MISS_S
        probe: list[Detection] | None = None
        if t - self._last_probe >= PROBE_S:
            self._last_probe = t
            probe = full.detect(rgb)
        more = probe is not None and len(probe) > len(found)
        if small or more or t - self._last_face >= MISS_S:
            why = "a small face" if small else "more faces" if more else "no face"
            self._switch("full", t, why)
        return probe if probe is not None and more else found

    def _full(self, t: float, full: TiledDetector, rgb: NDArray[np.uint8]) -> list[Detection]:
        if t < self._tiles_until or t >= self._next_tiles:
            whole, found = full.detect_both(rgb)
            self.tiled += 1
            self._next_tiles = t + PROBE_S
            if len(found) > len(whole):
                self._tiles_until = t + SETTLE_S
            return found
        return full.detect_whole(rgb)

    def _after_full(self, t: float, found: list[Detection], rgb: NDArray[np.uint8]) -> None:
        long_side = max(rgb.shape[:2])
        if not found or any(d.box.width < TO_FULL * long_side for d in found):
            self._settled_since = None
        elif self._settled_since is None:
            self._settled_since = t
        elif t - self._settled_since >= SETTLE_S:
            if all(d.box.width >= TO_SHORT * long_side for d in found) or self._short_finds(
                rgb, found
            ):
                self._switch("short", t, "large faces")
            else:
                self._settled_since = t  # asked again after as long

    def _short_finds(self, rgb: NDArray[np.uint8], found: list[Detection]) -> bool:
        """Short range finds every face full range found here, each at least TO_FULL (with a
        margin) by its own measure: the two models' boxes differ by 3-10 %, and short range's is
        what sends a stream back to full range (faces between TO_FULL and TO_SHORT: short range's
        limit depends on the face, so it is asked, once per SETTLE_S)."""
        assert self._d.short is not None
        short = self._d.short.detect(rgb)
        wide = [s for s in short if s.box.width >= _BACK_MARGIN * TO_FULL * max(rgb.shape[:2])]
        return all(any(_same_face(f.box, s.box) for s in wide) for f in found)

    def _switch(self, to: Range, t: float, why: str) -> None:
        log.debug("face detection range: %s (%s)", to, why, extra={"t": t})
        self.current = to
        self.switches += 1
        self._settled_since = None
        self._next_tiles = -math.inf  # a switch to full range starts with a tiled pass
        self._last_face = self._last_probe = t
        self._small_since = None
