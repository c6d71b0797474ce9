"""BlazeFace TFLite -> ONNX conversion, checked against LiteRT's outputs on the real model."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import tflite
from numpy.typing import NDArray
from skimage import data

from rapport.errors import ModelError
from rapport.inference.convert_tflite import _same_pads, convert_blazeface

WHEEL = "mediapipe==0.10.21"
MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"

# Reference: ai-edge-litert 2.3.0's Interpreter (XNNPACK, 1 thread) on astronaut_input() below.
REF_TOP_ANCHORS = [141, 143, 111, 109, 140]
REF_TOP_LOGITS = [2.4779, 2.4518, 2.1388, 2.0912, 1.4082]
REF_REGRESSORS_141 = [
    4.7986, -3.651, 23.4784, 23.4784, -0.8749, -10.3314, 10.4253, -8.5179,
    3.7769, -4.5479, 3.0747, 0.6546, -7.429, -8.2441, 16.3373, -4.5102,
]  # fmt: skip
REF_MEAN_ABS_LOGIT = 10.151714
REF_MEAN_ABS_REGRESSOR = 12.713708


@pytest.fixture(scope="module")
def tflite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file from the pinned mediapipe wheel (pip's cache makes reruns fast)."""
    root = tmp_path_factory.mktemp("mediapipe")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--platform=manylinux_2_28_x86_64", "--abi=cp311",
           "--python-version=3.11", "--implementation=cp", "-d", str(root), WHEEL]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    (wheel,) = root.glob("*.whl")
    path = root / "face_detection_short_range.tflite"
    with zipfile.ZipFile(wheel) as z:
        path.write_bytes(z.read(MEMBER))
    return path


@pytest.fixture(scope="module")
def session(tflite_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    onnx_path = tmp_path_factory.mktemp("onnx") / "blazeface.onnx"
    convert_blazeface(tflite_path, onnx_path)
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def astronaut_input() -> NDArray[np.float32]:
    """[1, 3, 128, 128]: the astronaut squashed to 128x128 (4x4 block means), in [-1, 1]."""
    small = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()


def test_signature_has_dynamic_batch(session: ort.InferenceSession) -> None:
    (x,) = session.get_inputs()
    assert (x.name, x.shape[1:]) == ("input", [3, 128, 128]) and isinstance(x.shape[0], str)
    outs = {o.name: o.shape[1:] for o in session.get_outputs()}
    assert outs == {"regressors": [896, 16], "classificators": [896, 1]}


def test_outputs_match_litert(session: ort.InferenceSession) -> None:
    reg, cls = session.run(["regressors", "classificators"], {"input": astronaut_input()})
    logits = cls[0, :, 0]
    top = np.argsort(-logits)[:5]
    assert top.tolist() == REF_TOP_ANCHORS
    np.testing.assert_allclose(logits[top], REF_TOP_LOGITS, atol=1e-3)
    np.testing.assert_allclose(reg[0, 141], REF_REGRESSORS_141, atol=1e-3)
    assert np.abs(logits).mean() == pytest.approx(REF_MEAN_ABS_LOGIT, rel=1e-5)
    assert np.abs(reg).mean() == pytest.approx(REF_MEAN_ABS_REGRESSOR, rel=1e-5)


def test_batch_rows_are_independent(session: ort.InferenceSession) -> None:
    x = astronaut_input()
    noise = np.random.default_rng(0).uniform(-1, 1, x.shape).astype(np.float32)
    one = session.run(None, {"input": x})
    both = session.run(None, {"input": np.concatenate([noise, x])})
    for single, batched in zip(one, both, strict=True):
        np.testing.assert_allclose(batched[1:], single, atol=1e-4)


def test_same_padding_puts_the_odd_pixel_at_the_end() -> None:
    assert _same_pads(64, 3, 2, 1) == (0, 1)  # stride 2: TFLite pads bottom/right only
    assert _same_pads(128, 5, 2, 1) == (1, 2)
    assert _same_pads(64, 3, 1, 1) == (1, 1)
    assert _same_pads(64, 1, 1, 1) == (0, 0)


def _retag_opcode(model: bytes, old: int, new: int) -> bytes:
    """The same model with every operator of builtin code `old` relabelled as `new`."""
    buf = bytearray(model)
    m = tflite.Model.GetRootAsModel(buf, 0)
    for k in range(m.OperatorCodesLength()):
        code = m.OperatorCodes(k)
        tab = code._tab
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != old:
            continue
        for field, fmt in ((4, "<b"), (10, "<i")):  # deprecated_builtin_code, builtin_code
            off = tab.Offset(field)
            if off:
                struct.pack_into(fmt, buf, tab.Pos + off, new)
    return bytes(buf)


def test_unsupported_operator_is_named(tflite_path: Path, tmp_path: Path) -> None:
    relu, tanh = tflite.BuiltinOperator.RELU, tflite.BuiltinOperator.TANH
    src = tmp_path / "tanh.tflite"
    src.write_bytes(_retag_opcode(tflite_path.read_bytes(), relu, tanh))
    with pytest.raises(ModelError, match="TANH") as info:
        convert_blazeface(src, tmp_path / "out.onnx")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.onnx").exists()


def test_unreadable_input_is_a_model_error(tflite_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.tflite"
    for content, message in (
        (b"\x00" * 64, "not a TFLite model"),
        (tflite_path.read_bytes()[:50_000], "not a readable TFLite model"),
    ):
        src.write_bytes(content)
        with pytest.raises(ModelError, match=message):
            convert_blazeface(src, tmp_path / "out.onnx")
    with pytest.raises(ModelError, match="cannot read"):
        convert_blazeface(tmp_path / "absent.tflite", tmp_path / "out.onnx")
