"""The full pack's heads on tiny exported models: the same result alone or in a padded batch
shared with other streams, labels mapped into the fusion's space, ONNX and torch backends alike."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from rapport.config import EngineSettings
from rapport.frames import Box, Utterance
from rapport.inference.engine import place
from rapport.inference.heads import load_head
from rapport.perception.face_vit import FaceViT
from rapport.perception.text_emotion import TextEmotion
from rapport.perception.voice_emotion import VoiceEmotion

SLOW = EngineSettings(max_batch=8, max_delay_ms=300)  # long enough for a batch to gather
ALONE = EngineSettings(max_batch=1, max_delay_ms=0)


def _together(fn: object, items: list[object]) -> list[object]:
    """Call fn on every item from its own thread at once, so they share batches."""
    assert callable(fn)
    out: list[object] = [None] * len(items)
    start = threading.Barrier(len(items))

    def one(i: int) -> None:
        start.wait()
        out[i] = fn(items[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def _heads(models: Path, settings: EngineSettings) -> tuple[FaceViT, VoiceEmotion, TextEmotion]:
    p = place(settings)
    return (
        FaceViT(load_head(models, "face-vit", settings, p), settings),
        VoiceEmotion(load_head(models, "voice-emotion", settings, p), settings),
        TextEmotion(load_head(models, "text-emotion", settings, p), settings),
    )


def test_padding_and_batching_do_not_change_results(full_models_dir: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [
        Utterance("ann", 0, 1, "I am so happy with the wonderful progress"),
        Utterance("bob", 0, 1, "terrible"),
        Utterance("cy", 0, 1, "what a surprise, that is great news for the team today"),
    ]
    segments = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 9000, 23000)]
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [Box(10, 10, 60, 70), Box(80, 20, 150, 100), Box(0, 0, 40, 40)]
    face_b, voice_b, text_b = _heads(full_models_dir, SLOW)
    face_a, voice_a, text_a = _heads(full_models_dir, ALONE)
    try:
        batched_text = _together(text_b.score, list(texts))
        batched_voice = _together(voice_b.score, list(segments))
        batched_faces = face_b.classify(frame, boxes)
        assert text_b.batcher.stats().batches < len(texts)  # they did share a batch
        assert voice_b.batcher.stats().batches < len(segments)
        assert face_b.batcher.stats().batches == 1
        for got, utt in zip(batched_text, texts, strict=True):
            alone = text_a.score(utt)
            assert got.valence == pytest.approx(alone.valence, abs=1e-5)  # type: ignore[attr-defined]
            assert got.arousal == pytest.approx(alone.arousal, abs=1e-5)  # type: ignore[attr-defined]
        for got, seg in zip(batched_voice, segments, strict=True):
            assert got == pytest.approx(voice_a.score(seg), abs=1e-5)
        for got, box in zip(batched_faces, boxes, strict=True):
            alone_face = face_a.classify(frame, [box])[0]
            assert got is not None and alone_face is not None
            assert got.probs == pytest.approx(alone_face.probs, abs=1e-5)
            assert sum(got.probs) == pytest.approx(1.0, abs=1e-5)
    finally:
        for h in (face_b, voice_b, text_b, face_a, voice_a, text_a):
            h.batcher.close()


def test_torch_backend_gives_the_onnx_results(full_models_dir: Path) -> None:
    onnx = EngineSettings(max_batch=1, max_delay_ms=0)
    torch_ = EngineSettings(max_batch=1, max_delay_ms=0, backend="torch")
    a, b = _heads(full_models_dir, onnx), _heads(full_models_dir, torch_)
    try:
        utt = Utterance("ann", 0, 1, "thank you all, I am glad to take your questions")
        assert a[2].score(utt).valence == pytest.approx(b[2].score(utt).valence, abs=1e-4)
        seg = np.random.default_rng(3).standard_normal(12000).astype(np.float32) * 0.1
        assert a[1].score(seg) == pytest.approx(b[1].score(seg), abs=1e-4)
        assert "onnx-cpu-fp32" in a[0].name and "torch-cpu-fp32" in b[0].name
    finally:
        for h in (*a, *b):
            h.batcher.close()


def test_short_or_empty_inputs(full_models_dir: Path) -> None:
    face, voice, text = _heads(full_models_dir, ALONE)
    try:
        assert voice.score(np.zeros(1000, np.float32)) is None  # under MIN_S
        empty = text.score(Utterance("ann", 0, 1, "   "))
        assert (empty.valence, empty.confidence) == (0.0, 0.0)
        assert face.classify(np.zeros((40, 40, 3), np.uint8), []) == []
        with pytest.raises(ValueError, match="does not overlap"):
            face.classify(np.zeros((40, 40, 3), np.uint8), [Box(100, 100, 120, 120)])
    finally:
        for h in (face, voice, text):
            h.batcher.close()
