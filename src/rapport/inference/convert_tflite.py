"""Convert MediaPipe's BlazeFace TFLite models (short and full range) to ONNX, without TensorFlow.

The flatbuffer is read with the `tflite` package and each operator is mapped to ONNX (opset 17).
Only what those models use is supported (float32 activations, fp16 constants behind DEQUANTIZE,
the full-range model's sparse fp16 weights behind DENSIFY); anything else raises ModelError naming
the operator, so a changed upstream model fails loudly.

Layout: every rank-4 activation is NCHW in ONNX (TFLite's are NHWC); weights are transposed at
conversion time and RESHAPE goes through NHWC so flattening order matches TFLite exactly. TFLite's
SAME padding is written out as explicit, possibly asymmetric, pads (extra row/column at the end).
The batch axis is dynamic; spatial sizes are the model's fixed ones.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tflite
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from rapport.errors import ModelError

OPSET = 17
_IR_VERSION = 8  # opset 17 needs IR >= 8; keeping it low lets older onnxruntime load the file
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
_NHWC_AXIS_TO_NCHW = (0, 2, 3, 1)
_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}
_ACT = tflite.ActivationFunctionType


def convert_blazeface(tflite_path: Path, onnx_path: Path) -> None:
    """Write the ONNX equivalent of `tflite_path`: input float32 [N,3,H,W] in [-1, 1], outputs
    named as in the TFLite model (short range: regressors [N,896,16], classificators [N,896,1];
    full range: Identity [N,2304,16], Identity_1 [N,2304,1]).
    """
    try:
        data = tflite_path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {tflite_path}: {e.strerror}") from e
    model = tflite_to_onnx(data)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    onnx.save(model, tmp)
    tmp.replace(onnx_path)


def tflite_to_onnx(data: bytes) -> onnx.ModelProto:
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelError("not a TFLite model (no TFL3 identifier)")
    try:
        graph = _Converter(tflite.Model.GetRootAsModel(data, 0), data).run()
    except (IndexError, ValueError, TypeError, struct.error) as e:  # a truncated flatbuffer
        raise ModelError(f"not a readable TFLite model: {str(e).splitlines()[0]}") from e
    out = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rapport"
    )
    out.ir_version = _IR_VERSION
    try:
        onnx.checker.check_model(out)
        onnx.shape_inference.infer_shapes(out, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ModelError(f"converted model is invalid: {str(e).splitlines()[0]}") from e
    return out


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME: output ceil(size/stride); the odd pixel of padding goes at the end."""
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


_SPARSE_CSR = 1  # tflite.DimensionType.SPARSE_CSR
_INDEX_VECTORS = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}


def _index_vector(kind: int, table: Any) -> NDArray[np.int64]:
    if kind not in _INDEX_VECTORS or table is None:
        raise ModelError(f"TFLite sparse index vector type {kind} is not supported")
    vec = _INDEX_VECTORS[kind]()
    vec.Init(table.Bytes, table.Pos)
    return np.asarray(vec.ValuesAsNumpy(), np.int64)


