"""Pre-encoded media for the load publisher (tools/loadpub): the sample recording encoded once.

The Go load publisher sends files as-is, so the encoding is paid here, once per set of
parameters: a generated recording (rapport.samples: a real face, synthesised speech) is encoded
to VP8 IVF at three simulcast sizes (LOW, MEDIUM, HIGH = the camera size / 4, / 2, / 1, as
LiveKit's presets for a 1280x720 camera give 320x180 and 640x360) and to Ogg Opus (48 kHz mono).
The files are cached under build/loadpub-media/<key>/, where the key hashes the parameters and the
source of this module and rapport.samples (the recording is deterministic given both), so a rerun
with the same parameters costs nothing.

Constraints of sending files as-is: the publisher cannot answer a keyframe request, so the SFU
can start forwarding a layer to a new subscriber only at the next keyframe in the file;
`keyframe_s` bounds that wait. Every layer starts with a keyframe, so a loop restart is clean.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.resampler import AudioResampler

from rapport import samples
from rapport.samples import DEFAULT_SCRIPT, make_recording

_REPO = Path(__file__).resolve().parents[3]
DEFAULT_CACHE = _REPO / "build" / "loadpub-media"
LAYER_FILES = ("low.ivf", "medium.ivf", "high.ivf")
AUDIO_FILE = "audio.ogg"
SILENCE_FILE = "silence.ogg"
"""One second of silence, what a microphone sends between its turns (loadpub --turn)."""
OPUS_RATE = 48_000
_FORMAT = 2  # bump when the encoding below changes in a way the parameters do not show


@dataclass(frozen=True)
class PreEncoded:
    """A folder with low.ivf, medium.ivf, high.ivf (VP8), audio.ogg and silence.ogg (Opus)."""

    folder: Path
    sizes: tuple[tuple[int, int], ...]  # (width, height) of LOW, MEDIUM, HIGH
    fps: int
    duration_s: float

    @property
    def audio(self) -> Path:
        return self.folder / AUDIO_FILE

    @property
    def silence(self) -> Path:
        return self.folder / SILENCE_FILE

    def layer(self, index: int) -> Path:
        return self.folder / LAYER_FILES[index]


def layer_sizes(size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """LOW, MEDIUM, HIGH for a camera of `size`: / 4, / 2, / 1, rounded down to even numbers."""
    w, h = size
    return tuple((w // d // 2 * 2, h // d // 2 * 2) for d in (4, 2, 1))


def preencoded_media(
    *,
    size: tuple[int, int] = (1280, 720),
    fps: int = 10,
    duration_s: float = 12.0,
    speech: Sequence[tuple[float, str]] | None = None,
    keyframe_s: float = 1.0,
    bitrates: tuple[int, int, int] = (150_000, 400_000, 1_200_000),
    cache: Path = DEFAULT_CACHE,
) -> PreEncoded:
    """The encoded files for these parameters, from the cache or encoded now (a few seconds).

    `speech` defaults to the lines of DEFAULT_SCRIPT that end within the clip (none for silence:
    pass ()). `bitrates` are LOW, MEDIUM, HIGH in bit/s (near LiveKit's defaults for 30 fps)."""
    if speech is None:
        speech = [(t, line) for t, line in DEFAULT_SCRIPT if t + 4.0 < duration_s]
    sizes = layer_sizes(size)
    if min(min(s) for s in sizes) < 16 or fps <= 0 or duration_s <= 0 or keyframe_s <= 0:
        raise ValueError("need a camera of at least 64x64, fps > 0, duration_s > 0, keyframe_s > 0")
    params = {
        "format": _FORMAT,
        "sizes": sizes,
        "fps": fps,
        "duration_s": duration_s,
        "speech": [list(x) for x in speech],
        "keyframe_s": keyframe_s,
        "bitrates": bitrates,
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for module in (samples.__file__, __file__):
        digest.update(Path(module).read_bytes())
    folder = cache / digest.hexdigest()[:16]
    result = PreEncoded(folder, sizes, fps, duration_s)
    if all((folder / name).is_file() for name in (*LAYER_FILES, AUDIO_FILE, SILENCE_FILE)):
        return result
    cache.mkdir(parents=True, exist_ok=True)
    # Encode into a temp folder beside the cache, then rename: a reader never sees half a set.
    work = Path(tempfile.mkdtemp(prefix=".encoding-", dir=cache))
    try:
        rec = make_recording(
            work / "source.mkv", duration_s=duration_s, size=size, fps=fps, speech=speech
        )
        _encode_video(rec.path, work, sizes, fps, max(1, round(keyframe_s * fps)), bitrates)
        _encode_audio(rec.path, work / AUDIO_FILE)
        _encode_silence(work / SILENCE_FILE)
        (work / "source.mkv").unlink()
        (work / "params.json").write_text(json.dumps(params, indent=1))
        try:
            work.rename(folder)
        except OSError:  # another process finished the same set first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _encode_video(
    source: Path,
    out_dir: Path,
    sizes: tuple[tuple[int, int], ...],
    fps: int,
    gop: int,
    bitrates: tuple[int, int, int],
) -> None:
    outs = [av.open(str(out_dir / name), "w", format="ivf") for name in LAYER_FILES]
    try:
        streams = []
        for out, (w, h), rate in zip(outs, sizes, bitrates, strict=True):
            # No alt-ref frames and no lag: every packet is one shown frame, in order, as a
            # real-time encoder would send it.
            s = out.add_stream(
                "libvpx",
                rate=fps,
                options={
                    "deadline": "good",
                    "cpu-used": "4",
                    "auto-alt-ref": "0",
                    "lag-in-frames": "0",
                },
            )
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.bit_rate, s.gop_size = rate, gop
            s.codec_context.time_base = Fraction(1, fps)
            streams.append(s)
        with av.open(str(source)) as src:
            for i, frame in enumerate(src.decode(video=0)):
                for out, s, (w, h) in zip(outs, streams, sizes, strict=True):
                    layer = frame.reformat(width=w, height=h, format="yuv420p")
                    layer.pts, layer.time_base = i, Fraction(1, fps)
                    out.mux(s.encode(layer))
        for out, s in zip(outs, streams, strict=True):
            out.mux(s.encode(None))
    finally:
        for out in outs:
            out.close()


def _encode_audio(source: Path, path: Path) -> None:
    with av.open(str(source)) as src, av.open(str(path), "w", format="ogg") as out:
        s = out.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        s.bit_rate = 32_000
        resampler = AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        for frame in src.decode(audio=0):
            for chunk in resampler.resample(frame):
                out.mux(s.encode(chunk))
        for chunk in resampler.resample(None):
            out.mux(s.encode(chunk))
        out.mux(s.encode(None))


def _encode_silence(path: Path, seconds: float = 1.0) -> None:
    with av.open(str(path), "w", format="ogg") as out:
        s = out.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        s.bit_rate = 32_000
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, round(seconds * OPUS_RATE)), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_RATE
        out.mux(s.encode(frame))
        out.mux(s.encode(None))


def _check(pre: PreEncoded) -> dict[str, object]:
    """Frame counts and sizes as decoded back (for a quick look: python -m ...preencoded)."""
    info: dict[str, object] = {}
    for i, name in enumerate(LAYER_FILES):
        with av.open(str(pre.layer(i))) as c:
            frames = list(c.decode(video=0))
            info[name] = (len(frames), frames[0].width, frames[0].height)
    with av.open(str(pre.audio)) as c:
        pcm = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        info[AUDIO_FILE] = round(len(pcm) / OPUS_RATE, 2)
    with av.open(str(pre.silence)) as c:
        pcm = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        info[SILENCE_FILE] = (round(len(pcm) / OPUS_RATE, 2), float(np.abs(pcm).max()))
    return info


if __name__ == "__main__":
    media = preencoded_media()
    print(media.folder, _check(media))
