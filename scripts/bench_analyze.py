#!/usr/bin/env python3
"""Real-time factor and peak memory of `rapport analyze` on generated 640x360 recordings.

    .venv/bin/python scripts/bench_analyze.py [--duration 60] [--faces 1 4] [--fps 4]

Each case runs in its own process so peak RSS is its own. Speech-to-text is measured separately
(its own real-time factor), since a transcript is given to the analysis cases.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _one(recording: Path, transcript: Path, fps: float, out_dir: Path) -> dict[str, float]:
    from rapport.analyze import analyze
    from rapport.config import load_settings
    from rapport.pack import OfflinePack
    from rapport.taps.file import probe

    os.environ["RAPPORT_VIDEO__SAMPLE_FPS"] = str(fps)
    settings = load_settings()
    pack = OfflinePack(settings)
    duration = probe(recording).duration_s
    t0 = time.perf_counter()
    result = analyze(
        recording,
        settings=settings,
        pack=pack,
        out=out_dir / "events.jsonl",
        summary_path=None,
        transcript=transcript,
        stt=False,
    )
    wall = time.perf_counter() - t0
    return {
        "media_s": duration,
        "wall_s": wall,
        "rtf": duration / wall,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "faces_per_frame": result.counts["faces"] / max(1, result.counts["frames"]),
        "events": result.events,
    }


def _stt(recording: Path, speech: list[tuple[float, float]]) -> dict[str, float]:
    """Speech-to-text over the recording's spoken lines only (silence is never decoded)."""
    import numpy as np

    from rapport.frames import SAMPLE_RATE, AudioChunk
    from rapport.perception.speech_to_text import SpeechToText
    from rapport.taps.file import read_recording

    audio = np.concatenate(
        [
            item.samples
            for item in read_recording(recording, participant="p", sample_fps=1, max_side=64)
            if isinstance(item, AudioChunk)
        ]
    )
    stt = SpeechToText()
    t0 = time.perf_counter()
    for start, end in speech:
        stt.transcribe("p", start, audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)])
    wall = time.perf_counter() - t0
    spoken = sum(e - s for s, e in speech)
    return {"media_s": spoken, "wall_s": wall, "rtf": spoken / wall}


def _detectors(frames: int = 40) -> list[tuple[str, dict[str, float]]]:
    """Face detection alone, per 640x360 frame (generated scenes of 3-8 faces, 20-120 px):
    short range, full range (whole frame, tiled) and auto on a participant's camera."""
    from rapport.config import FaceSettings, RuntimeSettings, load_settings
    from rapport.perception.face_detection import FULL_RANGE, FaceDetector
    from rapport.perception.face_range import FaceDetectors, TiledDetector
    from rapport.scenes import evaluation_set

    models, runtime = load_settings().models_dir, RuntimeSettings()
    scenes = evaluation_set(frames)[:frames]
    both = FaceDetectors(models, runtime, FaceSettings(detector="auto"))
    full = FaceDetector(models, runtime, FaceSettings(), FULL_RANGE)
    auto = both.for_stream("participant")
    cases = {
        "face detection: short range": lambda i, rgb: both.short.detect(rgb),  # type: ignore
        "face detection: full range": lambda i, rgb: full.detect(rgb),
        "face detection: full, 4x2 tiles": lambda i, rgb: TiledDetector(full).detect(rgb),
        "face detection: auto": lambda i, rgb: auto.detect(i / 4, rgb),
    }
    rows = []
    for name, detect in cases.items():
        t0 = time.perf_counter()
        faces = sum(len(detect(i, s.rgb)) for i, s in enumerate(scenes))
        wall = time.perf_counter() - t0
        ms = f"{1000 * wall / len(scenes):.1f} ms/frame"
        media = len(scenes) / 4  # as if sampled at 4 fps
        row = {"media_s": media, "wall_s": wall, "rtf": media / wall}
        rows.append((f"{name} ({ms})", {**row, "faces_per_frame": faces / len(scenes)}))
    return rows


def _synchrony(participants: tuple[int, ...] = (2, 8, 32)) -> Table:
    """One synchrony.window's CRQA (crqa_pairs) with the live defaults: 60 s at 4 samples/s."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_synchrony import bench_synchrony

    from rapport.analytics.crqa import RqaParams
    from rapport.config import SynchronySettings

    s, fps = SynchronySettings(), 4.0
    params = RqaParams(
        embedding=s.embedding,
        delay=round(s.delay_s * fps),
        radius=s.radius,
        theiler=s.theiler,
        min_line=s.min_line,
    )
    samples, max_lag = round(s.window_s * fps), round(s.max_lag_s * fps)
    table = Table(title=f"synchrony.window: CRQA of every pair over {samples} samples, per window")
    for col in ("participants", "pairs", "p50 ms", "p95 ms", "share of a 5 s window"):
        table.add_column(col, justify="right")
    for r in bench_synchrony(participants, samples, max_lag, 10, params):
        ms = (f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}")
        table.add_row(str(r.participants), str(r.pairs), *ms, f"{r.p50_ms / 5000:.1%}")
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--fps", type=float, default=4.0)
    ap.add_argument(
        "--one", nargs=3, metavar=("RECORDING", "TRANSCRIPT", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.one:
        rec, tr, out = (Path(p) for p in args.one)
        print(json.dumps(_one(rec, tr, args.fps, out)))
        return 0

    from rapport.samples import DEFAULT_SCRIPT, make_recording

    # The 20 s script, repeated to fill the recording, so speech runs throughout.
    script = [
        (offset + t, line)
        for offset in range(0, int(args.duration) - 19, 20)
        for t, line in DEFAULT_SCRIPT
    ]

    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in args.faces:
            console.print(f"generating {args.duration:.0f} s 640x360 recording with {n} face(s)...")
            rec = make_recording(
                d / f"faces{n}.mp4",
                duration_s=args.duration,
                faces=n,
                transcript=d / f"faces{n}.vtt",
                speech=script,
            )
            speech = [(u.start, u.end) for u in rec.speech]
            assert rec.transcript is not None
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--fps",
                    str(args.fps),
                    "--one",
                    str(rec.path),
                    str(rec.transcript),
                    str(d),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append((f"analyze, {n} face(s)", json.loads(res.stdout)))
        rows.append(("speech-to-text alone", _stt(rec.path, speech)))
    rows += _detectors()

    table = Table(
        title=f"640x360 25 fps, {args.fps:g} fps sampled, transcript given; {os.cpu_count()} CPUs",
        caption="speech-to-text: pocketsphinx on the spoken lines only (media s = speech s)",
    )
    for col in ("case", "media s", "wall s", "x real time", "peak MiB", "faces/frame"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, r in rows:
        table.add_row(
            name,
            f"{r['media_s']:.1f}",
            f"{r['wall_s']:.2f}",
            f"{r['rtf']:.1f}",
            f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-",
            f"{r['faces_per_frame']:.2f}" if "faces_per_frame" in r else "-",
        )
    console.print(table)
    console.print(_synchrony())
    return 0


if __name__ == "__main__":
    sys.exit(main())
