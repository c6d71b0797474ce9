"""`rapport models export`: tiny checkpoints of the real classes -> ONNX that agrees with torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from rapport.errors import InputError
from rapport.inference.export import (
    FP16_FILE,
    _load,
    _spec,
    _unpadded,
    export_checkpoint,
    read_config,
    sample_inputs,
)
from rapport.inference.registry import MODEL_FILE, load_model_dir
from tests.fakes.tiny_models import FACE_LABELS, TEXT_LABELS, VOICE_LABELS

LABELS = {"face-vit": FACE_LABELS, "voice-emotion": VOICE_LABELS, "text-emotion": TEXT_LABELS}


@pytest.fixture(scope="module")
def exported(tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exported")
    for slot in LABELS:
        report = export_checkpoint(tiny_checkpoints[slot], root, fp16=slot == "face-vit")
        assert report.max_abs_diff <= 1e-4 and report.slot == slot
    return root


@pytest.mark.parametrize("slot", sorted(LABELS))
def test_export_writes_a_verified_manifest(exported: Path, slot: str) -> None:
    manifest = load_model_dir(exported, slot)  # every file's sha256 checks
    assert manifest.labels == LABELS[slot]
    assert manifest.variants["fp32"] == MODEL_FILE
    assert (exported / slot / "config.json").is_file()
    names = [i.name for i in manifest.inputs]
    assert (
        names
        == {
            "face-vit": ["pixel_values"],
            "voice-emotion": ["input_values", "attention_mask"],
            "text-emotion": ["input_ids", "attention_mask"],
        }[slot]
    )


@pytest.mark.parametrize("slot", sorted(LABELS))
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_onnx_agrees_with_torch_for_ragged_batches(
    exported: Path, tiny_checkpoints: dict[str, Path], slot: str, batch: int
) -> None:
    import torch

    model = _load(tiny_checkpoints[slot], slot)
    spec = _spec(slot, read_config(tiny_checkpoints[slot]))
    session = ort.InferenceSession(str(exported / slot / MODEL_FILE))
    inputs = sample_inputs(spec, batch, np.random.default_rng(batch))
    got = session.run(["logits"], inputs)[0]
    for i in range(batch):  # each item alone and unpadded through torch
        alone = _unpadded(inputs, i)
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in alone.items()}).logits.numpy()
        assert np.abs(ref[0] - got[i]).max() <= 1e-4
    if "attention_mask" in inputs:
        assert len(set(inputs["attention_mask"].sum(axis=1).tolist())) == min(batch, 4)


def test_group_norm_wav2vec2_takes_no_mask(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    report = export_checkpoint(tiny_checkpoints["voice-emotion-group"], tmp_path)
    manifest = load_model_dir(tmp_path, "voice-emotion")
    assert [i.name for i in manifest.inputs] == ["input_values"]
    assert report.max_abs_diff <= 1e-4


def test_fp16_variant_is_written(exported: Path) -> None:
    manifest = load_model_dir(exported, "face-vit")
    assert manifest.variants["fp16"] == FP16_FILE
    session = ort.InferenceSession(str(exported / "face-vit" / FP16_FILE))
    assert session.get_inputs()[0].type == "tensor(float)"  # fp32 in and out, fp16 inside


def _copy_with_config(src: Path, dst: Path, **changes: Any) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_bad_checkpoints_are_refused_in_one_line(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"no readable config\.json"):
        export_checkpoint(tmp_path / "nothing", tmp_path / "models")
    odd = _copy_with_config(tiny_checkpoints["face-vit"], tmp_path / "gpt", model_type="gpt2")
    with pytest.raises(InputError, match="model_type 'gpt2'"):
        export_checkpoint(odd, tmp_path / "models")
    labels = {
        "0": "angry",
        "1": "bored",
        "2": "happy",
        "3": "neutral",
        "4": "sad",
        "5": "fear",
        "6": "surprise",
    }
    unmapped = _copy_with_config(tiny_checkpoints["face-vit"], tmp_path / "bored", id2label=labels)
    with pytest.raises(InputError, match="bored"):
        export_checkpoint(unmapped, tmp_path / "models")
    assert not (tmp_path / "models" / "face-vit").exists()  # nothing half-written
