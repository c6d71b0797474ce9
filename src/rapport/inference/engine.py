"""Runners for the transformer heads: ONNX Runtime on the best configured provider, or torch.

A runner maps named numpy inputs to logits. Providers come from configuration in preference order,
keeping those this ONNX Runtime build has (`onnxruntime-gpu` brings CUDA and TensorRT); the device
and precision actually used are part of the model's display name, so every event says them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from rapport.config import EngineSettings
from rapport.errors import InputError, ModelError
from rapport.inference.registry import MODEL_FILE, Manifest
from rapport.inference.runtime import load_errors

ORT_PROVIDERS: Final = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEVICES: Final = {"tensorrt": "tensorrt", "cuda": "cuda", "cpu": "cpu"}

Inputs = dict[str, NDArray[Any]]
Runner = Callable[[Inputs], NDArray[np.float32]]


@dataclass(slots=True, frozen=True)
class Placement:
    providers: tuple[str, ...]
    device: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.device}-{self.precision}"


def place(settings: EngineSettings, available: list[str] | None = None) -> Placement:
    """The providers to use, in order, and the device and precision they give."""
    present = set(ort.get_available_providers() if available is None else available)
    chosen = [p for p in settings.providers if ORT_PROVIDERS[p] in present]
    if not chosen:
        raise InputError(
            f"engine.providers {settings.providers}: none is available in this ONNX Runtime "
            f"(it has {sorted(present)})"
        )
    if settings.precision == "fp16" and chosen[0] == "cpu":
        raise InputError("engine.precision fp16 needs cuda or tensorrt; this host runs fp32 only")
    providers = tuple(ORT_PROVIDERS[p] for p in chosen)
    return Placement(providers, DEVICES[chosen[0]], settings.precision)


def onnx_runner(
    model_dir: Path, manifest: Manifest, placement: Placement, threads: int
) -> Runner:
    fname = manifest.variants.get(placement.precision, MODEL_FILE)
    if placement.precision not in manifest.variants and placement.precision != "fp32":
        raise ModelError(
            f"model {manifest.name!r} has no {placement.precision} file: "
            "run `rapport models export --fp16`"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(model_dir / fname), sess_options=opts, providers=list(placement.providers)
        )
    except load_errors() as e:
        raise ModelError(f"cannot load {model_dir / fname}: {str(e).splitlines()[0]}") from e
    names = {i.name for i in session.get_inputs()}

    def run(inputs: Inputs) -> NDArray[np.float32]:
        out = session.run(["logits"], {k: v for k, v in inputs.items() if k in names})[0]
        return np.asarray(out, dtype=np.float32)

    return run


def torch_runner(model_dir: Path, task: str, threads: int) -> Runner:
    """The checkpoint itself through transformers (the `export` extra): when ONNX is unwanted."""
    try:
        import torch

        cls = auto_model_class(task)
    except ImportError as e:
        raise InputError("engine.backend torch needs torch and transformers: .[export]") from e
    try:
        model = cls.from_pretrained(str(model_dir), local_files_only=True).eval()
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {model_dir} in torch: {str(e).splitlines()[0]}") from e
    torch.set_num_threads(threads)
    accepted = set(inspect.signature(model.forward).parameters)

    def run(inputs: Inputs) -> NDArray[np.float32]:
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in inputs.items() if k in accepted}
            return np.asarray(model(**tensors).logits.float().numpy(), dtype=np.float32)

    return run


def auto_model_class(task: str) -> Any:
    """The transformers Auto class that loads a checkpoint of this manifest task."""
    import transformers

    return {
        "image-classification": transformers.AutoModelForImageClassification,
        "audio-classification": transformers.AutoModelForAudioClassification,
        "text-classification": transformers.AutoModelForSequenceClassification,
    }[task]


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float32)
