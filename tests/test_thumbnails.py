"""Storyboard WebVTT rendering and thumbnail geometry (pure), and the poster's frame choice."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.thumbnails import ThumbnailTap, render_storyboard_vtt, thumb_size, vtt_time


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00:00.000"),
        (1.5, "00:00:01.500"),
        (61.25, "00:01:01.250"),
        (3725.001, "01:02:05.001"),
    ],
)
def test_vtt_time(seconds: float, text: str) -> None:
    assert vtt_time(seconds) == text


def test_storyboard_vtt_tiles_row_by_row() -> None:
    vtt = render_storyboard_vtt(count=12, interval=1.0, duration=11.5, size=(90, 160), columns=10)
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT"
    cues = [line for line in lines if "#xywh=" in line]
    assert len(cues) == 12
    assert cues[0] == "storyboard.jpg#xywh=0,0,90,160"
    assert cues[9] == "storyboard.jpg#xywh=810,0,90,160"
    assert cues[10] == "storyboard.jpg#xywh=0,160,90,160"
    assert "00:00:11.000 --> 00:00:11.500" in vtt  # the last cue ends with the video


@pytest.mark.parametrize(
    ("size", "thumb"),
    [((1080, 1920), (90, 160)), ((1920, 1080), (160, 90)), ((720, 720), (160, 160))],
)
def test_thumb_size(size: tuple[int, int], thumb: tuple[int, int]) -> None:
    assert thumb_size(*size, long_side=160) == thumb


def frame_of(level: int, noisy: bool) -> av.VideoFrame:
    rng = np.random.default_rng(level)
    pixels = np.full((320, 180, 3), level, np.uint8)
    if noisy:
        pixels = rng.integers(0, 255, size=(320, 180, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
    frame.time_base = Fraction(1, 30)
    return frame


def test_poster_skips_a_black_opening(tmp_path: Path) -> None:
    tap = ThumbnailTap(tmp_path)
    for index in range(90):  # 3 s at 30 fps: black for the first second, then detail
        tap.on_video(frame_of(0, noisy=index >= 30), index / 30)
    written = tap.close(duration=3.0)
    assert written["poster_time"] >= 1.0
    assert written["thumbnail_count"] == 3
    assert (tmp_path / "poster.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    sprite = av.open(str(tmp_path / "storyboard.jpg"))
    stream = sprite.streams.video[0]
    assert (stream.codec_context.width, stream.codec_context.height) == (90 * 3, 160)
