"""BlazeFace full range (sparse weights behind DENSIFY, RESIZE_BILINEAR, DEPTH_TO_SPACE) -> ONNX,
checked against LiteRT's outputs on the real model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray
from skimage import data

from rapport.inference.convert_tflite import convert_blazeface
from rapport.inference.fetch import OFFLINE_PACK, fetch_member

ASSET = next(a for a in OFFLINE_PACK if a.name == "face-detection-full")

# Reference: ai-edge-litert 2.3.0's Interpreter (XNNPACK, 1 thread) on astronaut_input() below;
# the converted model matched it to within 2e-4 on this, the camera, coffee and uniform noise.
REF_TOP_ANCHORS = [549, 548, 501, 597, 500]
REF_TOP_LOGITS = [2.2711, -0.5865, -0.8477, -1.7494, -2.2824]
REF_REGRESSORS_549 = [
    -1.6129, -1.3059, 39.6982, 39.6942, -10.245, -7.4801, 6.9974, -6.2105,
    -2.4303, 3.6402, -3.1957, 9.8451, -19.7291, -6.5252, 15.8536, -3.983,
]  # fmt: skip
REF_MEAN_ABS_LOGIT = 11.156498
REF_MEAN_ABS_REGRESSOR = 8.46108


@pytest.fixture(scope="module")
def session(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    root = tmp_path_factory.mktemp("full-range")
    src = root / "face_detection_full_range_sparse.tflite"
    src.write_bytes(fetch_member(models_dir, ASSET))  # the cached, checksummed wheel member
    convert_blazeface(src, root / "model.onnx")
    return ort.InferenceSession(str(root / "model.onnx"), providers=["CPUExecutionProvider"])


def astronaut_input() -> NDArray[np.float32]:
    small = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()


def test_signature(session: ort.InferenceSession) -> None:
    (x,) = session.get_inputs()
    assert (x.name, x.shape[1:]) == ("input", [3, 192, 192])
    outs = {o.name: o.shape[1:] for o in session.get_outputs()}
    assert outs == {"Identity": [2304, 16], "Identity_1": [2304, 1]}


def test_outputs_match_litert(session: ort.InferenceSession) -> None:
    reg, cls = session.run(["Identity", "Identity_1"], {"input": astronaut_input()})
    logits = cls[0, :, 0]
    top = np.argsort(-logits)[:5]
    assert top.tolist() == REF_TOP_ANCHORS
    np.testing.assert_allclose(logits[top], REF_TOP_LOGITS, atol=1e-3)
    np.testing.assert_allclose(reg[0, 549], REF_REGRESSORS_549, atol=1e-3)
    assert np.abs(logits).mean() == pytest.approx(REF_MEAN_ABS_LOGIT, rel=1e-5)
    assert np.abs(reg).mean() == pytest.approx(REF_MEAN_ABS_REGRESSOR, rel=1e-5)
