"""`rapport models export CHECKPOINT`: a Hugging Face classifier folder -> models/<slot>/ in ONNX.

The export is checked against the checkpoint before it is kept: the same inputs (batch sizes 1 and
3, ragged lengths where the model takes a mask) through torch and through ONNX Runtime, the largest
absolute difference of the logits printed and bounded. torch and transformers are needed here only
(the `export` extra); running the exported heads needs ONNX Runtime alone.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from rapport.errors import InputError, ModelError
from rapport.inference.registry import (
    MODEL_FILE,
    InputSpec,
    Manifest,
    Source,
    sha256_file,
    write_manifest,
)
from rapport.labels import expression_map

FP16_FILE: Final = "model.fp16.onnx"
MAX_DIFF_FP32: Final = 1e-4
OPSET: Final = 17

#: model_type of the checkpoint -> the slot it fills
SLOTS: Final = {
    "vit": "face-vit",
    "wav2vec2": "voice-emotion",
    "hubert": "voice-emotion",
    "wavlm": "voice-emotion",
    "roberta": "text-emotion",
    "bert": "text-emotion",
}
TASKS: Final = {
    "face-vit": "image-classification",
    "voice-emotion": "audio-classification",
    "text-emotion": "text-classification",
}
#: files beside the weights that preprocessing needs at run time (copied when present)
SIDE_FILES: Final = (
    "config.json",
    "model.safetensors",  # the torch backend runs the checkpoint itself
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@dataclass(slots=True, frozen=True)
class ExportReport:
    slot: str
    out_dir: Path
    labels: tuple[str, ...]
    max_abs_diff: float
    checked_batches: tuple[int, ...]
    fp16: str
    """"checked ...", "not checked (no CUDA here)" or "not made"."""


def read_config(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(
            f"{checkpoint}: not a Hugging Face checkpoint (no readable config.json)"
        ) from e
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object")
    return config


def export_checkpoint(
    checkpoint: Path,
    models_dir: Path,
    *,
    fp16: bool = False,
    name: str | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> ExportReport:
    """`name` is what outputs will call the model (default: the checkpoint folder's name; a
    config's _name_or_path often names the base model it was fine-tuned from, so it is not used)."""
    config = read_config(checkpoint)
    model_type = str(config.get("model_type", ""))
    slot = SLOTS.get(model_type)
    if slot is None:
        raise InputError(
            f"{checkpoint}: model_type {model_type!r} is none of {', '.join(sorted(SLOTS))}"
        )
    id2label = config.get("id2label") or {}
    labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    try:
        expression_map(labels)
    except ValueError as e:
        raise InputError(f"{checkpoint}: {e}") from e
    try:
        import torch
    except ImportError as e:
        raise InputError("exporting needs torch and transformers: pip install -e .[export]") from e
    on_step(f"loading {checkpoint} ({model_type}, {len(labels)} labels)")
    model = _load(checkpoint, slot)
    spec = _spec(slot, config)
    target = models_dir / slot
    models_dir.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{slot}.", dir=models_dir))
    try:
        on_step("exporting to ONNX")
        _export(torch, model, spec, build / MODEL_FILE)
        on_step("checking ONNX Runtime against torch")
        diff, batches = check_export(model, spec, build / MODEL_FILE)
        if not diff <= MAX_DIFF_FP32:
            raise ModelError(
                f"export of {checkpoint} differs from the checkpoint by {diff:.2e} "
                f"(bound {MAX_DIFF_FP32:.0e}); not kept"
            )
        fp16_note = "not made"
        variants = {"fp32": MODEL_FILE}
        if fp16:
            fp16_note = _to_fp16(build / MODEL_FILE, build / FP16_FILE, spec)
            variants["fp16"] = FP16_FILE
        for side in SIDE_FILES:
            if (checkpoint / side).is_file():
                shutil.copyfile(checkpoint / side, build / side)
        files = {p.name: sha256_file(p) for p in sorted(build.iterdir()) if p.is_file()}
        write_manifest(
            build,
            Manifest(
                name=name or checkpoint.resolve().name or slot,
                version=files[MODEL_FILE][:12],
                task=TASKS[slot],
                labels=labels,
                input=spec.inputs[0],
                inputs=spec.inputs,
                files=files,
                source=Source(
                    package="huggingface",
                    version="local",
                    member=checkpoint.name,
                    license="see the checkpoint's model card",
                ),
                engine="onnx",
                variants=variants,
            ),
        )
        _swap_in(build, target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return ExportReport(slot, target, labels, diff, batches, fp16_note)


# -- internals ----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Spec:
    slot: str
    inputs: tuple[InputSpec, ...]
    masked: bool
    """Takes an attention mask, so ragged items can share a padded batch."""
    vocab: int = 0
    image: int = 0


def _spec(slot: str, config: dict[str, Any]) -> _Spec:
    if slot == "face-vit":
        size = int(config.get("image_size", 224))
        pixels = InputSpec(name="pixel_values", shape=("N", 3, size, size), dtype="float32")
        return _Spec(slot, (pixels,), masked=False, image=size)
    if slot == "voice-emotion":
        values = InputSpec(
            name="input_values", shape=("N", "T"), dtype="float32", notes="16 kHz mono"
        )
        # Group-norm feature extractors (wav2vec2-base) must not be given a mask or padding.
        if config.get("feat_extract_norm", "group") == "layer":
            mask = InputSpec(name="attention_mask", shape=("N", "T"), dtype="int64")
            return _Spec(slot, (values, mask), masked=True)
        return _Spec(slot, (values,), masked=False)
    ids = InputSpec(name="input_ids", shape=("N", "L"), dtype="int64")
    mask = InputSpec(name="attention_mask", shape=("N", "L"), dtype="int64")
    return _Spec(slot, (ids, mask), masked=True, vocab=int(config.get("vocab_size", 100)))


def _load(checkpoint: Path, slot: str) -> Any:
    from rapport.inference.engine import auto_model_class

    cls = auto_model_class(TASKS[slot])
    try:
        # Eager attention traces to plain ONNX ops that every execution provider runs.
        model = cls.from_pretrained(
            str(checkpoint), local_files_only=True, attn_implementation="eager"
        )
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load {checkpoint}: {str(e).splitlines()[0]}") from e
    return model.eval().float()


def sample_inputs(spec: _Spec, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of the model's kinds; masked models get ragged lengths (right padding)."""
    if spec.slot == "face-vit":
        x = rng.standard_normal((batch, 3, spec.image, spec.image)).astype(np.float32)
        return {"pixel_values": x}
    if spec.slot == "voice-emotion":
        lengths = [16000 - 2400 * (i % 4) if spec.masked else 16000 for i in range(batch)]
        values = np.zeros((batch, max(lengths)), np.float32)
        mask = np.zeros((batch, max(lengths)), np.int64)
        for i, n in enumerate(lengths):
            values[i, :n] = rng.standard_normal(n).astype(np.float32) * 0.1
            mask[i, :n] = 1
        return (
            {"input_values": values, "attention_mask": mask}
            if spec.masked
            else {"input_values": values}
        )
    lengths = [12 - 3 * (i % 4) for i in range(batch)]
    ids = np.ones((batch, max(lengths)), np.int64)  # 1 = RoBERTa's <pad>
    mask = np.zeros((batch, max(lengths)), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(3, max(4, spec.vocab), n)
        ids[i, 0] = 0
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _export(torch: Any, model: Any, spec: _Spec, path: Path) -> None:
    names = [i.name for i in spec.inputs]

    class Logits(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(**dict(zip(names, args, strict=True))).logits

    example = sample_inputs(spec, 2, np.random.default_rng(0))
    args = tuple(torch.from_numpy(example[n]) for n in names)
    axes = {n: {0: "N", 1: "T"} if len(example[n].shape) == 2 else {0: "N"} for n in names}
    with torch.no_grad():
        model(**dict(zip(names, args, strict=True)))  # lazily built state must exist before tracing
        # The exporter restores the wrapper's training flag afterwards: it must be eval too, or
        # the model comes back with dropout on.
        torch.onnx.export(
            Logits().eval(),
            args,
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )


def check_export(model: Any, spec: _Spec, path: Path) -> tuple[float, tuple[int, ...]]:
    """Largest |logit difference| between torch (each item alone, unpadded) and ONNX Runtime
    (the padded batch), over batch sizes 1 and 3."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    batches = (1, 3)
    for batch in batches:
        inputs = sample_inputs(spec, batch, rng)
        got = session.run(["logits"], inputs)[0]
        for i in range(batch):
            alone = _unpadded(inputs, i)
            with torch.no_grad():
                ref = model(**{k: torch.from_numpy(v) for k, v in alone.items()}).logits.numpy()
            worst = max(worst, float(np.abs(ref[0] - got[i]).max()))
    return worst, batches


def _unpadded(inputs: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    if "attention_mask" not in inputs:
        return {k: v[i : i + 1] for k, v in inputs.items()}
    n = int(inputs["attention_mask"][i].sum())
    return {k: v[i : i + 1, :n] for k, v in inputs.items()}


def _to_fp16(src: Path, dst: Path, spec: _Spec) -> str:
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "not checked (no CUDA here)"
    inputs = sample_inputs(spec, 3, np.random.default_rng(2))
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
    half = ort.InferenceSession(str(dst), providers=["CUDAExecutionProvider"]).run(None, inputs)[0]
    return f"checked on CUDA: max abs diff {float(np.abs(ref - half).max()):.2e}"


def _swap_in(build: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    build.rename(target)
    shutil.rmtree(old, ignore_errors=True)
