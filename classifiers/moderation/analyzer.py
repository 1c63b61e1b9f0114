"""The moderation tap (`ModerationAnalyzer`): sampled frames scored by the ONNX model while the
decode goes on, summarised per counted label with the worst frames' JPEGs.

It resizes each sampled frame on the decode thread (~4 ms with the JPEG round trip) and
scores them in batches on a background thread while the decode goes on
(`inference="thread"`, the default) or all after the decode (`"end"`; the model is loaded in
the background either way). bench/safety_bench.py measures both: on this 2-core machine the
encoders leave ~8 % of the CPU idle, which the thread uses, while scoring at the end adds its
time to the job's (30 s upload: +3.9 % wall for the thread, +8.4 % at the end).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from classifiers.moderation.config import ModelConfig
from classifiers.moderation.frames import prepare, thumbnail
from classifiers.moderation.model import ModerationModel
from classifiers.moderation.scores import sustained_scores
from classifiers.sampling import FrameSampler

log = logging.getLogger("reelforge.classifiers.moderation")

Inference = Literal["thread", "end"]


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
            # Always a full batch (the last frame repeated): ONNX Runtime's results for a frame
            # depend on the batch's size, never on the other frames in it, so a frame scores
            # the same wherever it falls (a chunked job's chunks batch other frames together).
            arrays = [array for _, array in items]
            arrays += arrays[-1:] * (self.config.batch_size - len(arrays))
            scores = model.scores(np.stack(arrays))[: len(items)]
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

    def samples(self) -> tuple[list[float], list[np.ndarray], float]:
        """Score what is left: the sampled times, their score rows, the seconds waited."""
        wait = self._finish()
        return self.times, self.rows, wait

    def timing(self, wait: float) -> dict[str, Any]:
        return {
            "mode": self.inference,
            "tap_s": round(self.tap_seconds, 4),
            "tap_cpu_s": round(self.tap_cpu_seconds, 4),
            "load_s": round(self.load_seconds, 4),
            "inference_s": round(self.inference_seconds, 4),
            "inference_cpu_s": round(self.inference_cpu_seconds, 4),
            "wait_s": round(wait, 4),
        }

    def result(self) -> dict[str, Any]:
        times, rows, wait = self.samples()
        sampling = {**self.sampler.reasons, "interval": round(self.sampler.interval, 3)}
        return summarize(
            self.config, times, rows, sampling, self.worst, self.confirm_window,
            self.write_images, self.timing(wait), self.error,
        )  # fmt: skip

    def write_images(self, times: set[float]) -> dict[float, str]:
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


def summarize(
    config: ModelConfig,
    times: list[float],
    rows: list[np.ndarray],
    sampling: dict[str, Any],
    worst_count: int,
    confirm_window: float,
    write_images: Callable[[set[float]], dict[float, str]],
    timing: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    """The analyzer's result from its sampled times and score rows (float32, the model's),
    the worst frames' images written by `write_images` ({rounded time: file name})."""
    labels = list(config.labels)
    matrix = np.array(rows).reshape(len(rows), len(labels))
    categories: dict[str, Any] = {}
    worst_times: set[float] = set()
    for label in config.counted:
        column = matrix[:, labels.index(label)]
        order = np.argsort(-column, kind="stable")[:worst_count]
        worst = [{"time": round(times[i], 3), "score": round(float(column[i]), 4)} for i in order]
        worst_times.update(times[i] for i in order)
        sustained = sustained_scores(times, column, confirm_window)
        categories[label] = {
            "max": round(float(column.max()), 4) if len(column) else 0.0,
            "p90": round(float(np.percentile(column, 90)), 4) if len(column) else 0.0,
            "sustained": round(float(sustained.max()), 4) if len(column) else 0.0,
            "worst": worst,
        }
    images = write_images(worst_times)
    for category in categories.values():
        for entry in category["worst"]:
            entry["image"] = images.get(entry["time"])
    return {
        "model": Path(config.model_path).name,
        "kind": config.kind,
        "labels": labels,
        "counted": list(config.counted),
        "frames": len(times),
        "sampling": sampling,
        "categories": categories,
        "frame_scores": [
            {"time": round(t, 3), **dict(zip(labels, np.round(row, 4).tolist(), strict=True))}
            for t, row in zip(times, matrix, strict=True)
        ],
        "timing": timing,
        "error": error,
    }
