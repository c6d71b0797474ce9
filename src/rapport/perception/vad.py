"""Silero VAD (v5 ONNX graph) stepped over 32 ms windows with its recurrent state.

The graph takes ``input`` [batch, 64 + 512] (the previous window's last 64 samples, then the new
512), ``state`` [2, batch, 128] and ``sr``. Its batch axis holds independent streams, and each
window's state feeds the next, so one stream cannot batch its windows: we loop, reusing buffers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from rapport.config import RuntimeSettings
from rapport.errors import ModelError
from rapport.frames import SAMPLE_RATE
from rapport.inference.registry import MODEL_FILE, load_model_dir
from rapport.inference.runtime import create_session

WINDOW: Final = 512
CONTEXT: Final = 64
WINDOW_S: Final = WINDOW / SAMPLE_RATE
_INPUTS: Final = {"input", "state", "sr"}
SLOT: Final = "vad"
"""The models/ folder the VAD is fetched into."""


class SileroVad:
    """Speech probability per 512-sample window of one stream."""

    def __init__(self, session: ort.InferenceSession) -> None:
        names = {i.name for i in session.get_inputs()}
        if names != _INPUTS:
            raise ModelError(f"VAD model has inputs {sorted(names)}, expected {sorted(_INPUTS)}")
        self._session = session
        self._x = np.zeros((1, CONTEXT + WINDOW), np.float32)
        self._state = np.zeros((2, 1, 128), np.float32)
        self._sr = np.array(SAMPLE_RATE, np.int64)

    @classmethod
    def load(cls, models_dir: Path, runtime: RuntimeSettings) -> SileroVad:
        """Open the VAD in models_dir/vad/ once its manifest's checksums pass."""
        load_model_dir(models_dir, SLOT)
        return cls(create_session(models_dir / SLOT / MODEL_FILE, runtime))

    @property
    def session(self) -> ort.InferenceSession:
        return self._session

    def reset(self) -> None:
        """Start a new stream: clear the recurrent state and the context."""
        self._x[:] = 0.0
        self._state = np.zeros_like(self._state)

    def probs(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        """One probability per window; len(samples) must be a multiple of WINDOW."""
        n = len(samples) // WINDOW
        if n * WINDOW != len(samples):
            raise ValueError(f"expected a multiple of {WINDOW} samples, got {len(samples)}")
        out = np.empty(n, np.float32)
        x, run = self._x, self._session.run
        for i in range(n):
            x[0, :CONTEXT] = x[0, WINDOW:]
            x[0, CONTEXT:] = samples[i * WINDOW : (i + 1) * WINDOW]
            prob, self._state = run(None, {"input": x, "state": self._state, "sr": self._sr})
            out[i] = prob[0, 0]
        return out
