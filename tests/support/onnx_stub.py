"""Stand-in moderation models of known outputs, built as real ONNX graphs (issue 5: "routing
tested with a stub model of known outputs (that is the one place a stand-in model is right)").

The graphs take the default model's input (N×224×224×3 float32, BGR minus (104, 117, 123))
and answer N×2 `[sfw, nsfw]`, where nsfw is either a constant or a logistic function of the
frame's mean input value, so a test picks the outcome with the colour of its clip. They run
in onnxruntime exactly like the real model, through the same code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# The default model's input: BGR minus this mean.
BGR_MEAN = (104.0, 117.0, 123.0)


def _save(graph_nodes: list, initializers: list, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    frames = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 224, 224, 3])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph(graph_nodes, "stub", [frames], [probs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _const(name: str, value: float | list[int]) -> object:
    from onnx import numpy_helper

    array = np.array(value, dtype=np.int64 if isinstance(value, list) else np.float32)
    return numpy_helper.from_array(array, name)


def logistic_model(path: Path, center: float, spread: float) -> Path:
    """nsfw = sigmoid((mean(input) - center) / spread), sfw = 1 - nsfw."""
    from onnx import helper

    nodes = [
        helper.make_node("ReduceMean", ["frames"], ["m4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m4", "shape"], ["m"]),
        helper.make_node("Sub", ["m", "center"], ["shifted"]),
        helper.make_node("Div", ["shifted", "spread"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["nsfw"]),
        helper.make_node("Sub", ["one", "nsfw"], ["sfw"]),
        helper.make_node("Concat", ["sfw", "nsfw"], ["probs"], axis=1),
    ]
    consts = [
        _const("shape", [-1, 1]),
        _const("center", center),
        _const("spread", spread),
        _const("one", 1.0),
    ]
    return _save(nodes, consts, path)


def constant_model(path: Path, nsfw: float) -> Path:
    """nsfw = `nsfw` for every frame (the input is read, then ignored)."""
    logit = math.log(nsfw / (1.0 - nsfw))
    # sigmoid((m - center) / spread) with a huge spread is sigmoid(-center / spread).
    spread = 1e6
    return logistic_model(path, center=-logit * spread, spread=spread)


def expected_logistic(mean_input: float, center: float, spread: float) -> float:
    return 1.0 / (1.0 + math.exp(-(mean_input - center) / spread))
