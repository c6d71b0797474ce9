"""SpeechToText (pocketsphinx en-us) on speech synthesised with flite."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from rapport.frames import SAMPLE_RATE
from rapport.perception.speech_to_text import SpeechToText

REFERENCE = "hello world this is a test of the speech recognizer"


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference's length."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


def flite(text: str, out: Path) -> NDArray[np.float32]:
    subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", str(out)], check=True)
    with wave.open(str(out)) as w:
        assert w.getframerate() == SAMPLE_RATE
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def stt() -> SpeechToText:
    return SpeechToText()


def test_wer_counts_substitutions_insertions_and_deletions():
    assert wer("a b c", "a b c") == 0.0
    assert wer("a b c", "a x c d") == pytest.approx(2 / 3)
    assert wer("a b c d", "b c") == pytest.approx(2 / 4)
    assert wer("a b", "") == 1.0


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt)")
def test_synthesised_sentence_is_recognised(stt: SpeechToText, tmp_path: Path):
    samples = flite(REFERENCE, tmp_path / "s.wav")
    utt = stt.transcribe("p1", 12.5, samples)
    assert utt is not None
    assert wer(REFERENCE, utt.text) <= 0.35, utt.text
    assert utt.participant == "p1"
    assert utt.start == 12.5
    assert utt.end == pytest.approx(12.5 + len(samples) / SAMPLE_RATE)
    assert "<" not in utt.text and "[" not in utt.text and "(" not in utt.text
    assert stt.name == "pocketsphinx-en-us"


def test_silence_and_quiet_noise_give_none(stt: SpeechToText):
    rng = np.random.default_rng(5)
    assert stt.transcribe("p1", 0.0, np.zeros(2 * SAMPLE_RATE, np.float32)) is None
    assert stt.transcribe("p1", 0.0, np.zeros(0, np.float32)) is None
    for level in (0.002, 0.03):  # below the level gate; above it, for the decoder to reject
        hiss = rng.normal(0.0, level, 2 * SAMPLE_RATE).astype(np.float32)
        assert stt.transcribe("p1", 0.0, hiss) is None


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt)")
def test_each_session_thread_has_its_own_decoder(models_dir: Path, tmp_path: Path):
    # Issue 10 (4): one pocketsphinx decoder (not thread-safe) was shared by every session thread.
    import threading

    from rapport.config import Settings
    from rapport.pack import OfflinePack

    pack = OfflinePack(Settings(models_dir=models_dir))
    samples = flite(REFERENCE, tmp_path / "s.wav")
    alone = pack.speech_to_text().transcribe("p", 0.0, samples)
    assert alone is not None
    start = threading.Barrier(3)
    results: list[tuple[int, list[str]]] = []

    def session_thread() -> None:
        stt = pack.speech_to_text()
        assert pack.speech_to_text() is stt  # one decoder per thread, loaded once
        start.wait(10)  # the three decode at the same time
        texts = []
        for _ in range(3):
            utt = stt.transcribe("p", 0.0, samples)
            texts.append(utt.text if utt else "")
        results.append((id(stt), texts))

    threads = [threading.Thread(target=session_thread) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3
    assert len({decoder for decoder, _ in results}) == 3
    assert all(texts == [alone.text] * 3 for _, texts in results)
