"""Decoded frames made into model input (`prepare`: `fit` ``crop`` or ``pad``, optionally
round-tripped through JPEG) and into the small copies moderators see (`thumbnail`).

``crop`` squashes the frame to `resize`² and center-crops `input_size`² (the Caffe-era
classifiers); ``pad`` scales its long side to `input_size` and pads the rest with black,
keeping its aspect (detectors: a portrait frame squashed to a square would be a different
picture to them).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from classifiers.moderation.config import ModelConfig


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
