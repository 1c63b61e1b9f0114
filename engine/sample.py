"""A sample clip the project makes itself: 1080x1920 portrait, 30 fps, with a stereo tone.

Used by the README's demo so a newcomer needs no media of their own.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def make_sample(
    path: str | Path,
    seconds: float = 10.0,
    width: int = 1080,
    height: int = 1920,
    fps: int = 30,
    variant: int = 0,
) -> Path:
    """Write the clip; `variant` > 0 gives another colour, pattern speed and tone (the demo
    seeds several creators' videos with them)."""
    path = Path(path)
    hue = variant * 1.3  # the chroma's phase: another colour per variant
    speed = 1.0 + 0.35 * variant
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    y_grid, x_grid = np.mgrid[0:height, 0:width].astype(np.float32)
    base = (x_grid / width * 160 + y_grid / height * 60).astype(np.float32)
    grain = rng.integers(0, 4, size=(height, width), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        video: Any = out.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": "20"}
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio: Any = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        frames = round(seconds * fps)
        for index in range(frames):
            t = index / fps
            wave = np.sin(x_grid / 90 + t * 3 * speed) * np.cos(y_grid / 130 - t * 2 * speed)
            luma = base + 40 * wave
            bar = int((t * 300 * speed) % height)
            luma[bar : bar + 80] = 235
            y_plane = np.clip(luma + grain, 16, 235).astype(np.uint8)
            u = 128 + int(40 * np.sin(t + hue))
            v = 128 + int(40 * np.cos(t + hue))
            u_plane = np.full((height // 2, width // 2), u, np.uint8)
            v_plane = np.full((height // 2, width // 2), v, np.uint8)
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([y_plane, u_plane.reshape(-1, width), v_plane.reshape(-1, width)]),
                format="yuv420p",
            )
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
        samples = round(seconds * 48000)
        t_audio = np.arange(samples) / 48000
        pitch = 440 * 2 ** (variant / 12)  # a semitone higher per variant
        tone = (0.2 * np.sin(2 * np.pi * pitch * t_audio)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[start : start + 1024]
            sound = av.AudioFrame.from_ndarray(
                np.stack([chunk, chunk]), format="fltp", layout="stereo"
            )
            sound.sample_rate = 48000
            sound.pts = start
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path
