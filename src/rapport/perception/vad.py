"""Silero VAD (v5 ONNX graph) stepped over 32 ms windows with its recurrent state.

The graph takes ``input`` [batch, 64 + 512] (the previous window's last 64 samples, then the new
512), ``state`` [2, batch, 128] and ``sr``. Its batch axis holds independent streams, and each
window's state feeds the next, so one stream cannot batch its windows: we loop, reusing buffers.
Several streams can: `prefetch` steps their next windows together, one call per step for all
(~35-45 us a stream-window in batches of 4-32 against ~70-90 alone, one thread), and each
stream's next `probs` call with exactly those samples takes the result instead of running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from rapport.metrics import VAD_WINDOWS_BATCHED

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
        self._ahead: _Ahead | None = None
        self.prefetched = 0
        """Windows whose probability came from `prefetch` (a batch), not a call of their own."""

    @classmethod
    def load(cls, models_dir: Path, runtime: RuntimeSettings) -> SileroVad:
        """Open the VAD in models_dir/vad/ once its manifest's checksums pass."""
        load_model_dir(models_dir, SLOT)
        return cls(create_session(models_dir / SLOT / MODEL_FILE, runtime))

    def _has_ahead(self, samples: NDArray[np.float32]) -> bool:
        """A prefetched result for exactly these samples, from the state the stream is in."""
        a = self._ahead
        return a is not None and a.before is self._state and np.array_equal(a.samples, samples)

    @property
    def session(self) -> ort.InferenceSession:
        return self._session

    def reset(self) -> None:
        """Start a new stream: clear the recurrent state and the context."""
        self._x[:] = 0.0
        self._state = np.zeros_like(self._state)
        self._ahead = None

    def probs(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        """One probability per window; len(samples) must be a multiple of WINDOW."""
        n = len(samples) // WINDOW
        if n * WINDOW != len(samples):
            raise ValueError(f"expected a multiple of {WINDOW} samples, got {len(samples)}")
        if self._has_ahead(samples):
            assert self._ahead is not None
            self._state, self._x[0, WINDOW:] = self._ahead.state, samples[-CONTEXT:]
            out = self._ahead.probs
            self._ahead = None
            self.prefetched += n
            VAD_WINDOWS_BATCHED.inc(n)
            return out
        self._ahead = None
        out = np.empty(n, np.float32)
        x, run = self._x, self._session.run
        for i in range(n):
            x[0, :CONTEXT] = x[0, WINDOW:]
            x[0, CONTEXT:] = samples[i * WINDOW : (i + 1) * WINDOW]
            prob, self._state = run(None, {"input": x, "state": self._state, "sr": self._sr})
            out[i] = prob[0, 0]
        return out


@dataclass(frozen=True, slots=True)
class _Ahead:
    samples: NDArray[np.float32]
    before: NDArray[np.float32]  # the state it started from: still the stream's, or stale
    probs: NDArray[np.float32]
    state: NDArray[np.float32]


def prefetch(streams: Sequence[tuple[SileroVad, NDArray[np.float32]]]) -> None:
    """Run several streams' next windows (each a multiple of WINDOW samples, what the stream's next
    `probs` call will be given) as one batch per step; each stream keeps its result for that call.
    Streams of one ONNX Runtime session batch (the first stream's); a stream's own state is left
    as it was."""
    vads = [(v, x) for v, x in streams if isinstance(v, SileroVad)]
    if any(len(x) % WINDOW for _, x in vads):
        raise ValueError(f"expected multiples of {WINDOW} samples")
    # Streams of another session (or another VAD) run on their own, at their turn.
    live = [
        (v, x)
        for v, x in vads
        if v._session is vads[0][0]._session and len(x) and not v._has_ahead(x)
    ]
    if len(live) < 2:
        return
    run = live[0][0]._session.run
    counts = np.array([len(x) // WINDOW for _, x in live])
    x = np.zeros((len(live), CONTEXT + WINDOW), np.float32)
    x[:, :CONTEXT] = np.stack([v._x[0, WINDOW:] for v, _ in live])
    state = np.concatenate([v._state for v, _ in live], axis=1)
    out = [np.empty(n, np.float32) for n in counts]
    sr = live[0][0]._sr
    for step in range(int(counts.max())):
        active = np.flatnonzero(counts > step)
        if step:
            x[:, :CONTEXT] = x[:, WINDOW:]
        for b in active:
            x[b, CONTEXT:] = live[b][1][step * WINDOW : (step + 1) * WINDOW]
        full = len(active) == len(live)
        prob, new = run(
            None,
            {
                "input": x if full else x[active],
                "state": state if full else state[:, active],
                "sr": sr,
            },
        )
        if full:
            state = new
        else:
            state[:, active] = new
        for i, b in enumerate(active):
            out[b][step] = prob[i, 0]
    for b, (v, samples) in enumerate(live):
        v._ahead = _Ahead(samples, v._state, out[b], np.ascontiguousarray(state[:, b : b + 1]))
