"""Generated scenes of real faces with ground-truth boxes, for detector tests, benchmarks, reports.

Every face is a real photograph that a registry package ships (see SOURCES and
scene_faces/SOURCES.md for origin and licence), pasted at a chosen width into a 640x360 frame
through a soft elliptical mask, so no rectangular seam marks where it is. A face's width is the
width of its ground-truth box: the box BlazeFace short-range found once on the large original
(about cheek to cheek, brow to chin), scaled with the paste. Faces never overlap.

    scene([24, 48, 96])        three faces of those widths, placed at random
    gallery(9)                 a 3x3 grid of participant tiles, one face each
    moving([40, 80], frames=20) two faces drifting over 20 frames, identities kept

Everything is deterministic given the seed. No head-turn control: the sources are near-frontal
apart from `camera` (a three-quarter view); `SourceFace.frontal` records each one's pose.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from rapport.frames import Box

Image = NDArray[np.uint8]
_DIR: Final = Path(__file__).with_name("scene_faces")
_MARGIN: Final = 1.1
"""The pasted patch reaches this many face widths out from the face centre (hair, neck)."""
MIN_WIDTH: Final = 8
MAX_WIDTH: Final = 200


@dataclass(frozen=True, slots=True)
class SourceFace:
    name: str
    box: Box
    """The face in the source image, in its pixels (BlazeFace short-range, score >= 0.8)."""
    frontal: float
    """The detector's frontal score on the source: 1 faces the camera, ~0.5 three-quarter."""
    origin: str
    license: str
    load: Callable[[], Image]


