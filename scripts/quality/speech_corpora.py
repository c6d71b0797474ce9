"""The speech the voice section measures: synthesised lines, Debian's pocketsphinx test recordings,
and the timeline of utterances over a noise floor that the VAD is run on."""

from __future__ import annotations

import re
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .speech_scoring import speech_span

DEFAULT_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
TESTDATA_HINT = (
    "apt-get install pocketsphinx-testdata (Debian/Ubuntu), or without root: "
    "apt-get download pocketsphinx-testdata && dpkg -x pocketsphinx-testdata_*.deb DIR, then "
    "--testdata DIR/usr/share/pocketsphinx/test/data"
)

# Lines for the synthesised voices: the sample recording's script (rapport.samples.DEFAULT_SCRIPT)
# and a few more of the same register, no digits (so no number normalisation is needed).
EXTRA_LINES = (
    "Please send me the notes from the meeting before lunch.",
    "We should talk about the budget for the next quarter.",
    "I did not understand the last slide, could you explain it again.",
    "The new design looks clean and simple.",
    "Nobody told me that the deadline had moved.",
    "Let us take a short break and come back in ten minutes.",
)

NOISE_DBFS = -60.0
"""Level of the white noise laid under every timeline (a quiet room, not digital silence)."""


def script_lines() -> list[str]:
    """The sample recording's script, then EXTRA_LINES."""
    from rapport.samples import DEFAULT_SCRIPT

    return [t for _, t in DEFAULT_SCRIPT] + list(EXTRA_LINES)


@dataclass
class Clip:
    audio: NDArray[np.float32]
    """16 kHz mono."""
    text: str


@dataclass
class Corpus:
    name: str
    source: str
    clips: list[Clip]


def synth_corpus(voice: str, lines: Sequence[str]) -> Corpus:
    from rapport.frames import SAMPLE_RATE
    from rapport.samples import AUDIO_RATE, resample, speak

    clips = [Clip(resample(speak(voice, t)[0].copy(), AUDIO_RATE, SAMPLE_RATE), t) for t in lines]
    engine = voice.split(":")[0]
    return Corpus(voice, f"{engine} (rapport.samples.speak), {len(lines)} lines", clips)


def _read_wav(path: Path) -> NDArray[np.float32]:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != 16000 or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16 kHz 16-bit mono")
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0


def _transcriptions(path: Path) -> dict[str, str]:
    """pocketsphinx's .transcription format: "<s> words </s> (utterance-id)" per line."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(.*)\(([^)]+)\)\s*$", line.strip())
        if m:
            out[m.group(2).strip()] = m.group(1)
    return out


def deb_version(package: str) -> str | None:
    """The installed version of a Debian package, or None (not installed, or no dpkg)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def real_corpora(testdata: Path) -> list[Corpus]:
    """Debian's pocketsphinx-testdata: LibriVox read speech (Jane Austen, Sense and Sensibility)
    and the 'cards' utterances, each with its reference transcription."""
    return [
        _testdata_corpus(testdata / "librivox", "", "one reader"),
        _testdata_corpus(testdata / "cards", "cards.", "playing cards read out"),
    ]


def _testdata_corpus(folder: Path, prefix: str, what: str) -> Corpus:
    """One folder of the test data: its `{prefix}fileids`, their .wav files and the
    `{prefix}transcription` of each."""
    refs = _transcriptions(folder / f"{prefix}transcription")
    ids = (folder / f"{prefix}fileids").read_text(encoding="utf-8").split()
    return Corpus(
        folder.name,
        f"{folder}/*.wav + {prefix}transcription ({len(ids)} utterances, {what})",
        [Clip(_read_wav(folder / f"{i}.wav"), refs[i]) for i in ids],
    )


def timeline(
    corpus: Corpus, rng: np.random.Generator
) -> tuple[NDArray[np.float32], list[tuple[float, float, int]]]:
    """The corpus's clips in a row with 0.8-1.6 s gaps over a noise floor; truth spans per clip."""
    rate = 16000
    pieces: list[NDArray[np.float32]] = [np.zeros(rate, np.float32)]
    spans = []
    t = 1.0
    for k, clip in enumerate(corpus.clips):
        s, e = speech_span(clip.audio, rate)
        spans.append((t + s, t + e, k))
        pieces.append(clip.audio)
        gap = float(rng.uniform(0.8, 1.6))
        pieces.append(np.zeros(round(gap * rate), np.float32))
        t += len(clip.audio) / rate + round(gap * rate) / rate
    audio = np.concatenate(pieces)
    audio += rng.normal(0.0, 10 ** (NOISE_DBFS / 20), len(audio)).astype(np.float32)
    return audio, spans
