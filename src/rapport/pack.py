"""The offline model pack: every head the spine needs, loaded once per process.

Loading happens here, on demand (CLI start, service lifespan), never at import time.
"""

from __future__ import annotations

from functools import cached_property

from rapport.config import Settings
from rapport.perception.face_expression import ExpressionClassifier
from rapport.perception.faces import FaceDetector
from rapport.perception.language import TextSentiment
from rapport.perception.speech_to_text import SpeechToText
from rapport.perception.voice import VoiceActivity


class OfflinePack:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Face models are loaded eagerly: they fail fast with the fetch hint when missing.
        self.detector = FaceDetector(settings.models_dir, settings.runtime, settings.faces)
        self.expressions = ExpressionClassifier(settings.models_dir, settings.runtime)
        self.text = TextSentiment()

    def voice_activity(
        self, participant: str, *, max_speech_s: float, prosody: bool = True
    ) -> VoiceActivity:
        """A fresh VAD stream (it is stateful) for one participant's audio."""
        return VoiceActivity(
            self._settings.models_dir,
            self._settings.runtime,
            participant,
            max_speech_s=max_speech_s,
            prosody=prosody,
        )

    @cached_property
    def _stt(self) -> SpeechToText:
        return SpeechToText()

    def speech_to_text(self) -> SpeechToText:
        return self._stt

    def model_names(self, modalities: list[str], *, transcribed: bool) -> dict[str, str]:
        """Which model produced each modality's numbers, as every event reports it."""
        names: dict[str, str] = {}
        if "face" in modalities:
            names["face"] = f"{self.detector.name}+{self.expressions.name}"
        if "voice" in modalities:
            names["voice"] = "silero-vad+prosody"
        if "text" in modalities:
            names["text"] = (
                f"{SpeechToText.NAME}+{self.text.name}" if transcribed else self.text.name
            )
        return names
