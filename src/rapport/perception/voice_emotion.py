"""Speech emotion with a wav2vec2 sequence classifier on each speech segment (16 kHz mono), e.g.
superb/wav2vec2-base-superb-er: IEMOCAP's neutral, happy, angry, sad. Its classes map into the
fusion's label space (labels.LABEL_ALIASES), giving the segment's valence and arousal.

Segments from every stream share one batcher. Models whose feature extractor uses layer norm take
an attention mask, so ragged segments share a padded call; group-norm ones (wav2vec2-base) would
see padding in their statistics, so only segments of equal length share a call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from rapport.config import EngineSettings
from rapport.frames import SAMPLE_RATE
from rapport.inference.heads import HeadModel, batcher
from rapport.labels import EXPRESSIONS, to_expressions, valence_arousal

SLOT: Final = "voice-emotion"
MIN_S: Final = 0.25
"""Shorter segments carry too little speech to score."""
MAX_S: Final = 15.0


class VoiceEmotion:
    def __init__(self, head: HeadModel, settings: EngineSettings) -> None:
        pre = head.config("preprocessor_config.json")
        self._normalize = bool(pre.get("do_normalize", True))
        self._masked = any(i.name == "attention_mask" for i in head.manifest.inputs)
        self._mapping = head.mapping
        self.name = head.name
        self.batcher = batcher(head, settings, self._prepare)

    def score(self, samples: NDArray[np.float32]) -> tuple[float, float, float] | None:
        """(valence, arousal, confidence) of one segment; None when it is too short."""
        if len(samples) < MIN_S * SAMPLE_RATE:
            return None
        x = np.asarray(samples[: int(MAX_S * SAMPLE_RATE)], dtype=np.float32)
        if self._normalize:  # Wav2Vec2FeatureExtractor: zero mean, unit variance per segment
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        probs = to_expressions(self.batcher.submit(x).result().tolist(), self._mapping)
        valence, arousal = valence_arousal(probs)
        return valence, arousal, peak_confidence(probs)

    def _prepare(self, items: list[NDArray[np.float32]]) -> list[tuple[list[int], dict[str, Any]]]:
        if self._masked:
            return [(list(range(len(items))), pad(items))]
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, x in enumerate(items):
            by_length[len(x)].append(i)
        return [
            (idx, {"input_values": np.stack([items[i] for i in idx])})
            for idx in by_length.values()
        ]


def pad(items: list[NDArray[np.float32]]) -> dict[str, NDArray[Any]]:
    n = max(len(x) for x in items)
    values = np.zeros((len(items), n), np.float32)
    mask = np.zeros((len(items), n), np.int64)
    for i, x in enumerate(items):
        values[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return {"input_values": values, "attention_mask": mask}


def peak_confidence(probs: tuple[float, ...]) -> float:
    """0 for a flat distribution over the classes, 1 for a certain one."""
    k = len(EXPRESSIONS)
    return float(min(1.0, max(0.0, (max(probs) - 1 / k) / (1 - 1 / k))))