def _densify(values: NDArray[Any], shape: list[int], sparsity: Any) -> NDArray[Any]:
    """A sparse constant (TFLite's CSR-per-dimension format) as a dense array of `shape`.

    Only the layout TFLite's converter writes for unblocked weights is supported: traversal order
    equal to the tensor's dimension order and no block map. Dimensions are walked outermost first;
    a DENSE one enumerates 0..size-1, a SPARSE_CSR one the indices of its segment. The leaves come
    out in storage order, so the i-th stored value lands at the i-th coordinate.
    """
    order = list(sparsity.TraversalOrderAsNumpy()) if sparsity.TraversalOrderLength() else []
    if sparsity.BlockMapLength() or order != list(range(len(shape))):
        raise ModelError("TFLite block-sparse or reordered sparse tensors are not supported")
    pos = np.zeros(1, np.int64)  # per partial path: its position in the current level
    coords = np.zeros((1, 0), np.int64)
    for level in range(sparsity.DimMetadataLength()):
        dim = sparsity.DimMetadata(level)
        if dim.Format() == _SPARSE_CSR:
            segments = _index_vector(dim.ArraySegmentsType(), dim.ArraySegments())
            indices = _index_vector(dim.ArrayIndicesType(), dim.ArrayIndices())
            starts, counts = segments[pos], segments[pos + 1] - segments[pos]
            pos = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            coords = np.concatenate([np.repeat(coords, counts, axis=0), indices[pos, None]], 1)
        else:
            n = int(dim.DenseSize())
            pos = (pos[:, None] * n + np.arange(n)).ravel()
            coords = np.concatenate(
                [np.repeat(coords, n, axis=0), np.tile(np.arange(n), len(coords))[:, None]], 1
            )
    if len(coords) != values.size or (coords >= np.array(shape)).any():
        raise ModelError("TFLite sparse tensor does not match its shape")
    dense = np.zeros(shape, values.dtype)
    dense[tuple(coords.T)] = values
    return dense


