"""One ONNX Runtime session with its configuration's pre- and post-processing
(`ModerationModel`), and the start-up check that loads it (`check_model`).

- ``classifier``: one row of label scores per frame, N×len(labels).
- ``detector``: a YOLOv8-style object detector, output N×(4+C)×B (or N×B×(4+C)): for each
  of B candidate boxes, its centre, width and height, then C class scores (already
  sigmoid-activated, as Ultralytics exports them). A frame's score for a label is the
  highest score any box gives that class. That is at least the confidence of the detector's
  own best detection of the class (its post-processing, a confidence threshold then NMS,
  never drops the highest box; it files each box under its top class only, so a class
  runner-up in a box counts here and not there: this errs toward review).

A model that is missing, not ONNX, or whose inputs/outputs do not fit its configuration is
a `ModelError` naming the path; `check_model` is what the service calls at start-up. A model
whose batch dimension is fixed (many exports are 1×...) is run that many frames at a time.
The session never spins (ONNX Runtime's default busy-waits between batches, stealing the
cores the encoders need).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.moderation.config import DEFAULT_MODEL_PACKAGE, ModelConfig, ModelError

BOX_VALUES = 4  # a detector's box: centre x, centre y, width, height


class ModerationModel:
    """One ONNX Runtime session with the configuration's pre- and post-processing."""

    def __init__(self, config: ModelConfig) -> None:
        config.validate()
        self.config = config
        self.path = config.model_path
        if not self.path:
            raise ModelError(
                f"moderation model: no path configured and the default model's package "
                f"({DEFAULT_MODEL_PACKAGE.replace('_', '-')}) is not installed"
            )
        if not Path(self.path).is_file():
            raise ModelError(f"moderation model {self.path} does not exist or is not a file")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                self.path, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(
                f"moderation model {self.path} is not a usable ONNX model: {exc}"
            ) from None
        self._check_io()

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        size, channels = self.config.input_size, 3
        expected = (
            [size, size, channels] if self.config.layout == "NHWC" else [channels, size, size]
        )
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [list(i.shape) for i in inputs]
            raise ModelError(f"moderation model {self.path}: needs one 4-D input, has {shapes}")
        shape = list(inputs[0].shape)
        if any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected, strict=True)):
            raise ModelError(
                f"moderation model {self.path}: input {inputs[0].name} is {shape}, the "
                f"configuration ({self.config.layout}, {size}) needs [N, {expected}]"
            )
        if self.config.kind == "detector":
            self._check_detector_output(outputs)
        else:
            last = outputs[0].shape[-1] if outputs and outputs[0].shape else None
            if not outputs or (isinstance(last, int) and last != len(self.config.labels)):
                raise ModelError(
                    f"moderation model {self.path}: output has {last} values, the "
                    f"configuration names {len(self.config.labels)} labels "
                    f"{list(self.config.labels)}"
                )
        self.input_name = inputs[0].name
        batch = shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        probe = np.zeros((1, size, size, 3), dtype=np.uint8)
        try:
            self.scores(probe)
        except Exception as exc:
            raise ModelError(f"moderation model {self.path} fails on a test input: {exc}") from None

    def tensor(self, batch: np.ndarray) -> np.ndarray:
        """uint8 N×S×S×3 (the configuration's channel order) → the model's float32 input."""
        config = self.config
        x = batch.astype(np.float32)
        if config.scale != 1.0:
            x *= np.float32(config.scale)
        x -= np.asarray(config.mean, dtype=np.float32)
        if any(s != 1.0 for s in config.std):
            x /= np.asarray(config.std, dtype=np.float32)
        if config.layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x

    def _check_detector_output(self, outputs: list[Any]) -> None:
        labels = len(self.config.labels)
        shape = list(outputs[0].shape) if outputs and outputs[0].shape else []
        # The class axis is the fixed one (boxes are often symbolic: they follow the input
        # size); with both symbolic, the first run tells.
        known = [d for d in shape[1:] if isinstance(d, int)]
        fits = len(shape) == 3 and (not known or BOX_VALUES + labels in known)
        if not fits:
            raise ModelError(
                f"moderation model {self.path}: a detector's output must be [N, 4 + labels, "
                f"boxes] (or [N, boxes, 4 + labels]); it is {_dims(shape)}, and the "
                f"configuration names {labels} labels, so 4 + labels = {BOX_VALUES + labels}"
            )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for a uint8 batch, `fixed_batch` frames at a time when
        the model's batch dimension is fixed (the last run padded with blank frames)."""
        step = self.fixed_batch
        if step is None or len(batch) == step:
            return np.asarray(self.session.run(None, {self.input_name: self.tensor(batch)})[0])
        parts = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            if len(chunk) < step:
                blank = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, blank])
            out = np.asarray(self.session.run(None, {self.input_name: self.tensor(chunk)})[0])
            parts.append(out[: min(step, len(batch) - start)])
        return np.concatenate(parts)

    def _box_scores(self, raw: np.ndarray) -> np.ndarray:
        """A detector's N×(4+C)×B (or N×B×(4+C)) output → N×C: each class's best box."""
        labels = len(self.config.labels)
        if raw.ndim == 3 and raw.shape[1] == BOX_VALUES + labels:
            classes = raw[:, BOX_VALUES:, :]
        elif raw.ndim == 3 and raw.shape[2] == BOX_VALUES + labels:
            classes = raw[:, :, BOX_VALUES:].transpose(0, 2, 1)
        else:
            raise ModelError(
                f"moderation model {self.path}: detector output shape {raw.shape}, expected "
                f"[N, {BOX_VALUES + labels}, boxes]"
            )
        classes = classes.astype(np.float64)
        if self.config.activation == "sigmoid":
            classes = 1.0 / (1.0 + np.exp(-classes))
        elif self.config.activation == "softmax":  # over the classes of each box
            exp = np.exp(classes - classes.max(axis=1, keepdims=True))
            classes = exp / exp.sum(axis=1, keepdims=True)
        if classes.shape[2] == 0:  # no candidate boxes at all
            return np.zeros(classes.shape[:2])
        return np.asarray(classes.max(axis=2))

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """N×len(labels) probabilities for a uint8 batch from `prepare`."""
        raw = self._run(batch)
        if self.config.kind == "detector":
            if raw.ndim != 3 or len(raw) != len(batch):
                raise ModelError(
                    f"moderation model {self.path}: detector output shape {raw.shape} for "
                    f"{len(batch)} frames"
                )
            return self._box_scores(raw)
        raw = raw.reshape(len(batch), -1).astype(np.float64)
        if raw.shape[1] != len(self.config.labels):
            raise ModelError(f"moderation model {self.path}: output shape {raw.shape}")
        if self.config.activation == "softmax":
            exp = np.exp(raw - raw.max(axis=1, keepdims=True))
            raw = exp / exp.sum(axis=1, keepdims=True)
        elif self.config.activation == "sigmoid":
            raw = 1.0 / (1.0 + np.exp(-raw))
        return raw


def _dims(shape: list[Any]) -> str:
    """A tensor shape as ONNX declares it, symbolic dimensions shortened (`?` when long)."""
    return "[" + ", ".join(str(d) if len(str(d)) <= 12 else "?" for d in shape) + "]"


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        stat = Path(path).stat()
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _check_cached(config: ModelConfig, key: tuple[str, int, int]) -> None:
    ModerationModel(config)


def check_model(config: ModelConfig) -> None:
    """Load the model once and score a blank frame; raise `ModelError` naming the path.

    Cached per configuration and file state, so a process that builds many apps (tests)
    loads the model once, while a file replaced on disk is checked again.
    """
    _check_cached(config, _file_key(config.model_path))
