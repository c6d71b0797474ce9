"""Section 1: face detection recall and precision by face width, head turn, layout and dim light,
for each `faces.detector` mode, on generated scenes of real faces."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .markdown import frac, table
from .run import Run, log
from .still_scenes import DIM_GAIN, DIM_SIGMA

SIZE_BINS = (20, 24, 32, 48, 72, 121, 161)
"""Face-width bin edges (px): [20, 24), [24, 32), [32, 48), [48, 72), [72, 121), [121, 161)."""
MATCH_IOU = 0.3
"""A detection finds a face at IoU >= this with its ground-truth box (as rapport.scenes.match)."""
FRONTAL_MIN = 0.7
"""Source photographs whose frontal score is at least this count as near-frontal."""


def size_bin(width: float) -> int | None:
    k = int(np.searchsorted(SIZE_BINS, width, "right")) - 1
    return k if 0 <= k < len(SIZE_BINS) - 1 else None


@dataclass
class DetTally:
    found: Counter[Any] = field(default_factory=Counter)
    total: Counter[Any] = field(default_factory=Counter)
    false_pos: Counter[Any] = field(default_factory=Counter)
    """Unmatched detections, by the size bin of their own width."""

    def recall(self, key: Any) -> str:
        return frac(self.found[key], self.total[key])

    def precision(self, key: Any) -> str:
        tp = self.found[key]
        return frac(tp, tp + self.false_pos[key])


def recall_from(by_size: DetTally, min_px: int) -> str:
    """Recall over the size bins that start at min_px or above (a tally keyed by size_bin)."""
    bins = [k for k in range(len(SIZE_BINS) - 1) if SIZE_BINS[k] >= min_px]
    return frac(sum(by_size.found[k] for k in bins), sum(by_size.total[k] for k in bins))


def detector_cases(run: Run) -> dict[str, Callable[[int, NDArray[np.uint8]], list[Any]]]:
    """name -> detect(frame index, rgb) for each `faces.detector` mode, with the settings' score
    threshold and minimum face size."""
    from rapport.perception.face_detection import FULL_RANGE, SHORT_RANGE, FaceDetector
    from rapport.perception.face_range import FaceDetectors, TiledDetector

    s = run.settings
    fps = s.video.sample_fps
    short = FaceDetector(run.models_dir, s.runtime, s.faces, SHORT_RANGE)
    full_model = FaceDetector(run.models_dir, s.runtime, s.faces, FULL_RANGE)
    full = TiledDetector(full_model) if s.faces.full_range_tiles else full_model
    auto = FaceDetectors(run.models_dir, s.runtime, s.faces.model_copy(update={"detector": "auto"}))
    participant = auto.for_stream("participant")
    return {
        "short": lambda i, rgb: short.detect(rgb),
        "full": lambda i, rgb: full.detect(rgb),
        "auto, participant camera": lambda i, rgb: participant.detect(i / fps, rgb),
    }


def detection_section(run: Run) -> tuple[str, dict[str, Any]]:
    from rapport.perception.face_detection import FULL_RANGE, FaceDetector
    from rapport.perception.face_range import TiledDetector
    from rapport.scenes import SOURCES, evaluation_set, match

    s = run.settings
    count = 30 if run.quick else 120
    scenes = evaluation_set(count)
    galleries = count // 6
    frontal = {src.name: src.frontal for src in SOURCES}
    n_faces = sum(len(sc.faces) for sc in scenes)
    log(f"detection: {len(scenes)} scenes, {n_faces} faces")
    by_size: dict[str, DetTally] = {}
    by_pose: dict[str, DetTally] = {}
    by_kind: dict[str, DetTally] = {}
    cost: dict[str, float] = {}
    for name, detect in detector_cases(run).items():
        log(f"detection: {name}")
        size_t, pose_t, kind_t = DetTally(), DetTally(), DetTally()
        t0 = time.perf_counter()
        for i, sc in enumerate(scenes):
            found = [d.box for d in detect(i, sc.rgb)]
            m = match([f.box for f in sc.faces], found, MATCH_IOU)
            hit = {ti for ti, _ in m.pairs}
            kind = "gallery tiles" if i >= len(scenes) - galleries else "scattered faces"
            for ti, face in enumerate(sc.faces):
                k = size_bin(face.box.width)
                ok = ti in hit
                size_t.total[k] += 1
                size_t.found[k] += ok
                if face.box.width >= s.faces.min_face_px:
                    src = face.source
                    pose_t.total[src] += 1
                    pose_t.found[src] += ok
                    kind_t.total[kind] += 1
                    kind_t.found[kind] += ok
            for fi in m.extra:
                size_t.false_pos[size_bin(found[fi].width)] += 1
                kind_t.false_pos[kind] += 1
        cost[name] = (time.perf_counter() - t0) * 1000 / len(scenes)
        by_size[name], by_pose[name], by_kind[name] = size_t, pose_t, kind_t

    names = list(by_size)
    bins = [f"{lo}-{hi - 1}" for lo, hi in pairwise(SIZE_BINS)]
    faces_per_bin = [by_size[names[0]].total[k] for k in range(len(bins))]
    size_rows = []
    for k, label in enumerate(bins):
        if not faces_per_bin[k]:
            continue
        row: list[object] = [label, faces_per_bin[k]]
        for name in names:
            row += [by_size[name].recall(k), by_size[name].precision(k)]
        size_rows.append(row)
    size_header = ["face width px", "faces"]
    for name in names:
        size_header += [f"{name}: recall", f"{name}: precision"]
    pose_rows = []
    for src in sorted(frontal, key=lambda n: -frontal[n]):
        if by_pose[names[0]].total[src] == 0:
            continue
        turn = "near-frontal" if frontal[src] >= FRONTAL_MIN else "turned"
        pose_rows.append(
            [src, f"{frontal[src]:.2f} ({turn})", by_pose[names[0]].total[src]]
            + [by_pose[name].recall(src) for name in names]
        )
    groups: dict[str, DetTally] = {name: DetTally() for name in names}
    for name in names:
        for src, fr in frontal.items():
            g = "near-frontal" if fr >= FRONTAL_MIN else "turned"
            groups[name].total[g] += by_pose[name].total[src]
            groups[name].found[g] += by_pose[name].found[src]
    for g in ("near-frontal", "turned"):
        pose_rows.append(
            [f"**all {g}**", "", groups[names[0]].total[g]]
            + [groups[name].recall(g) for name in names]
        )
    kind_rows = [
        [kind, by_kind[names[0]].total[kind]]
        + [f"{by_kind[n].recall(kind)}; {by_kind[n].precision(kind)}" for n in names]
        for kind in ("scattered faces", "gallery tiles")
    ]
    cost_rows = [[n, f"{cost[n]:.1f}"] for n in names]
    for name in names:
        run.headlines.append(
            f"Face detection recall, faces >= {s.faces.min_face_px} px, `{name}`: "
            f"{recall_from(by_size[name], s.faces.min_face_px)}"
        )
    pose_table = table(
        ["source", "frontal score", "faces", *(f"{n}: recall" for n in names)], pose_rows
    )
    # The same scenes in a dim room: every level times DIM_GAIN, then sensor noise.
    log("detection: the same scenes, dimmed")
    rng = run.gen(100)
    dim_rows = []
    dim_found: Counter[str] = Counter()
    dim_total = 0
    for i, sc in enumerate(scenes):
        dark = sc.rgb.astype(np.float32) * DIM_GAIN + rng.normal(0, DIM_SIGMA, sc.rgb.shape)
        scenes[i] = type(sc)(np.clip(dark, 0, 255).astype(np.uint8), sc.faces)
    for name, detect in detector_cases(run).items():
        for i, sc in enumerate(scenes):
            big = [f.box for f in sc.faces if f.box.width >= s.faces.min_face_px]
            m = match(big, [d.box for d in detect(i, sc.rgb)], MATCH_IOU)
            dim_found[name] += len(m.pairs)
            if name == names[0]:
                dim_total += len(big)
    for name in names:
        as_generated = recall_from(by_size[name], s.faces.min_face_px)
        dim_rows.append([name, as_generated, frac(dim_found[name], dim_total)])
    full_model = FaceDetector(run.models_dir, s.runtime, s.faces, FULL_RANGE)
    extra: dict[str, Any] = {
        "full range, whole frame": full_model,
        "full range, tiled (faces.detector: full)": TiledDetector(full_model),
    }
    text = f"""## 1. Face detection

