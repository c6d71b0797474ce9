"""A loaded transformer head: its manifest, its runner, the batcher every session shares, and the
map from its own labels into the fusion's label space."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from rapport.config import EngineSettings
from rapport.errors import ModelError
from rapport.inference.batcher import MicroBatcher
from rapport.inference.engine import Placement, Runner, onnx_runner, softmax, torch_runner
from rapport.inference.registry import Manifest, load_model_dir
from rapport.labels import expression_map

T = TypeVar("T")
EXPORT_HINT: Final = "export it with `rapport models export CHECKPOINT` (see README: models)"


@dataclass(slots=True, frozen=True)
class HeadModel:
    slot: str
    model_dir: Path
    manifest: Manifest
    runner: Runner
    mapping: list[int]
    """Index in labels.EXPRESSIONS of each of the model's labels."""
    name: str

    def config(self, fname: str) -> dict[str, Any]:
        import json

        path = self.model_dir / fname
        if not path.is_file():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}


def load_head(
    models_dir: Path, slot: str, settings: EngineSettings, placement: Placement
) -> HeadModel:
    manifest = load_model_dir(models_dir, slot, hint=EXPORT_HINT)
    try:
        mapping = expression_map(manifest.labels or ())
    except ValueError as e:
        raise ModelError(f"model {slot!r}: {e}") from e
    model_dir = models_dir / slot
    if settings.backend == "torch":
        runner = torch_runner(model_dir, manifest.task, settings.threads)
        engine = "torch-cpu-fp32"
    else:
        runner = onnx_runner(model_dir, manifest, placement, settings.threads)
        engine = f"onnx-{placement.label}"
    return HeadModel(slot, model_dir, manifest, runner, mapping, f"{manifest.name}@{engine}")


def batcher(
    head: HeadModel,
    settings: EngineSettings,
    prepare: Callable[[list[T]], list[tuple[list[int], dict[str, NDArray[Any]]]]],
) -> MicroBatcher[T, NDArray[np.float32]]:
    """A batcher answering each item with its head's probabilities over its own labels.

    `prepare` turns a batch into model calls: (indices of the items, inputs) pairs, so items that
    cannot share a padded call (audio for models without a mask) get calls of their own."""

    def run(items: list[T]) -> Sequence[NDArray[np.float32] | BaseException]:
        out: list[NDArray[np.float32] | BaseException] = [
            ModelError("no result") for _ in items
        ]
        for indices, inputs in prepare(items):
            try:
                probs = softmax(head.runner(inputs))
            except Exception as e:  # a failed call fails only its own items
                for i in indices:
                    out[i] = ModelError(f"{head.slot}: {type(e).__name__}: {e}")
                continue
            for row, i in zip(probs, indices, strict=True):
                out[i] = row
        return out

    return MicroBatcher(
        run,
        name=head.slot,
        max_batch=settings.max_batch,
        max_delay_ms=settings.max_delay_ms,
        max_queue=settings.max_queue,
        max_age_ms=settings.max_age_ms,
    )


