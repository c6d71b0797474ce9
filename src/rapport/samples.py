"""Sample recordings for `rapport demo`, the benchmark and the tests.

A real face (Eileen Collins, from scikit-image's astronaut photograph) drifts and breathes in scale
over a soft background while a speech synthesiser (flite or espeak-ng) reads a short presentation
with a bad-news passage in the middle. Everything is deterministic given the arguments.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream
from numpy.typing import NDArray

from rapport.errors import RapportError
from rapport.frames import Box, Utterance

DEFAULT_SCRIPT: tuple[tuple[float, str], ...] = (
    (0.3, "Good morning everyone, thank you for joining."),
    (3.4, "I am excited to share our wonderful progress."),
    (6.6, "Sadly, the launch failed and we lost our biggest customer."),
    (10.4, "It was a terrible, painful week for the whole team."),
    (13.7, "But we fixed it, and the results are great."),
    (16.6, "Thank you, I am happy to take your questions."),
)
"""(start second, text): about 20 s, positive, with a negative passage from ~6.5 s to ~13 s."""

AUDIO_RATE = 48_000
_CROP = (slice(0, 250), slice(115, 325))  # head and shoulders in skimage.data.astronaut()
_FACE_IN_CROP = (62.0, 66.0, 157.0, 161.0)  # x0, y0, x1, y1 of the face inside _CROP
# For 3+ faces a tighter head crop keeps each face near 80 px at 640x360: the short-range face
# detector loses faces much under ~70 px.
_TIGHT_CROP = (slice(30, 200), slice(150, 300))
_FACE_IN_TIGHT_CROP = (27.0, 36.0, 122.0, 131.0)
_MP4_FAMILY = {".mp4", ".m4a", ".m4v", ".mov"}
_AUDIO_ONLY = {".wav", ".m4a"}


class SynthesisError(RapportError):
    """No speech synthesiser is installed, or it failed."""


@dataclass(frozen=True)
class Recording:
    path: Path
    transcript: Path | None
    duration_s: float
    fps: int
    size: tuple[int, int]
    """(width, height) of the video."""
    speech: tuple[Utterance, ...]
    """Each synthesised line where it really sounds (leading/trailing silence trimmed)."""
    faces: tuple[tuple[Box, ...], ...]
    """Ground-truth face boxes per encoded video frame; () for a frame inside face_gap."""


def make_recording(
    path: Path,
    *,
    duration_s: float = 20.0,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    faces: int = 1,
    face_gap: tuple[float, float] | None = None,
    speech: Sequence[tuple[float, str]] = DEFAULT_SCRIPT,
    voice: str = "flite",
    with_audio: bool = True,
    with_video: bool = True,
    transcript: Path | None = None,
    speaker: str = "presenter",
    faststart: bool = True,
) -> Recording:
    """Write a recording to `path` (container from its suffix: .mp4, .m4a, .wav, .mkv, ...).

    `voice` is "flite" or "espeak-ng", optionally with a voice name: "flite:awb", "espeak-ng:en-us".
    `faststart=False` leaves the mp4 index at the end of the file, as many recorders do.
    """
    width, height = size
    if duration_s <= 0 or fps <= 0 or faces < 0 or width % 2 or height % 2:
        raise ValueError("need duration_s > 0, fps > 0, faces >= 0 and an even width and height")
    if not (with_audio or with_video):
        raise ValueError("a recording needs audio, video or both")
    if with_video and path.suffix in _AUDIO_ONLY:
        raise ValueError(f"a {path.suffix} file holds audio only: pass with_video=False")
    n_audio = round(duration_s * AUDIO_RATE)
    lines = _place_speech(speech, voice, n_audio) if (with_audio or transcript) and speech else []
    track = np.zeros(n_audio, np.float32)
    for start, clip, _ in lines:
        track[start : start + len(clip)] += clip[: n_audio - start]
    np.clip(track, -1.0, 1.0, out=track)
    utterances = tuple(
        Utterance(speaker, start / AUDIO_RATE, (start + len(clip)) / AUDIO_RATE, text)
        for start, clip, text in lines
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart and path.suffix in _MP4_FAMILY else {}
    boxes: list[tuple[Box, ...]] = []
    with av.open(str(path), "w", options=options) as out:
        aus = _audio_stream(out, path.suffix) if with_audio else None
        audio = _AudioWriter(out, aus, track) if aus is not None else None
        if with_video:
            layout = FaceLayout(width, height, faces)
            vs = _video_stream(out, width, height, fps)
            for i in range(round(duration_s * fps)):
                t = i / fps
                hidden = face_gap is not None and face_gap[0] <= t < face_gap[1]
                rgb, frame_boxes = layout.render(t, hidden)
                boxes.append(frame_boxes)
                yuv = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8)
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                frame.pts = i
                out.mux(vs.encode(frame))
                if audio is not None:  # keep the two streams interleaved in the file
                    audio.write_until(round((i + 1) / fps * AUDIO_RATE))
            out.mux(vs.encode(None))
        if audio is not None:
            audio.write_until(n_audio)
            audio.close()

    if transcript is not None:
        _write_vtt(transcript, utterances)
    return Recording(path, transcript, duration_s, fps, size, utterances, tuple(boxes))


# --- video -------------------------------------------------------------------------------------


class FaceLayout:
    """Places `n` copies of the head in a grid and moves each on its own slow sinusoidal path."""

    def __init__(self, width: int, height: int, n: int) -> None:
        self.width, self.height = width, height
        tight = n >= 3
        crop = _head(tight)
        self.face_in_crop = _FACE_IN_TIGHT_CROP if tight else _FACE_IN_CROP
        ch, cw = crop.shape[:2]
        mask = np.zeros((ch, cw), np.float32)
        cv2.ellipse(mask, (cw // 2, ch // 2), (int(cw * 0.48), int(ch * 0.5)), 0, 0, 360, 255.0, -1)
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=cw * 0.04), np.float32)
        self.head, self.mask = crop, mask / 255.0
        self.background = _background(width, height)
        self.cells: list[tuple[float, float, float]] = []  # centre x, centre y, base scale
        if n:
            rows, cols, scale = max(
                (
                    (r, math.ceil(n / r), min(width / math.ceil(n / r) / cw, height / r / ch))
                    for r in range(1, n + 1)
                ),
                key=lambda rcs: rcs[2],
            )
            scale *= 0.86  # room to move and grow inside the cell
            cell_w, cell_h = width / cols, height / rows
            for k in range(n):
                r, c = divmod(k, cols)
                self.cells.append(((c + 0.5) * cell_w, (r + 0.5) * cell_h, scale))
            self.amp = (0.05 * cell_w, 0.04 * cell_h)

    def render(self, t: float, hidden: bool) -> tuple[NDArray[np.uint8], tuple[Box, ...]]:
        frame = self.background.copy()
        if hidden:
            return frame, ()
        boxes = []
        for k, (cx, cy, base) in enumerate(self.cells):
            ph = 1.7 * k
            s = base * (1.0 + 0.08 * math.sin(2 * math.pi * t / 9.0 + ph))
            x = cx + self.amp[0] * math.sin(2 * math.pi * t / 7.0 + ph)
            y = cy + self.amp[1] * math.sin(2 * math.pi * t / 5.0 + 1.3 * ph)
            boxes.append(self._paste(frame, x, y, s))
        return frame, tuple(boxes)

    def _paste(self, frame: NDArray[np.uint8], cx: float, cy: float, s: float) -> Box:
        ch, cw = self.head.shape[:2]
        h, w = round(ch * s), round(cw * s)
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + w, self.width), min(y0 + h, self.height)
        if fx1 > fx0 and fy1 > fy0:
            inside = slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)
            head = cv2.resize(self.head, (w, h), interpolation=cv2.INTER_LINEAR)[inside]
            alpha = cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_LINEAR)[inside]
            region = frame[fy0:fy1, fx0:fx1]
            region[:] = cv2.blendLinear(
                np.ascontiguousarray(head), region, np.ascontiguousarray(alpha), 1.0 - alpha
            )
        sx, sy = w / cw, h / ch
        b = self.face_in_crop
        return Box(x0 + b[0] * sx, y0 + b[1] * sy, x0 + b[2] * sx, y0 + b[3] * sy)


@functools.cache
def _head(tight: bool = False) -> NDArray[np.uint8]:
    from skimage import data  # heavy import, only when drawing

    photo = data.astronaut()  # type: ignore[no-untyped-call]
    crop = np.ascontiguousarray(np.asarray(photo, np.uint8)[_TIGHT_CROP if tight else _CROP])
    crop.flags.writeable = False
    return crop


def _background(width: int, height: int) -> NDArray[np.uint8]:
    """A soft diagonal gradient, cool to warm, with mild fixed noise (seeded)."""
    gx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    gy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    g = 0.6 * gx + 0.4 * gy
    cool, warm = np.array([120, 140, 170], np.float32), np.array([200, 185, 160], np.float32)
    img = cool + g * (warm - cool)
    noise = np.random.default_rng(20240607).normal(0.0, 3.0, img.shape).astype(np.float32)
    out: NDArray[np.uint8] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return out


def _video_stream(out: OutputContainer, width: int, height: int, fps: int) -> VideoStream:
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    vs.time_base = Fraction(1, fps)
    # Fixed thread count: x264 output depends on it, and we promise the same bytes every time.
    vs.options = {"preset": "veryfast", "crf": "23", "threads": "2"}
    return vs


# --- audio -------------------------------------------------------------------------------------


def _audio_stream(out: OutputContainer, suffix: str) -> AudioStream:
    if suffix == ".wav":
        return out.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
    aus = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    aus.bit_rate = 96_000
    return aus


class _AudioWriter:
    """Feeds a mono float track to an audio stream, piece by piece."""

    def __init__(self, out: OutputContainer, stream: AudioStream, track: NDArray[np.float32]):
        self.out, self.stream, self.track, self.done = out, stream, track, 0
        self.pcm16 = stream.codec_context.name == "pcm_s16le"

    def write_until(self, end: int) -> None:
        end = min(end, len(self.track))
        if end <= self.done:
            return
        piece = self.track[self.done : end]
        if self.pcm16:
            pcm = np.ascontiguousarray((piece * 32767.0).astype(np.int16)[None, :])
            frame = av.AudioFrame.from_ndarray(pcm, "s16", "mono")
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece[None, :]), "fltp", "mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, self.done
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.out.mux(self.stream.encode(frame))
        self.done = end

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))


def _place_speech(
    script: Sequence[tuple[float, str]], voice: str, n_audio: int
) -> list[tuple[int, NDArray[np.float32], str]]:
    """(first sample, clip at AUDIO_RATE, text) per line that starts inside the recording."""
    placed = []
    with ThreadPoolExecutor(max_workers=4) as pool:  # one synthesiser process per line
        clips = list(pool.map(lambda text: speak(voice, text), [text for _, text in script]))
    for (start_s, text), (clip, lead) in zip(script, clips, strict=True):
        start = round(start_s * AUDIO_RATE) + lead
        if start >= n_audio:
            continue
        placed.append((start, clip[: n_audio - start], text))
    return placed


@functools.lru_cache(maxsize=64)
def speak(voice: str, text: str) -> tuple[NDArray[np.float32], int]:
    """Synthesise `text`; returns the clip trimmed of silence and the silence it started with."""
    engine, _, name = voice.partition(":")
    raw, rate = _synthesise(engine, name, text)
    clip = resample(raw, rate, AUDIO_RATE)
    env = np.abs(clip)
    loud = np.flatnonzero(env > 0.02 * float(env.max(initial=0.0)))
    if not len(loud):
        raise SynthesisError(f"{engine} produced no sound for {text!r}")
    pad = AUDIO_RATE // 100
    a, b = max(0, int(loud[0]) - pad), min(len(clip), int(loud[-1]) + pad)
    out = clip[a:b].copy()
    out.flags.writeable = False
    return out, a


def _synthesise(engine: str, name: str, text: str) -> tuple[NDArray[np.float32], int]:
    engines = ("flite", "espeak-ng")
    if engine not in engines:
        raise ValueError(f"unknown voice engine {engine!r}; use flite or espeak-ng")
    if shutil.which(engine) is None:  # fall back to the other engine, with its default voice
        engine, name = next((e for e in engines if shutil.which(e)), ""), ""
        if not engine:
            raise SynthesisError(
                "sample speech needs flite or espeak-ng: install them "
                "(apt-get install flite espeak-ng) or run the set-up script"
            )
    with tempfile.TemporaryDirectory(prefix="rapport-tts-") as tmp:
        wav = Path(tmp) / "line.wav"
        if engine == "flite":
            cmd = ["flite", "-voice", name or "slt", "-t", text, "-o", str(wav)]
        else:
            cmd = ["espeak-ng", "-v", name or "en-us", "-w", str(wav), "--", text]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            with wave.open(str(wav), "rb") as w:
                rate, width = w.getframerate(), w.getsampwidth()
                pcm = w.readframes(w.getnframes())
        except (OSError, subprocess.SubprocessError, wave.Error) as e:
            raise SynthesisError(f"{engine} failed on {text!r}: {e}".splitlines()[0]) from e
    if width != 2:
        raise SynthesisError(f"{engine} wrote {8 * width}-bit audio; expected 16-bit")
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0, rate


def resample(x: NDArray[np.float32], src: int, dst: int) -> NDArray[np.float32]:
    """Band-limited resampling through FFmpeg's swresample."""
    if src == dst:
        return x
    frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
    frame.sample_rate = src
    rs = av.AudioResampler(format="fltp", layout="mono", rate=dst)
    parts = [f.to_ndarray()[0] for f in [*rs.resample(frame), *rs.resample(None)]]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _write_vtt(path: Path, utterances: Sequence[Utterance]) -> None:
    def ts(t: float) -> str:
        ms = round(t * 1000)
        return (
            f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        )

    cues = [
        f"{i}\n{ts(u.start)} --> {ts(u.end)}\n<v {u.participant}>{u.text}"
        for i, u in enumerate(utterances, 1)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("WEBVTT\n\n" + "\n\n".join(cues) + "\n", encoding="utf-8")
