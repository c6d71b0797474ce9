"""Section 5: milliseconds per call of each head on this machine, and what the machine is."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .markdown import ms, table
from .run import Run, log
from .speech_corpora import synth_corpus
from .stats import pct
from .still_scenes import still_scenes


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime as ort

    gpu = "no GPU" if "CUDAExecutionProvider" not in ort.get_available_providers() else "CUDA"
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, {gpu}; {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, ONNX Runtime {ort.__version__} "
        f"(providers: {', '.join(ort.get_available_providers())})"
    )


def timed(fn: Callable[[], object], n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def latency_section(run: Run, extra_detectors: dict[str, Any] | None = None) -> str:
    from rapport.frames import Box, Utterance
    from rapport.perception import prosody
    from rapport.perception.face_expression import ExpressionClassifier
    from rapport.perception.faces import FaceDetector
    from rapport.perception.language import TextSentiment
    from rapport.perception.speech_to_text import SpeechToText
    from rapport.perception.vad import WINDOW, SileroVad

    s = run.settings
    n = 40 if run.quick else 200
    rows: list[list[object]] = []

    def add(head: str, unit: str, values: list[float], per: float = 1.0) -> None:
        v = [x / per for x in values]
        rows.append([head, unit, len(values), ms(pct(v, 50)), ms(pct(v, 95))])

    stills = still_scenes()
    one, gallery = stills[0], stills[-1]
    detectors: dict[str, Any] = {"short-range": FaceDetector(run.models_dir, s.runtime, s.faces)}
    detectors.update(extra_detectors or {})
    for name, det in detectors.items():
        log(f"latency: face detection ({name})")
        add(
            f"face detection, {name}",
            "frame 640x360, 1 face",
            timed(lambda d=det: d.detect(one.rgb), n),
        )
        add(
            f"face detection, {name}",
            f"frame 640x360, {len(gallery.faces)} faces",
            timed(lambda d=det: d.detect(gallery.rgb), n),
        )
    log("latency: expression, VAD, prosody, text, STT")
    expr = ExpressionClassifier(run.models_dir, s.runtime)
    b1 = [Box(*one.faces[0])]
    b4 = [Box(*f) for f in gallery.faces]
    add(
        "face expression (mini-Xception)",
        "face (1 per call)",
        timed(lambda: expr.classify(one.rgb, b1), n),
    )
    add(
        "face expression (mini-Xception)",
        f"face ({len(b4)} per call)",
        timed(lambda: expr.classify(gallery.rgb, b4), n),
        per=len(b4),
    )

    vad = SileroVad.load(run.models_dir, s.runtime)
    rng = run.gen(500)
    chunk = (rng.normal(0, 0.05, WINDOW)).astype(np.float32)
    add("voice activity (Silero VAD)", "32 ms window", timed(lambda: vad.probs(chunk), n * 5))

    from rapport.samples import DEFAULT_SCRIPT

    clips = synth_corpus("flite:slt", [t for _, t in DEFAULT_SCRIPT]).clips
    seg = clips[1].audio
    secs = len(seg) / 16000
    add(
        "prosody (Praat pitch + level)",
        f"segment of {secs:.1f} s",
        timed(lambda: prosody.measure(seg), max(10, n // 4)),
    )
    text = TextSentiment()
    utts = [Utterance("p", 0, 1, t) for _, t in DEFAULT_SCRIPT]
    add(
        "text sentiment (VADER)",
        "utterance",
        timed(lambda: [text.score(u) for u in utts], n),
        per=len(utts),
    )
    stt = SpeechToText()
    per_s = []
    for _ in range(1 if run.quick else 3):
        for c in clips:
            t0 = time.perf_counter()
            stt.transcribe("p", 0.0, c.audio)
            per_s.append((time.perf_counter() - t0) * 1000 / (len(c.audio) / 16000))
    rows.append(
        [
            "speech-to-text (pocketsphinx)",
            "second of speech",
            len(per_s),
            ms(pct(per_s, 50)),
            ms(pct(per_s, 95)),
        ]
    )
    short_ms, tiled_ms = rows[0][3], rows[2 * (len(detectors) - 1)][3]
    run.headlines.append(
        f"Latency (median ms): face detection per 640x360 frame {short_ms} short range, "
        f"{tiled_ms} full range tiled; expression {rows[2 * len(detectors)][3]} per face; "
        f"VAD {rows[2 * len(detectors) + 2][3]} per 32 ms; speech-to-text {rows[-1][3]} per "
        "second of speech"
    )
    return f"""## 5. Latency per head

Milliseconds per call on this machine: {machine()}. One thread per ONNX Runtime session
(`runtime.intra_op_threads` = {s.runtime.intra_op_threads}, the default), one call at a time, after
3 warm-up calls; the median and 95th percentile of the timed calls. Frames are the still scenes of
section 4; the VAD window is noise; prosody and speech-to-text run on flite lines of the sample
script. These are single-stream costs: a session runs faces, voice and text on separate threads,
and the transformer heads (not installed here) batch across streams.

{table(["head", "per", "calls", "median ms", "p95 ms"], rows)}
"""