Generated scenes of real faces (`rapport.scenes.evaluation_set({count})`): {count}
640x360 frames of 3-8 faces of widths drawn uniformly from 20-120 px at random places on varied
backdrops, then {galleries} video-call galleries (2x2 and 3x3 tiles, one face per tile), {n_faces}
faces in all. Each face is one of six public-domain photographs (`rapport.scenes.SOURCES`; four
people), pasted through a soft mask, sometimes mirrored; its ground-truth box is where the
detector boxed it on the large original, scaled. A face is found at IoU >= {MATCH_IOU:g} with its
box; precision counts every unmatched detection as a false positive (binned by its own width).
Settings as shipped: `faces.min_score` {s.faces.min_score:g}, `faces.min_face_px`
{s.faces.min_face_px} (smaller detections are dropped by design, so the 20-23 px row measures
that rule more than the models), full range with tiles (`faces.full_range_tiles`
{str(s.faces.full_range_tiles).lower()}). `auto` runs as on a participant's camera, the scenes fed
in order as one {s.video.sample_fps:g} fps stream (it starts on short range, probes the first frame
with full range and switches to full once it sees small faces or the probe finds more; on full
range it adds the tiles only where they find faces the whole-frame pass misses, where `full`
tiles every frame; on a shared room camera `auto` runs full range that way from the start).

### By face width

{table(size_header, size_rows)}

### By head turn

The photographs are what we have of head turn: no generated pose, no profile views. Each
source's frontal score is the short-range detector's own estimate on the original (1: facing
the camera, about 0.5: three-quarter). Recall over faces of at least
{s.faces.min_face_px} px:

{pose_table}

With four people in six photographs this is a small sample of faces, not of the population; it
says nothing about skin tone, age or eyewear.

### Scattered faces and galleries

Faces of at least {s.faces.min_face_px} px; recall; precision:

{table(["layout", "faces", *names], kind_rows)}

### Dim light (generated)

The same scenes with every level times {DIM_GAIN:g} and Gaussian noise of sd {DIM_SIGMA:g} levels
added: a crude stand-in for a dark room (a real camera raises gain, blurs and compresses too).
Recall over faces of at least {s.faces.min_face_px} px:

{table(["detector", "as generated", "dimmed"], dim_rows)}

### Cost

Mean wall time per frame over these scenes, one thread (auto's cost depends on how long it stays
on each range; see section 5 for the per-call latency):

{table(["detector", "ms per frame"], cost_rows)}
"""
    return text, extra
