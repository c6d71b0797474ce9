"""Text emotion with a RoBERTa sequence classifier, e.g.
j-hartmann/emotion-english-distilroberta-base (anger, disgust, fear, joy, neutral, sadness,
surprise), mapped into the fusion's label space.

Tokenised with the checkpoint's own tokenizer.json (the `tokenizers` library: no transformers at
run time), truncated to what the model's positions allow, right-padded with an attention mask in
shared batches, so padding does not change a result.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from tokenizers import Tokenizer

from rapport.config import EngineSettings
from rapport.errors import ModelError
from rapport.frames import TextScore, Utterance
from rapport.inference.heads import HeadModel, batcher
from rapport.labels import to_expressions, valence_arousal
from rapport.perception.voice_emotion import peak_confidence

SLOT: Final = "text-emotion"


class TextEmotion:
    def __init__(self, head: HeadModel, settings: EngineSettings) -> None:
        path = head.model_dir / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"model {SLOT!r} has no tokenizer.json: export it again")
        self._tokenizer = Tokenizer.from_file(str(path))
        config = head.config("config.json")
        limit = int(config.get("max_position_embeddings", 514)) - 2
        max_len = int(head.config("tokenizer_config.json").get("model_max_length", limit))
        self._tokenizer.enable_truncation(max_length=min(limit, max_len, 512))
        self._pad = int(config.get("pad_token_id", 1))
        self._mapping = head.mapping
        self.name = head.name
        self.batcher = batcher(head, settings, self._prepare)

    def score(self, utt: Utterance) -> TextScore:
        ids = self._tokenizer.encode(utt.text).ids
        if not utt.text.strip():
            return TextScore(utt.participant, utt.start, utt.end, 0.0, 0.0, 0.0)
        probs = to_expressions(self.batcher.submit(ids).result().tolist(), self._mapping)
        valence, arousal = valence_arousal(probs)
        return TextScore(
            utt.participant, utt.start, utt.end, valence, arousal, peak_confidence(probs)
        )

    def _prepare(self, items: list[list[int]]) -> list[tuple[list[int], dict[str, Any]]]:
        n = max(len(x) for x in items)
        ids = np.full((len(items), n), self._pad, np.int64)
        mask = np.zeros((len(items), n), np.int64)
        for i, x in enumerate(items):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return [(list(range(len(items))), {"input_ids": ids, "attention_mask": mask})]
