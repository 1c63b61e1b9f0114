"""probe on the real clips in ../shared/media, and the input policy's limits."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest

from engine.errors import (
    NotMediaError,
    NoVideoStreamError,
    TooLargeError,
    TooLongError,
    TooSmallError,
)
from engine.policy import InputPolicy
from engine.source import SourceInfo, output_rate, probe, snap_rate

EXPECTED = {
    # name: (display w, h, codec, output fps, vfr, audio?, extra checks)
    "cockatoo.mp4": (1280, 720, "h264", Fraction(20), False, True),
    "rotate-buck-bunny.mp4": (1080, 1920, "h264", Fraction(24), False, True),
    "cursed-vfr.mp4": (3026, 1386, "h264", Fraction(7), True, False),
    "video-h265.mp4": (1920, 1080, "hevc", Fraction(30), False, True),
    "sar_2x1.mp4": (1280, 360, "h264", Fraction(30), False, False),
    "edts.mp4": (853, 480, "h264", Fraction(25), False, True),
    "transparency.webm": (1280, 720, "vp9", Fraction(60), False, False),
    "0.ts": (720, 720, "h264", Fraction(60), False, True),
    "test.webm": (640, 480, "h264", Fraction(30000, 1001), True, False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_real_media(shared_media: Path, name: str) -> None:
    width, height, codec, fps, vfr, has_audio = EXPECTED[name]
    info = probe(shared_media / name)
    assert (info.display_width, info.display_height) == (width, height)
    assert info.video_codec == codec
    assert info.output_frame_rate == fps
    assert info.variable_frame_rate is vfr
    assert (info.audio is not None) is has_audio
    assert info.duration > 1.0
    assert info.bit_rate and info.bit_rate > 0
    assert info.to_json()["display_width"] == width


def test_probe_details(shared_media: Path) -> None:
    rotated = probe(shared_media / "rotate-buck-bunny.mp4")
    assert (rotated.coded_width, rotated.coded_height) == (1920, 1080)
    assert rotated.rotation in (90, 270)
    assert probe(shared_media / "cockatoo.mp4").pixel_format == "yuv444p"
    assert probe(shared_media / "video-h265.mp4").color_range == "full"
    assert probe(shared_media / "sar_2x1.mp4").sample_aspect_ratio == 2
    assert probe(shared_media / "0.ts").container == "mpegts"
    webm = probe(shared_media / "test.webm")  # container has no duration: measured instead
    assert 3.0 < webm.duration < 3.3


@pytest.mark.parametrize("name", ["multiple-aac-tracks.mp4", "toothsome-dts.mp4"])
def test_audio_only_is_rejected(shared_media: Path, name: str) -> None:
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        probe(shared_media / name)


def test_not_media(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(NotMediaError):
        probe(text)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotMediaError, match="empty"):
        probe(empty)


@pytest.mark.parametrize(
    ("measured", "snapped"),
    [
        (Fraction(2997, 100), Fraction(30000, 1001)),
        (Fraction(30), Fraction(30)),
        (Fraction(2398, 100), Fraction(24000, 1001)),
        (Fraction(722, 100), Fraction(7)),
        (Fraction(5994, 100), Fraction(60000, 1001)),
    ],
)
def test_snap_rate(measured: Fraction, snapped: Fraction) -> None:
    assert snap_rate(measured) == snapped


@pytest.mark.parametrize(
    ("rate", "out"),
    [
        (Fraction(120), Fraction(60)),
        (Fraction(100), Fraction(50)),
        (Fraction(240), Fraction(60)),
        (Fraction(60), Fraction(60)),
        (Fraction(25), Fraction(25)),
    ],
)
def test_output_rate_is_at_most_60(rate: Fraction, out: Fraction) -> None:
    assert output_rate(rate) == out


def base_source(**changes: object) -> SourceInfo:
    source = SourceInfo(
        path="x.mp4",
        file_size=1000,
        container="mp4",
        duration=10.0,
        video_codec="h264",
        video_profile="High",
        coded_width=1080,
        coded_height=1920,
        sample_aspect_ratio=Fraction(1),
        rotation=0,
        display_width=1080,
        display_height=1920,
        frame_rate=Fraction(30),
        variable_frame_rate=False,
        frame_count=300,
        pixel_format="yuv420p",
        color_range="limited",
        bit_rate=4_000_000,
        container_bit_rate=None,
        start_time=0.0,
        audio=None,
    )
    return dataclasses.replace(source, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"duration": 181.0}, TooLongError, "too long"),
        ({"coded_width": 4200, "display_width": 4200}, TooLargeError, "4096"),
        ({"display_width": 100, "coded_width": 100}, TooSmallError, "144"),
        ({"file_size": 3 * 1024**3}, TooLargeError, "file too large"),
    ],
)
def test_policy_rejects(changes: dict[str, object], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        InputPolicy().enforce(base_source(**changes))


def test_policy_accepts_defaults_edge() -> None:
    InputPolicy().enforce(base_source(duration=180.0))
    InputPolicy().enforce(base_source(display_width=144, coded_width=144))
