"""Keras 2 HDF5 model (fer's mini-Xception) -> ONNX, reading the file with h5py only.

Only the layer kinds that model uses are supported; anything else is refused, never approximated.
Keras is NHWC, the ONNX graph is NCHW with a dynamic batch ("N"). Keras/TF 'same' padding puts the
odd pixel at the end (bottom/right), so pads are computed explicitly per layer from static sizes.
BatchNormalization is emitted as is; ONNX Runtime folds it into the preceding Conv at load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from rapport.errors import ModelError

OPSET: Final = 17
INPUT_NAME: Final = "input"

Shape = tuple[int, ...]
"""(C, H, W) for feature maps, (C,) after global pooling; batch left out."""


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding along one axis: (before, after), the extra pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Builder:
    def __init__(self, weights: Any) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, layer: str, short: str) -> NDArray[np.float32] | None:
        """Weight `short` ('kernel', 'gamma', ...) of `layer`, or None if the layer has none."""
        group = self.weights[layer]
        for full in group.attrs.get("weight_names", []):
            full = full.decode() if isinstance(full, bytes) else str(full)
            if full.rsplit("/", 1)[-1].split(":")[0] == short:
                return np.asarray(group[full], dtype=np.float32)
        return None

    def need(self, layer: str, short: str) -> NDArray[np.float32]:
        w = self.weight(layer, short)
        if w is None:
            raise ModelError(f"layer {layer!r} has no {short!r} weights")
        return w

    def const(self, name: str, value: NDArray[np.float32]) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _pads(
    cfg: dict[str, Any], shape: Shape, kernel: tuple[int, int], strides: tuple[int, int]
) -> list[int]:
    if cfg["padding"] == "valid":
        return [0, 0, 0, 0]
    if cfg["padding"] != "same":
        raise ModelError(f"unsupported padding {cfg['padding']!r} in layer {cfg['name']!r}")
    (t, b), (left, r) = (same_pads(shape[i + 1], kernel[i], strides[i]) for i in (0, 1))
    return [t, left, b, r]


def _out_hw(
    shape: Shape, kernel: tuple[int, int], strides: tuple[int, int], pads: list[int]
) -> Shape:
    h = (shape[1] + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    w = (shape[2] + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    return (h, w)


def _activation(b: _Builder, kind: str, x: str, out: str) -> str:
    if kind == "linear":
        return x
    if kind == "relu":
        return b.node("Relu", [x], out)
    if kind == "softmax":
        return b.node("Softmax", [x], out, axis=1)  # NCHW channels == Keras' last axis
    raise ModelError(f"unsupported activation {kind!r}")


def _conv(b: _Builder, cls: str, cfg: dict[str, Any], x: str, shape: Shape) -> tuple[str, Shape]:
    name = cfg["name"]
    if cfg.get("data_format", "channels_last") != "channels_last" or tuple(
        cfg.get("dilation_rate", (1, 1))
    ) != (1, 1):
        raise ModelError(f"unsupported data_format or dilation in layer {name!r}")
    kernel = (int(cfg["kernel_size"][0]), int(cfg["kernel_size"][1]))
    strides = (int(cfg["strides"][0]), int(cfg["strides"][1]))
    pads = _pads(cfg, shape, kernel, strides)
    geo = {"kernel_shape": list(kernel), "strides": list(strides), "pads": pads}
    bias = b.need(name, "bias") if cfg.get("use_bias", True) else None
    if cls == "Conv2D":
        w = b.need(name, "kernel")
        inputs = [x, b.const(f"{name}/W", w.transpose(3, 2, 0, 1))]  # HWIO -> OIHW
    else:
        dw, pw = b.need(name, "depthwise_kernel"), b.need(name, "pointwise_kernel")
        kh, kw, cin, mult = dw.shape
        # TF depthwise output channel c*mult + m -> ONNX group conv weight [cin*mult, 1, kh, kw]
        dw_onnx = dw.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]
        x = b.node(
            "Conv", [x, b.const(f"{name}/DW", dw_onnx)], f"{name}/depthwise", group=cin, **geo
        )
        inputs = [x, b.const(f"{name}/PW", pw.transpose(3, 2, 0, 1))]
        geo = {"kernel_shape": [1, 1]}
    if bias is not None:
        inputs.append(b.const(f"{name}/B", bias))
    out = b.node("Conv", inputs, name, **geo)
    hw = _out_hw(shape, kernel, strides, pads)
    return _activation(b, cfg.get("activation", "linear"), out, f"{name}/act"), (
        int(cfg["filters"]),
        *hw,
    )


def _layer(
    b: _Builder, cls: str, cfg: dict[str, Any], xs: list[str], shapes: list[Shape]
) -> tuple[str, Shape]:
    name, x, shape = cfg["name"], xs[0], shapes[0]
    if cls in ("Conv2D", "SeparableConv2D"):
        if cls == "SeparableConv2D" and int(cfg.get("depth_multiplier", 1)) < 1:
            raise ModelError(f"bad depth_multiplier in layer {name!r}")
        return _conv(b, cls, cfg, x, shape)
    if cls == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, 3) or len(shape) != 3:
            raise ModelError(f"unsupported BatchNormalization axis in layer {name!r}")
        c = shape[0]
        gamma = b.weight(name, "gamma")
        beta = b.weight(name, "beta")
        mean, var = b.need(name, "moving_mean"), b.need(name, "moving_variance")
        params = [
            gamma if gamma is not None else np.ones(c, np.float32),
            beta if beta is not None else np.zeros(c, np.float32),
            mean,
            var,
        ]
        ins = [x] + [b.const(f"{name}/{i}", p) for i, p in enumerate(params)]
        return b.node("BatchNormalization", ins, name, epsilon=float(cfg["epsilon"])), shape
    if cls == "Activation":
        return _activation(b, cfg["activation"], x, name), shape
    if cls == "MaxPooling2D":
        kernel = (int(cfg["pool_size"][0]), int(cfg["pool_size"][1]))
        s = cfg.get("strides") or cfg["pool_size"]
        strides = (int(s[0]), int(s[1]))
        pads = _pads(cfg, shape, kernel, strides)  # MaxPool ignores padded cells, as TF does
        out = b.node(
            "MaxPool", [x], name, kernel_shape=list(kernel), strides=list(strides), pads=pads
        )
        return out, (shape[0], *_out_hw(shape, kernel, strides, pads))
    if cls == "Add":
        if len(set(shapes)) != 1:
            raise ModelError(f"Add of mismatched shapes in layer {name!r}")
        return b.node("Sum" if len(xs) > 2 else "Add", xs, name), shape
    if cls == "GlobalAveragePooling2D":
        pooled = b.node("GlobalAveragePool", [x], f"{name}/pool")
        return b.node("Flatten", [pooled], name, axis=1), (shape[0],)
    raise ModelError(f"unsupported Keras layer {cls} ({name!r})")


def convert_mini_xception(h5_path: Path, onnx_path: Path) -> None:
    """Convert a Keras 2 functional model saved with weights to an ONNX file at `onnx_path`."""
    with h5py.File(h5_path, "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ModelError(f"{h5_path.name} is not a Keras model file with weights")
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)["config"]
        b = _Builder(f["model_weights"])
        tensors: dict[str, tuple[str, Shape]] = {}
        graph_inputs = []
        for layer in config["layers"]:
            cls, cfg = layer["class_name"], layer["config"]
            cfg = {**cfg, "name": layer["name"]}
            if cls == "InputLayer":
                _, h, w, c = cfg["batch_input_shape"]
                graph_inputs.append(
                    helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", c, h, w])
                )
                tensors[layer["name"]] = (INPUT_NAME, (c, h, w))
                continue
            if len(layer["inbound_nodes"]) != 1:
                raise ModelError(f"shared layer {layer['name']!r} is not supported")
            srcs = [tensors[n[0]] for n in layer["inbound_nodes"][0]]
            tensors[layer["name"]] = _layer(b, cls, cfg, [s[0] for s in srcs], [s[1] for s in srcs])
        if len(graph_inputs) != 1 or len(config["output_layers"]) != 1:
            raise ModelError("only single-input, single-output models are supported")
        out_name, out_shape = tensors[config["output_layers"][0][0]]
    output = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", *out_shape])
    graph = helper.make_graph(b.nodes, "mini_xception", graph_inputs, [output], b.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rapport"
    )
    model.ir_version = 8  # readable by any onnxruntime >= 1.14
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(onnx_path))
