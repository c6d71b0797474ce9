from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rapport.config import RuntimeSettings
from rapport.errors import ModelError
from rapport.inference.runtime import create_session


def _add_one_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_session_runs_on_cpu_with_the_configured_threads(tmp_path: Path) -> None:
    settings = RuntimeSettings(intra_op_threads=2, inter_op_threads=3)
    session = create_session(_add_one_model(tmp_path / "m.onnx"), settings)

    (y,) = session.run(None, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(y, np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    assert session.get_providers() == ["CPUExecutionProvider"]
    opts = session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 3)
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


@pytest.mark.parametrize("content", [None, b"not a protobuf \x00\xff" * 10])
def test_unloadable_file_is_a_one_line_model_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "broken.onnx"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ModelError) as info:
        create_session(path, RuntimeSettings())

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot load {path} in ONNX Runtime: ")
    assert info.value.__cause__ is not None