def _file(name: str) -> Callable[[], Image]:
    def load() -> Image:
        bgr = cv2.imread(str(_DIR / f"{name}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(_DIR / f"{name}.jpg")
        return np.ascontiguousarray(bgr[..., ::-1])

    return load


def _skimage(name: str) -> Callable[[], Image]:
    def load() -> Image:
        from skimage import data

        img = getattr(data, name)()
        return np.ascontiguousarray(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img)

    return load


_FR: Final = "face_recognition 1.3.0 sdist (PyPI, MIT), tests/test_images/"
_PD_WH: Final = "public domain (US federal government work, White House photograph)"
SOURCES: Final = (
    SourceFace(
        "astronaut", Box(178.1, 80.9, 272.1, 175.0), 0.88,
        "scikit-image skimage.data.astronaut (Eileen Collins, NASA)",
        "public domain (NASA)", _skimage("astronaut"),
    ),
    SourceFace(
        "obama", Box(119.1, 84.6, 276.9, 242.0), 0.98,
        _FR + "obama.jpg, cropped and scaled", _PD_WH, _file("obama"),
    ),
    SourceFace(
        "biden", Box(109.5, 125.6, 255.3, 271.4), 0.79,
        _FR + "biden.jpg, cropped and scaled", _PD_WH, _file("biden"),
    ),
    SourceFace(
        "obama2", Box(97.9, 113.3, 265.8, 281.8), 0.35,
        _FR + "obama2.jpg, cropped and scaled", _PD_WH, _file("obama2"),
    ),
    SourceFace(
        "obama3", Box(128.2, 132.6, 262.3, 266.7), 0.75,
        _FR + "obama3.jpg, cropped and scaled", _PD_WH, _file("obama3"),
    ),
    SourceFace(
        "camera", Box(179.6, 121.3, 263.6, 205.3), 0.5,
        "scikit-image skimage.data.camera (grey, three-quarter view)",
        "CC0 (scikit-image data licence)", _skimage("camera"),
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SceneFace:
    box: Box
    """Ground truth in frame pixels."""
    identity: int
    """Stable per face within a scene or a sequence (0, 1, ...)."""
    source: str


@dataclass(frozen=True, slots=True)
class Scene:
    rgb: Image
    """H x W x 3 uint8."""
    faces: tuple[SceneFace, ...]


@functools.cache
def _patch(source: int, mirror: bool) -> tuple[Image, NDArray[np.float32], Box]:
    """(RGB patch, alpha 0..1, face box in the patch) around one source face."""
    src = SOURCES[source]
    img = src.load()
    b = src.box
    cx, cy, r = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, _MARGIN * b.width
    x0, y0 = max(0, round(cx - r)), max(0, round(cy - 1.15 * r))
    x1, y1 = min(img.shape[1], round(cx + r)), min(img.shape[0], round(cy + 1.05 * r))
    patch = np.ascontiguousarray(img[y0:y1, x0:x1])
    box = Box(b.x0 - x0, b.y0 - y0, b.x1 - x0, b.y1 - y0)
    h, w = patch.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ex, ey = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    d = np.hypot((xx - ex) / (w / 2), (yy - ey) / (h / 2))
    alpha = np.clip((1.0 - d) / 0.25, 0.0, 1.0).astype(np.float32)  # soft edge, quarter radius
    if mirror:
        patch, alpha = np.ascontiguousarray(patch[:, ::-1]), np.ascontiguousarray(alpha[:, ::-1])
        box = Box(w - box.x1, box.y0, w - box.x0, box.y1)
    return patch, alpha, box


def _paste(frame: Image, source: int, mirror: bool, width: float, x: float, y: float) -> Box:
    """Paste a source face so its box is `width` wide with its top-left at (x, y) in the frame's
    pixels (clipped at the edges); its ground-truth box."""
    patch, alpha, box = _patch(source, mirror)
    s = width / box.width
    # The patch origin in frame pixels; the resize keeps sub-pixel placement out (whole pixels).
    ox, oy = round(x - box.x0 * s), round(y - box.y0 * s)
    pw, ph = max(1, round(patch.shape[1] * s)), max(1, round(patch.shape[0] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    p = cv2.resize(patch, (pw, ph), interpolation=interp).astype(np.float32)
    a = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_LINEAR)[..., None]
    fx0, fy0 = max(0, ox), max(0, oy)
    fx1, fy1 = min(frame.shape[1], ox + pw), min(frame.shape[0], oy + ph)
    if fx1 > fx0 and fy1 > fy0:
        region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        pp = p[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
        aa = a[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
        frame[fy0:fy1, fx0:fx1] = np.round(pp * aa + region * (1 - aa)).astype(np.uint8)
    return Box(ox + box.x0 * s, oy + box.y0 * s, ox + box.x1 * s, oy + box.y1 * s)


def _footprint(source: int, width: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) extent of a pasted patch around its face box, in pixels."""
    patch, _, box = _patch(source, False)
    s = width / box.width
    return box.x0 * s, box.y0 * s, (patch.shape[1] - box.x1) * s, (patch.shape[0] - box.y1) * s


_BACKGROUNDS: Final = ("gradient", "brick", "gravel", "grass", "rocket", "coffee", "office")


def background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image:
    """A face-free backdrop (width, height) = size: gradient, skimage textures or photographs
    (brick, gravel, grass, rocket, coffee), or an 'office' of flat panels."""
    w, h = size
    if kind == "gradient":
        c0, c1 = rng.integers(30, 225, 3), rng.integers(30, 225, 3)
        t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        ramp = (c0 + (c1 - c0) * t).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(ramp, (h, w, 3)))
    if kind == "office":
        room: Image = np.empty((h, w, 3), np.uint8)
        room[:] = rng.integers(120, 200, 3)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
            room[y0:y1, x0:x1] = rng.integers(40, 230, 3)
        return np.asarray(cv2.GaussianBlur(room, (5, 5), 0), np.uint8)
    if kind not in _BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; one of {', '.join(_BACKGROUNDS)}")
    img = _skimage(kind)()
    if kind in ("brick", "gravel", "grass"):  # grey textures, tinted
        img = np.clip(img * (rng.uniform(0.6, 1.1, 3) * 0.9), 0, 255).astype(np.uint8)
    scale = max(w / img.shape[1], h / img.shape[0])
    big = cv2.resize(img, (math.ceil(img.shape[1] * scale), math.ceil(img.shape[0] * scale)))
    oy, ox = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[oy : oy + h, ox : ox + w])


def scene(
    widths: Sequence[float],
    *,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    backdrop: str | None = None,
) -> Scene:
    """len(widths) faces of those widths (px, MIN_WIDTH..MAX_WIDTH) at random, non-overlapping
    places on one backdrop (random kind unless given); sources and mirroring vary with the seed.
    Raises ValueError when the faces do not fit."""
    rng = np.random.default_rng(seed)
    w, h = size
    frame = background(backdrop or str(rng.choice(_BACKGROUNDS)), size, rng)
    placed: list[tuple[float, float, float, float]] = []
    faces = []
    for i, width in enumerate(sorted(widths, reverse=True)):  # big first: easier to fit
        _check_width(width)
        source = int(rng.integers(len(SOURCES)))
        left, top, right, bottom = _footprint(source, width)
        fh = width * SOURCES[source].box.height / SOURCES[source].box.width
        for _ in range(400):
            x = rng.uniform(0, w - width)
            y = rng.uniform(0, h - fh)
            rect = (x - left, y - top, x + width + right, y + fh + bottom)
            if all(_apart(rect, other) for other in placed):
                break
        else:
            raise ValueError(f"{len(widths)} faces of widths {list(widths)} do not fit {size}")
        placed.append(rect)
        box = _paste(frame, source, bool(rng.integers(2)), width, x, y)
        faces.append(SceneFace(box, i, SOURCES[source].name))
    return Scene(frame, tuple(faces))


def gallery(tiles: int, *, size: tuple[int, int] = (640, 360), seed: int = 0) -> Scene:
    """A video-call gallery: a 2x2 (tiles=4) or 3x3 (tiles=9) grid of participant tiles with
    2 px dark gutters, one face per tile at 45-60% of the tile's height, each on its own backdrop.
    """
    if tiles not in (4, 9):
        raise ValueError(f"tiles must be 4 or 9, got {tiles}")
    rng = np.random.default_rng(seed)
    n = math.isqrt(tiles)
    w, h = size
    frame = np.full((h, w, 3), 24, np.uint8)
    faces = []
    for k in range(tiles):
        r, c = divmod(k, n)
        x0, x1 = c * w // n + 1, (c + 1) * w // n - 1
        y0, y1 = r * h // n + 1, (r + 1) * h // n - 1
        tw, th = x1 - x0, y1 - y0
        tile = background(str(rng.choice(_BACKGROUNDS)), (tw, th), rng)
        source = int(rng.integers(len(SOURCES)))
        width = th * rng.uniform(0.45, 0.6)
        fh = width * SOURCES[source].box.height / SOURCES[source].box.width
        x = (tw - width) / 2 + rng.uniform(-0.1, 0.1) * tw
        y = (th - fh) * rng.uniform(0.3, 0.6)
        box = _paste(tile, source, bool(rng.integers(2)), width, x, y)
        frame[y0:y1, x0:x1] = tile
        faces.append(SceneFace(Box(box.x0 + x0, box.y0 + y0, box.x1 + x0, box.y1 + y0), k,
                               SOURCES[source].name))  # fmt: skip
    return Scene(frame, tuple(faces))


def moving(
    widths: Sequence[float],
    *,
    frames: int,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    step: float = 0.25,
) -> list[Scene]:
    """`frames` frames of len(widths) faces, each drifting inside its own cell of a grid (so they
    never overlap) along a smooth loop, up to `step` face widths per frame, its width breathing
    +-10%. SceneFace.identity is the face's index in `widths` in every frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    cols = max(1, math.ceil(math.sqrt(len(widths) * w / h)))
    rows = math.ceil(len(widths) / cols)
    bg = background(str(rng.choice(_BACKGROUNDS)), size, rng)
    plan = []
    for i, width in enumerate(widths):
        _check_width(width * 1.1)
        source = int(rng.integers(len(SOURCES)))
        r, c = divmod(i, cols)
        cell = (c * w / cols, r * h / rows, (c + 1) * w / cols, (r + 1) * h / rows)
        left, top, right, bottom = _footprint(source, width * 1.1)
        fh = 1.1 * width * SOURCES[source].box.height / SOURCES[source].box.width
        room_x = max(0.0, cell[2] - cell[0] - left - right - 1.1 * width)
        room_y = max(0.0, cell[3] - cell[1] - top - bottom - fh)
        plan.append((source, bool(rng.integers(2)), width, cell, left, top, room_x, room_y,
                     rng.uniform(0, 2 * math.pi), rng.choice([-1, 1])))  # fmt: skip
    out = []
    for f in range(frames):
        frame = bg.copy()
        faces = []
        for i, (source, mirror, width, cell, left, top, rx, ry, phase, turn) in enumerate(plan):
            # An ellipse of radii rx/2, ry/2: about `step` widths of path per frame.
            omega = step * width / max(1.0, (rx + ry) / 4)
            a = phase + turn * omega * f
            cur = width * (1.0 + 0.1 * math.sin(0.3 * f + phase))
            x = cell[0] + left + rx * (0.5 + 0.5 * math.cos(a))
            y = cell[1] + top + ry * (0.5 + 0.5 * math.sin(a))
            box = _paste(frame, source, mirror, cur, x, y)
            faces.append(SceneFace(box, i, SOURCES[source].name))
        out.append(Scene(frame, tuple(faces)))
    return out


def _check_width(width: float) -> None:
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"face width {width:g} px is outside {MIN_WIDTH}..{MAX_WIDTH}")


def _apart(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@dataclass(frozen=True, slots=True)
class Match:
    pairs: tuple[tuple[int, int], ...]
    """(truth index, found index), greedy by IoU, best first; each used at most once."""
    missed: tuple[int, ...]
    """Truth indices not found."""
    extra: tuple[int, ...]
    """Found indices that match no truth (false positives)."""


def match(truth: Sequence[Box], found: Sequence[Box], min_iou: float = 0.3) -> Match:
    """Pair found boxes with ground truth at IoU >= min_iou."""
    costs = sorted(
        ((t.iou(f), ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)),
        key=lambda c: (-c[0], c[1], c[2]),
    )
    pairs, used_t, used_f = [], set(), set()
    for iou, ti, fi in costs:
        if iou < min_iou:
            break
        if ti not in used_t and fi not in used_f:
            pairs.append((ti, fi))
            used_t.add(ti)
            used_f.add(fi)
    return Match(
        tuple(sorted(pairs)),
        tuple(i for i in range(len(truth)) if i not in used_t),
        tuple(i for i in range(len(found)) if i not in used_f),
    )


WIDTH_BINS: Final = (20, 24, 32, 48, 64, 96, 161)
"""Face-width bin edges (px) for recall: [20, 24), [24, 32), ... [96, 161)."""


@dataclass(frozen=True, slots=True)
class Tally:
    found: tuple[int, ...]
    """Per WIDTH_BINS bin: ground-truth faces matched."""
    total: tuple[int, ...]
    """Per bin: ground-truth faces."""
    detections: int
    false_positives: int

    def recall(self, min_width: float = 0) -> float:
        """Over the bins starting at or above min_width; 1.0 when there is no such face."""
        keep = [i for i, lo in enumerate(WIDTH_BINS[:-1]) if lo >= min_width]
        total = sum(self.total[i] for i in keep)
        return sum(self.found[i] for i in keep) / total if total else 1.0

    @property
    def precision(self) -> float:
        return 1.0 - self.false_positives / self.detections if self.detections else 1.0


def tally(
    scenes: Sequence[Scene], found: Sequence[Sequence[Box]], min_iou: float = 0.3
) -> Tally:
    """Recall per face-width bin and precision of `found` (boxes per scene) against the truth."""
    n = len(WIDTH_BINS) - 1
    hit, total = [0] * n, [0] * n
    detections = fps = 0
    for sc, boxes in zip(scenes, found, strict=True):
        m = match([f.box for f in sc.faces], boxes, min_iou)
        matched = {ti for ti, _ in m.pairs}
        for ti, face in enumerate(sc.faces):
            b = min(n - 1, max(0, int(np.searchsorted(WIDTH_BINS, face.box.width, "right")) - 1))
            total[b] += 1
            hit[b] += ti in matched
        detections += len(boxes)
        fps += len(m.extra)
    return Tally(tuple(hit), tuple(total), detections, fps)


def evaluation_set(count: int = 120, *, seed: int = 1000) -> list[Scene]:
    """A fixed evaluation set: `count` scenes of 3-8 faces with widths uniform in 20..120 px,
    then count // 6 galleries (alternately 3x3 and 2x2). Scenes that cannot fit are redrawn."""
    rng = np.random.default_rng(seed)
    out: list[Scene] = []
    k = 0
    while len(out) < count:
        widths = list(rng.uniform(20, 120, int(rng.integers(3, 9))))
        k += 1
        try:
            out.append(scene(widths, seed=seed + k))
        except ValueError:
            continue
    out += [gallery(9 if i % 2 == 0 else 4, seed=seed + i) for i in range(count // 6)]
    return out
