#!/usr/bin/env python3
"""Face detection recall per face width, precision and cost on generated scenes (rapport.scenes).

    .venv/bin/python scripts/face_detection_recall.py [--scenes 120] [--min-score 0.6]

Rows: short range, full range on the whole frame, full range tiled (what `faces.detector: full`
runs), and auto on a participant's camera fed the scenes as one 4 fps stream (it starts on short
range and switches). A face counts as found at IoU >= 0.3 with its ground-truth box.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=120)
    ap.add_argument("--min-score", type=float, default=0.6)
    ap.add_argument("--models", type=Path, default=Path("models"))
    args = ap.parse_args()

    from rapport.config import FaceSettings, RuntimeSettings
    from rapport.perception.face_detection import FULL_RANGE, FaceDetector
    from rapport.perception.face_range import FaceDetectors, TiledDetector
    from rapport.scenes import WIDTH_BINS, evaluation_set, tally

    faces = FaceSettings(min_score=args.min_score, min_face_px=8, detector="auto")
    runtime = RuntimeSettings()
    scenes = evaluation_set(args.scenes)
    full = FaceDetector(args.models, runtime, faces, FULL_RANGE)
    detectors = FaceDetectors(args.models, runtime, faces)
    assert detectors.short is not None
    choice = detectors.for_stream("participant")
    cases = {
        "short range": lambda i, rgb: detectors.short.detect(rgb),  # type: ignore[union-attr]
        "full range, whole frame": lambda i, rgb: full.detect(rgb),
        "full range, tiled": lambda i, rgb: TiledDetector(full).detect(rgb),
        "auto (participant camera)": lambda i, rgb: choice.detect(i / 4, rgb),
    }
    bins = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(WIDTH_BINS)]
    table = Table(
        title=f"{len(scenes)} generated 640x360 scenes, {sum(len(s.faces) for s in scenes)} faces; "
        f"min_score {args.min_score}; recall per face width (px)",
        caption="IoU >= 0.3; ms: mean wall time per frame, 1 thread",
    )
    for col in ("detector", *bins, ">= 24", "precision", "ms/frame"):
        table.add_column(col, justify="left" if col == "detector" else "right")
    for name, detect in cases.items():
        found, t0 = [], time.perf_counter()
        for i, sc in enumerate(scenes):
            found.append([d.box for d in detect(i, sc.rgb)])
        ms = 1000 * (time.perf_counter() - t0) / len(scenes)
        t = tally(scenes, found)
        per_bin = [f"{f / n:.2f}" if n else "-" for f, n in zip(t.found, t.total, strict=True)]
        table.add_row(name, *per_bin, f"{t.recall(24):.3f}", f"{t.precision:.3f}", f"{ms:.1f}")
    Console(width=150).print(table)
    per_bin = dict(zip(bins, t.total, strict=True))
    print(f"faces per bin: {per_bin}; auto: {choice.switches} switch(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
