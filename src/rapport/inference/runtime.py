"""ONNX Runtime sessions: CPU provider, explicit thread counts, full graph optimisation.

Thread counts always come from settings, never ORT's default (a pool as wide as the machine per
session), so several models and workers in one process do not oversubscribe the CPU. Spinning is
off: between calls an idle pool must not burn a core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from rapport.config import RuntimeSettings
from rapport.errors import ModelError

DEVICE: Final = "cpu"
PROVIDERS: Final = ("CPUExecutionProvider",)

# ORT's load errors (Fail, NoSuchFile, InvalidProtobuf, ...) share no base class below Exception.
_LOAD_ERRORS: Final[tuple[type[Exception], ...]] = (
    *(v for v in vars(_ort_state).values() if isinstance(v, type) and issubclass(v, Exception)),
    OSError,
    RuntimeError,
    ValueError,
)


def load_errors() -> tuple[type[Exception], ...]:
    return _LOAD_ERRORS


def create_session(path: Path, runtime: RuntimeSettings) -> ort.InferenceSession:
    """Open `path` on the CPU; any load failure becomes a one-line ModelError."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = runtime.intra_op_threads
    opts.inter_op_num_threads = runtime.inter_op_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(PROVIDERS))
    except _LOAD_ERRORS as e:
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"cannot load {path} in ONNX Runtime: {detail}") from e
