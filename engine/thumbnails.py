"""Poster and storyboard: a frame tap on the single decode.

The storyboard is a JPEG sprite of small frames, one every `interval` seconds, with a WebVTT
index whose cues point at `storyboard.jpg#xywh=x,y,w,h` (W3C Media Fragments URI §4.2.1,
the form players such as Video.js, JW Player and Vidstack read for scrubbing previews).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

POSTER_NAME = "poster.jpg"
STORYBOARD_NAME = "storyboard.jpg"
STORYBOARD_VTT = "storyboard.vtt"
FF_QP2LAMBDA = 118
# Storyboard layout, shared with the benchmark's ffmpeg baseline.
THUMB_INTERVAL = 1.0  # seconds between storyboard frames
THUMB_LONG_SIDE = 160  # pixels on a thumbnail's long side
THUMB_COLUMNS = 10
THUMB_MAX = 200


def encode_jpeg(frame: Any, quality: int = 3) -> bytes:
    """JPEG bytes of a video frame with FFmpeg's mjpeg encoder (`quality`: qscale 2–31)."""
    image = frame.reformat(format="yuvj420p")
    ctx: Any = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.width, image.height, "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.qscale = True
    ctx.global_quality = quality * FF_QP2LAMBDA
    ctx.open()
    image.pts = 0
    data = b"".join(bytes(p) for p in ctx.encode(image))
    data += b"".join(bytes(p) for p in ctx.encode(None))
    return data


def interest(frame: Any) -> float:
    """How much a frame shows: the spread of its (subsampled) luma. Black or flat frames ≈ 0."""
    luma = frame.to_ndarray(format="gray")[::8, ::8]
    return float(luma.std())


def vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def render_storyboard_vtt(
    count: int, interval: float, duration: float, size: tuple[int, int], columns: int
) -> str:
    """WebVTT (W3C WebVTT §4) whose cue payloads are sprite fragments `#xywh=x,y,w,h`."""
    width, height = size
    lines = ["WEBVTT", ""]
    for index in range(count):
        start = index * interval
        end = min(duration, start + interval) if index == count - 1 else start + interval
        x, y = (index % columns) * width, (index // columns) * height
        lines += [
            f"{vtt_time(start)} --> {vtt_time(max(end, start + 0.001))}",
            f"{STORYBOARD_NAME}#xywh={x},{y},{width},{height}",
            "",
        ]
    return "\n".join(lines)


def thumb_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


@dataclass
class ThumbnailTap:
    """Receives every upright output frame (any rung) with its time; keeps only what it needs."""

    outdir: Path
    interval: float = THUMB_INTERVAL
    poster_window: float = 3.0
    long_side: int = THUMB_LONG_SIDE
    columns: int = THUMB_COLUMNS
    max_thumbs: int = THUMB_MAX
    thumbs: list[np.ndarray] = field(default_factory=list)
    poster: Any = None
    poster_score: float = -1.0
    poster_time: float = 0.0
    next_thumb: float = 0.0
    next_poster: float = 0.0
    last_time: float = 0.0
    size: tuple[int, int] = (0, 0)

    def on_video(self, frame: Any, time: float) -> None:
        self.last_time = time
        if time >= self.next_thumb and len(self.thumbs) < self.max_thumbs:
            if not self.thumbs:
                self.size = thumb_size(frame.width, frame.height, self.long_side)
            small = frame.reformat(width=self.size[0], height=self.size[1], format="rgb24")
            self.thumbs.append(small.to_ndarray())
            self.next_thumb = len(self.thumbs) * self.interval
        if time >= self.next_poster and (time <= self.poster_window or self.poster is None):
            score = interest(frame)
            # Prefer a frame a little into the video over a first frame that is as good.
            if score > self.poster_score * 1.05 or self.poster is None:
                self.poster, self.poster_score, self.poster_time = frame, score, time
            self.next_poster = time + 0.5

    def close(self, duration: float) -> dict[str, Any]:
        """Write poster.jpg, storyboard.jpg and storyboard.vtt; return what was written."""
        if self.poster is None:
            return {}
        poster = encode_jpeg(self.poster, quality=2)
        board = Storyboard(self.thumbs, self.size, self.interval, self.columns)
        return write_thumbnails(self.outdir, poster, self.poster_time, board, duration)


@dataclass(frozen=True, slots=True)
class Storyboard:
    thumbs: list[np.ndarray]
    size: tuple[int, int]
    interval: float
    columns: int


def write_thumbnails(
    outdir: Path, poster: bytes, poster_time: float, board: Storyboard, duration: float
) -> dict[str, Any]:
    """poster.jpg (`poster`, its JPEG), storyboard.jpg and storyboard.vtt into `outdir`; what
    was written (the report's `output` thumbnail fields). A chunked job merges its chunks'
    taps into these arguments (engine/tapmerge.py)."""
    (outdir / POSTER_NAME).write_bytes(poster)
    width, height = board.size
    columns = min(board.columns, len(board.thumbs))
    rows = math.ceil(len(board.thumbs) / columns)
    sprite = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for index, thumb in enumerate(board.thumbs):
        y, x = (index // columns) * height, (index % columns) * width
        sprite[y : y + height, x : x + width] = thumb
    (outdir / STORYBOARD_NAME).write_bytes(
        encode_jpeg(av.VideoFrame.from_ndarray(sprite, format="rgb24"), quality=4)
    )
    vtt = render_storyboard_vtt(len(board.thumbs), board.interval, duration, board.size, columns)
    (outdir / STORYBOARD_VTT).write_text(vtt, encoding="utf-8")
    return {
        "poster": POSTER_NAME,
        "poster_time": round(poster_time, 3),
        "storyboard": STORYBOARD_NAME,
        "storyboard_vtt": STORYBOARD_VTT,
        "thumbnail_count": len(board.thumbs),
        "thumbnail_size": [width, height],
        "columns": columns,
        "interval": board.interval,
    }
