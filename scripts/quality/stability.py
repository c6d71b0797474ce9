"""Section 4: how steady the smoothed expression is on faces that do not move."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from .markdown import table
from .run import Run, log
from .stats import flips, pct
from .still_scenes import DIM_GAIN, DIM_SIGMA, NOISE_SIGMA, StillScene, still_scenes


@dataclass
class FaceTrace:
    side_px: float
    smoothed: list[int] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    valence: list[float] = field(default_factory=list)


def run_still(run: Run, scene: StillScene, seconds: float, salt: int) -> list[FaceTrace]:
    """Feed the still scene with fresh noise per frame through the real FaceStream at the
    session's sample rate and smoothing; per true face, its smoothed and raw top class per frame."""
    from rapport.frames import Box, VideoFrame
    from rapport.perception.face_expression import ExpressionClassifier
    from rapport.perception.face_range import FaceDetectors
    from rapport.perception.face_stream import FaceStream

    s = run.settings
    detectors = FaceDetectors(run.models_dir, s.runtime, s.faces)
    classifier = ExpressionClassifier(run.models_dir, s.runtime)
    stream = FaceStream(detectors, classifier, s.faces, s.smoothing, owner=scene.owner)
    tracker, smoothers = getattr(stream, "_tracker", None), getattr(stream, "_smoothers", None)
    if tracker is None or smoothers is None:
        raise RuntimeError("FaceStream no longer has _tracker/_smoothers: update run_still")
    seen: dict[str, Any] = {}
    real_update = tracker.update

    def update(t: float, detections: Any) -> Any:
        seen["update"] = result = real_update(t, detections)
        return result

    tracker.update = update
    raw_out: dict[str, Any] = {}
    real_classify = classifier.classify

    def classify(rgb: Any, boxes: Any, stream: str = "") -> Any:
        raw_out["v"] = result = real_classify(rgb, boxes, stream)
        return result

    classifier.classify = classify  # type: ignore[method-assign]
    traces = [FaceTrace(math.sqrt((b[2] - b[0]) * (b[3] - b[1]))) for b in scene.faces]
    rng = run.gen(salt)
    fps = s.video.sample_fps
    base = scene.rgb.astype(np.float32)
    for i in range(round(seconds * fps)):
        noisy = np.clip(base + rng.normal(0.0, scene.sigma, base.shape), 0, 255)
        frame = VideoFrame("p", i / fps, np.ascontiguousarray(noisy.astype(np.uint8)))
        raw_out.clear()
        stream.process(frame)
        present = [(tid, d) for tid, d in seen["update"].slots if d is not None]
        raws = raw_out.get("v", [])
        for (tid, det), raw in zip(present, raws, strict=True):
            k, score = max(
                ((k, det.box.iou(Box(*t))) for k, t in enumerate(scene.faces)),
                key=lambda kv: kv[1],
            )
            cur = smoothers[tid].current
            if score < 0.3 or cur is None or raw is None:
                continue
            traces[k].smoothed.append(int(np.argmax(cur.probs)))
            traces[k].raw.append(int(np.argmax(raw.probs)))
            traces[k].valence.append(cur.valence)
    return traces


def stability_section(run: Run) -> str:
    from rapport.labels import EXPRESSIONS

    seconds = 30.0 if run.quick else 120.0
    fps = run.settings.video.sample_fps
    rows: list[list[object]] = []
    raw_total = smooth_total = 0
    minutes_total = 0.0
    for k, scene in enumerate(still_scenes()):
        log(f"stability: {scene.name}, {seconds:g} s at {fps:g} fps")
        for j, tr in enumerate(run_still(run, scene, seconds, 400 + k)):
            n = len(tr.smoothed)
            minutes = n / fps / 60
            face = f"{j + 1} ({scene.sources[j]})"
            if n == 0:
                rows.append([scene.name, face, f"{tr.side_px:.0f}", "0", "—", "—", "—", "—", "—"])
                continue
            pairs = Counter(
                " / ".join(sorted((EXPRESSIONS[a], EXPRESSIONS[b])))
                for a, b in pairwise(tr.raw)
                if a != b
            )
            raw_total += flips(tr.raw)
            smooth_total += flips(tr.smoothed)
            minutes_total += minutes
            top, count = Counter(tr.smoothed).most_common(1)[0]
            rows.append(
                [
                    scene.name,
                    face,
                    f"{tr.side_px:.0f}",
                    f"{n}",
                    f"{flips(tr.smoothed) / minutes:.1f}",
                    f"{flips(tr.raw) / minutes:.1f}",
                    ", ".join(p for p, _ in pairs.most_common(2)) or "—",
                    f"{EXPRESSIONS[top]} {count / n:.0%}",
                    f"{statistics.pstdev(tr.valence):.4f}",
                ]
            )
    tau = run.settings.smoothing.tau_s
    rates = sorted(float(str(r[4])) for r in rows if r[4] != "—")
    run.headlines.append(
        f"Stability on still faces ({len(rows)} faces, {len(rates)} tracked): smoothed top class "
        f"flips per minute median {pct(rates, 50):.1f}, worst {max(rates, default=math.nan):.1f}"
    )
    stab_table = table(
        [
            "scene",
            "face",
            "side px",
            "frames",
            "smoothed class flips / min",
            "raw class flips / min",
            "raw flips between",
            "smoothed top class (share)",
            "valence sd",
        ],
        rows,
    )
    return f"""## 4. Stability on still faces

Still frames of real faces, each repeated for {seconds:g} s at the session's {fps:g} frames per
second with fresh Gaussian sensor noise on every frame (sd {NOISE_SIGMA:g} levels of 255; the dim
frame is the first one with every level times {DIM_GAIN:g}, then noise of sd {DIM_SIGMA:g}), through
the real `FaceStream` with the shipped settings: `faces.detector`
{run.settings.faces.detector} (a participant's camera; the galleries as a shared room camera),
mini-Xception, per-face smoothing with time constant {tau:g} s. Nothing in the picture changes,
so every change of class is noise. Events never carry a per-face class (the smoother keeps
probabilities; windows use their valence and arousal), so "class" is the top class of the
smoothed probabilities, "raw" the classifier's own top class per frame, and the valence spread is
what the aggregates see. Frames: frames where the face was found and classified.

{stab_table}

Over all faces, the smoothing takes class changes from {raw_total / max(minutes_total, 1e-9):.1f}
to {smooth_total / max(minutes_total, 1e-9):.1f} per face-minute. A face whose two likeliest classes
are close flips on sensor noise alone; one far from a class boundary (the smiling astronaut)
never does. The classes themselves are the offline head's reading of a photograph: nobody
labelled these faces, so a "sad" or "angry" here is not known to be wrong or right.
"""