class _Converter:
    def __init__(self, model: Any, data: bytes) -> None:
        if model.SubgraphsLength() != 1:
            raise ModelError("TFLite models with several subgraphs are not supported")
        self.model, self.data, self.g = model, data, model.Subgraphs(0)
        self.names: dict[int, str] = {}  # activation tensor -> ONNX value name
        self.consts: dict[int, NDArray[Any]] = {}  # constant tensor -> value (TFLite layout)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.handlers: dict[str, Callable[[Any, list[int], int], None]] = {
            "DEQUANTIZE": self._dequantize,
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "ADD": self._add,
            "RELU": self._relu,
            "MAX_POOL_2D": self._max_pool,
            "PAD": self._pad,
            "RESHAPE": self._reshape,
            "CONCATENATION": self._concat,
            "DENSIFY": self._densify,
            "RESIZE_BILINEAR": self._resize_bilinear,
            "DEPTH_TO_SPACE": self._depth_to_space,
        }

    # ---- tensors
    def shape(self, i: int) -> list[int]:
        return [int(d) for d in self.g.Tensors(i).ShapeAsNumpy()] if self.rank(i) else []

    def rank(self, i: int) -> int:
        return int(self.g.Tensors(i).ShapeLength())

    def const(self, i: int) -> NDArray[Any] | None:
        if i in self.consts:
            return self.consts[i]
        t = self.g.Tensors(i)
        buf = self.model.Buffers(t.Buffer())
        if buf.DataLength() > 0:
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = self.data[buf.Offset() : buf.Offset() + buf.Size()]
        else:
            return None
        if t.Type() not in _DTYPES:
            raise ModelError(f"TFLite tensor type {t.Type()} is not supported")
        value = np.frombuffer(raw, dtype=_DTYPES[t.Type()])
        sparsity = t.Sparsity()
        if sparsity is None:
            value = value.reshape(self.shape(i))
        else:  # read dense: DENSIFY of a constant is then the identity
            value = _densify(value, self.shape(i), sparsity)
        self.consts[i] = value
        return value

    def value(self, i: int) -> str:
        """ONNX name of tensor i; a constant becomes an initializer (rank 4 in NCHW)."""
        if i in self.names:
            return self.names[i]
        c = self.const(i)
        if c is None:
            raise ModelError(f"tensor {self.g.Tensors(i).Name().decode()} has no producer")
        return self.init(f"c{i}", c.transpose(_TO_NCHW) if c.ndim == 4 else c)

    def init(self, name: str, value: NDArray[Any]) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    # ---- graph
    def run(self) -> onnx.GraphProto:
        g = self.g
        if g.InputsLength() != 1:
            raise ModelError("only single-input TFLite models are supported")
        x = g.Inputs(0)
        if g.Tensors(x).Type() != tflite.TensorType.FLOAT32 or self.rank(x) != 4:
            raise ModelError("the TFLite input must be float32 NHWC")
        _, h, w, c = self.shape(x)
        self.names[x] = "input"
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])]
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            name = self.op_name(op)
            handler = self.handlers.get(name)
            if handler is None:
                raise ModelError(f"TFLite operator {name} is not supported by the converter")
            ins = [int(op.Inputs(j)) for j in range(op.InputsLength())]
            handler(op, ins, int(op.Outputs(0)))
        outputs = []
        for j in range(g.OutputsLength()):
            i = g.Outputs(j)
            name = g.Tensors(i).Name().decode()
            if self.rank(i) == 4:  # hand back TFLite's layout
                self.node("Transpose", [self.value(i)], name, perm=_TO_NHWC)
            else:
                self.node("Identity", [self.value(i)], name)
            dims: list[str | int] = ["N", *self.shape(i)[1:]]
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        return helper.make_graph(self.nodes, "blazeface", inputs, outputs, self.inits)

    def op_name(self, op: Any) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == tflite.BuiltinOperator.CUSTOM:
            return f"CUSTOM:{code.CustomCode().decode()}"
        return str(tflite.utils.BUILTIN_OPCODE2NAME.get(builtin, f"#{builtin}"))

    def options(self, op: Any, cls: Any) -> Any:
        table = op.BuiltinOptions()
        opts = cls()
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
        return opts

    def activation(self, x: str, fused: int, out: int) -> None:
        """Apply a fused activation and bind the result to TFLite tensor `out`."""
        name = f"t{out}"
        if fused == _ACT.NONE:
            self.names[out] = x
        elif fused == _ACT.RELU:
            self.names[out] = self.node("Relu", [x], name)
        elif fused == _ACT.RELU6:
            lo = self.init(f"{name}_lo", np.array(0, np.float32))
            hi = self.init(f"{name}_hi", np.array(6, np.float32))
            self.names[out] = self.node("Clip", [x, lo, hi], name)
        else:
            raise ModelError(f"TFLite fused activation {fused} is not supported")

    # ---- operators
    def _dequantize(self, op: Any, ins: list[int], out: int) -> None:
        c = self.const(ins[0])
        if c is None or c.dtype != np.float16:
            raise ModelError("TFLite operator DEQUANTIZE is supported only on fp16 constants")
        self.consts[out] = c.astype(np.float32)  # exact: every fp16 is a float32

    def _conv(self, op: Any, ins: list[int], out: int) -> None:
        depthwise = self.op_name(op) == "DEPTHWISE_CONV_2D"
        cls = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
        o = self.options(op, cls)
        w = self.const(ins[1])
        if w is None:
            raise ModelError("TFLite convolutions with non-constant weights are not supported")
        _, h_in, w_in, c_in = self.shape(ins[0])
        if depthwise:  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw], one group per input channel
            kernel, group = w.transpose(3, 0, 1, 2), c_in
        else:  # [O, kh, kw, I] -> [O, I, kh, kw]
            kernel, group = w.transpose(_TO_NCHW), 1
        kh, kw = kernel.shape[2:]
        sh, sw, dh, dw = o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor()
        pads = [0, 0, 0, 0]
        if o.Padding() == tflite.Padding.SAME:
            (pads[0], pads[2]), (pads[1], pads[3]) = (
                _same_pads(h_in, kh, sh, dh),
                _same_pads(w_in, kw, sw, dw),
            )
        inputs = [self.value(ins[0]), self.init(f"w{out}", kernel.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.value(ins[2]))
        y = self.node(
            "Conv",
            inputs,
            f"conv{out}",
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            dilations=[dh, dw],
            pads=pads,
            group=group,
        )
        self.activation(y, o.FusedActivationFunction(), out)

    def _add(self, op: Any, ins: list[int], out: int) -> None:
        o = self.options(op, tflite.AddOptions)
        y = self.node("Add", [self.value(ins[0]), self.value(ins[1])], f"add{out}")
        self.activation(y, o.FusedActivationFunction(), out)

    def _relu(self, op: Any, ins: list[int], out: int) -> None:
        self.activation(self.value(ins[0]), _ACT.RELU, out)

    def _max_pool(self, op: Any, ins: list[int], out: int) -> None:
        o = self.options(op, tflite.Pool2DOptions)
        _, h_in, w_in, _ = self.shape(ins[0])
        kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
        pads = [0, 0, 0, 0]
        if o.Padding() == tflite.Padding.SAME:  # MaxPool ignores padded cells, as TFLite does
            (pads[0], pads[2]), (pads[1], pads[3]) = (
                _same_pads(h_in, kh, sh, 1),
                _same_pads(w_in, kw, sw, 1),
            )
        y = self.node(
            "MaxPool",
            [self.value(ins[0])],
            f"pool{out}",
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            pads=pads,
        )
        self.activation(y, o.FusedActivationFunction(), out)

    def _pad(self, op: Any, ins: list[int], out: int) -> None:
        p = self.const(ins[1])
        if p is None:
            raise ModelError("TFLite PAD with non-constant paddings is not supported")
        p = p.astype(np.int64)
        if len(p) == 4:
            p = p[list(_TO_NCHW)]
        pads = self.init(f"pads{out}", np.concatenate([p[:, 0], p[:, 1]]))
        self.names[out] = self.node("Pad", [self.value(ins[0]), pads], f"t{out}")

    def _reshape(self, op: Any, ins: list[int], out: int) -> None:
        src, dst = self.shape(ins[0]), self.shape(out)
        if src[0] != dst[0]:
            raise ModelError("TFLite RESHAPE across the batch axis is not supported")
        x = self.value(ins[0])
        if len(src) == 4:
            x = self.node("Transpose", [x], f"nhwc{out}", perm=_TO_NHWC)
        shape = self.init(f"shape{out}", np.array([0, *dst[1:]], np.int64))  # 0: keep batch
        y = self.node("Reshape", [x, shape], f"reshape{out}")
        if len(dst) == 4:
            y = self.node("Transpose", [y], f"nchw{out}", perm=_TO_NCHW)
        self.names[out] = y

    def _concat(self, op: Any, ins: list[int], out: int) -> None:
        o = self.options(op, tflite.ConcatenationOptions)
        rank = self.rank(out)
        axis = o.Axis() % rank
        if rank == 4:
            axis = _NHWC_AXIS_TO_NCHW[axis]
        y = self.node("Concat", [self.value(i) for i in ins], f"concat{out}", axis=axis)
        self.activation(y, o.FusedActivationFunction(), out)

    def _densify(self, op: Any, ins: list[int], out: int) -> None:
        c = self.const(ins[0])
        if c is None:
            raise ModelError("TFLite operator DENSIFY is supported only on constants")
        self.consts[out] = c  # densified when read

    def _resize_bilinear(self, op: Any, ins: list[int], out: int) -> None:
        o = self.options(op, tflite.ResizeBilinearOptions)
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():  # TF clamps the source coordinate at 0, as ONNX's linear does
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        x = self.value(ins[0])
        _, oh, ow, _ = self.shape(out)  # sizes: N and C from the input (dynamic batch), then H, W
        shape = self.node("Shape", [x], f"shape{out}")
        start = self.init(f"nc_start{out}", np.array([0], np.int64))
        stop = self.init(f"nc_stop{out}", np.array([2], np.int64))
        nc = self.node("Slice", [shape, start, stop], f"nc{out}")
        hw = self.init(f"hw{out}", np.array([oh, ow], np.int64))
        sizes = self.node("Concat", [nc, hw], f"sizes{out}", axis=0)
        self.names[out] = self.node(
            "Resize",
            [x, "", "", sizes],
            f"t{out}",
            mode="linear",
            coordinate_transformation_mode=mode,
        )

    def _depth_to_space(self, op: Any, ins: list[int], out: int) -> None:
        o = self.options(op, tflite.DepthToSpaceOptions)
        # TF's NHWC depth order (block row, block column, channel) is ONNX's DCR mode.
        self.names[out] = self.node(
            "DepthToSpace", [self.value(ins[0])], f"t{out}", blocksize=o.BlockSize(), mode="DCR"
        )
