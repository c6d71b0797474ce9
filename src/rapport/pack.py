"""The model packs: every head a session needs, loaded once per process and shared.

- offline: weights that registry packages ship (mini-Xception, VADER, Silero VAD + prosody).
- full: the transformer heads (face ViT, wav2vec2, DistilRoBERTa) exported by `rapport models
  export`, run by the batched engine on the configured providers; face detection and voice
  activity stay as in the offline pack.

Loading happens here, on demand (CLI start, service lifespan), never at import time.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import onnxruntime as ort

from rapport.config import Settings
from rapport.perception.face_expression import ExpressionClassifier
from rapport.perception.face_range import FaceDetectors
from rapport.perception.heads import ExpressionHead, TextHead, VoiceHead
from rapport.perception.language import TextSentiment
from rapport.perception.speech_to_text import SpeechToText
from rapport.perception.vad import SileroVad
from rapport.perception.voice import VoiceActivity


class OfflinePack:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stt = threading.local()
        # Face models are loaded eagerly: they fail fast with the fetch hint when missing. Only
        # the ranges faces.detector needs are loaded (auto: both).
        self.detector = FaceDetectors(settings.models_dir, settings.runtime, settings.faces)
        self.expressions: ExpressionHead = self._expressions()
        self.text: TextHead = self._text()
        self.voice_emotion: VoiceHead | None = self._voice_emotion()

    def _expressions(self) -> ExpressionHead:
        return ExpressionClassifier(self._settings.models_dir, self._settings.runtime)

    def _text(self) -> TextHead:
        return TextSentiment()

    def _voice_emotion(self) -> VoiceHead | None:
        return None

    def voice_activity(
        self, participant: str, *, max_speech_s: float, prosody: bool = True
    ) -> VoiceActivity:
        """A fresh VAD stream (it is stateful) for one participant's audio. The streams share
        one ONNX Runtime session (the graph is stateless; each stream keeps its own state), so a
        room's tenth microphone costs no model load."""
        return VoiceActivity(
            self._settings.models_dir,
            self._settings.runtime,
            participant,
            max_speech_s=max_speech_s,
            prosody=prosody and self.voice_emotion is None,
            vad=SileroVad(self._vad_session),
        )

    @cached_property
    def _vad_session(self) -> ort.InferenceSession:
        return SileroVad.load(self._settings.models_dir, self._settings.runtime).session

    def speech_to_text(self) -> SpeechToText:
        """The calling thread's decoder: pocketsphinx decoders are not thread-safe, and every
        session runs on a worker thread of its own (one decoder per thread, loaded on first use)."""
        stt: SpeechToText | None = getattr(self._stt, "decoder", None)
        if stt is None:
            stt = self._stt.decoder = SpeechToText()
        return stt

    def model_names(self, modalities: list[str], *, transcribed: bool) -> dict[str, str]:
        """Which model produced each modality's numbers, as every event reports it."""
        names: dict[str, str] = {}
        if "face" in modalities:
            names["face"] = f"{self.detector.name}+{self.expressions.name}"
        if "voice" in modalities:
            voice = self.voice_emotion.name if self.voice_emotion else "prosody"
            names["voice"] = f"silero-vad+{voice}"
        if "text" in modalities:
            names["text"] = (
                f"{SpeechToText.NAME}+{self.text.name}" if transcribed else self.text.name
            )
        return names

    def stats(self) -> dict[str, Any]:
        """Engine counters (batches, drops) per model; empty for the unbatched offline pack."""
        return {}

    def close(self) -> None:
        pass


class FullPack(OfflinePack):
    def __init__(self, settings: Settings) -> None:
        from rapport.inference.engine import place

        self._placement = place(settings.engine)
        self._batched: list[Any] = []
        super().__init__(settings)

    def _head(self, slot: str) -> Any:
        from rapport.inference.heads import load_head

        s = self._settings
        return load_head(s.models_dir, slot, s.engine, self._placement)

    def _expressions(self) -> ExpressionHead:
        from rapport.perception.face_vit import SLOT, FaceViT

        head = FaceViT(self._head(SLOT), self._settings.engine)
        self._batched.append(head)
        return head

    def _text(self) -> TextHead:
        from rapport.perception.text_emotion import SLOT, TextEmotion

        head = TextEmotion(self._head(SLOT), self._settings.engine)
        self._batched.append(head)
        return head

    def _voice_emotion(self) -> VoiceHead | None:
        from rapport.perception.voice_emotion import SLOT, VoiceEmotion

        head = VoiceEmotion(self._head(SLOT), self._settings.engine)
        self._batched.append(head)
        return head

    def stats(self) -> dict[str, Any]:
        return {h.batcher.name: h.batcher.stats() for h in self._batched}

    def close(self) -> None:
        for h in self._batched:
            h.batcher.close()


def load_pack(settings: Settings) -> OfflinePack:
    return FullPack(settings) if settings.engine.pack == "full" else OfflinePack(settings)
