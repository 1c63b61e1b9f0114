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
from typing import Any

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


# --------------------------------------------------------------------- a stand-in detector

# The colour detector's classes: one per RGB channel, in channel order.
COLOUR_LABELS = ("red", "green", "blue")


def colour_detector(
    path: Path,
    size: int = 64,
    grid: int = 4,
    *,
    batch: int | str = "N",
    boxes_last: bool = True,
    labels: int = len(COLOUR_LABELS),
) -> Path:
    """A YOLOv8-shaped detector of known outputs: input N×3×size×size (NCHW, RGB scaled to
    0..1, as NudeNet's), one candidate box per cell of a `grid`×`grid` tiling, whose score
    for class c is the mean of channel c over that cell (`expected_colour_scores`).

    Output N×(4+C)×grid² (`boxes_last`, Ultralytics' layout) or N×grid²×(4+C); the first 4
    rows are each cell's centre, width and height in input pixels. `labels` other than 3
    repeats the channels (a model whose class count a test can make disagree with its
    configuration). `batch` fixes the batch dimension (many exports are 1×...).
    """
    import onnx
    from onnx import TensorProto, helper

    cell = size // grid
    assert cell * grid == size, "size must be a multiple of grid"
    cells = grid * grid
    centres = (np.arange(grid, dtype=np.float32) + 0.5) * cell
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    boxes = np.stack([cx.ravel(), cy.ravel(), np.full(cells, cell), np.full(cells, cell)])
    channel_of_class = [c % 3 for c in range(labels)]
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[cell, cell],
                         strides=[cell, cell]),
        helper.make_node("Reshape", ["pooled", "flat"], ["means"]),  # N×3×cells
        helper.make_node("Gather", ["means", "channels"], ["scores"], axis=1),  # N×C×cells
        # N×1×cells of zeros + 1×4×cells: the boxes, broadcast over the batch.
        helper.make_node("ReduceMean", ["scores"], ["one_row"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["one_row", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "boxes"], ["box_rows"]),
        helper.make_node("Concat", ["box_rows", "scores"], ["rows"], axis=1),
    ]  # fmt: skip
    if boxes_last:
        nodes.append(helper.make_node("Identity", ["rows"], ["output0"]))
    else:
        nodes.append(helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1]))
    consts: list[Any] = [
        _const("flat", [0, 3, cells]),
        _const("channels", channel_of_class),
        _const("zero", 0.0),
        _array("boxes", boxes.reshape(1, 4, cells)),
    ]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])
    shape = [batch, 4 + labels, cells] if boxes_last else [batch, cells, 4 + labels]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "colour_detector", [images], [output], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _array(name: str, value: np.ndarray) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def expected_colour_scores(prepared: np.ndarray, grid: int) -> np.ndarray:
    """What `colour_detector` answers for one prepared RGB frame (uint8 S×S×3), reduced as
    the detector adapter reduces it: per class, the best cell's channel mean (0..1)."""
    size = prepared.shape[0]
    cell = size // grid
    x = prepared.astype(np.float64) / 255.0
    means = x.reshape(grid, cell, grid, cell, 3).mean(axis=(1, 3))  # grid×grid×3
    return np.asarray(means.reshape(-1, 3).max(axis=0))
