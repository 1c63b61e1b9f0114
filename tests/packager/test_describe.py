"""describe_track on track folders built from synthetic boxes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from packager.cmaf import describe_track, muxer_options
from packager.errors import MalformedSegmentError, PackagerError, UnsupportedMediaError
from tests.packager.boxes import (
    audio_entry,
    avcc,
    esds,
    fragment,
    init_segment,
    visual_entry,
)

AVC = visual_entry("avc1", 1080, 1920, avcc(0x64, 0x00, 0x28))


def write_track(folder: Path, init: bytes, fragments: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "init.mp4").write_bytes(init)
    for number, data in enumerate(fragments, start=1):
        (folder / f"{number:05d}.m4s").write_bytes(data)
    return folder


def test_ntsc_video_from_trex_defaults(tmp_path: Path) -> None:
    init = init_segment(AVC, timescale=30000, width=1080, height=1920, trex_duration=1001)
    folder = write_track(
        tmp_path / "v1080",
        init,
        [fragment(1, 0, None, count=60), fragment(1, 60060, None, count=30)],
    )
    track = describe_track(folder, "v1080")
    assert (track.kind, track.codecs, track.timescale) == ("video", "avc1.640028", 30000)
    assert (track.width, track.height, track.frame_rate) == (1080, 1920, Fraction(30000, 1001))
    assert [(s.number, s.start, s.duration) for s in track.segments] == [
        (1, 0, 60060),
        (2, 60060, 30030),
    ]
    assert track.init_size == len(init)
    assert track.segments[0].size == (folder / "00001.m4s").stat().st_size


def test_frame_rate_is_the_most_common_sample_duration(tmp_path: Path) -> None:
    init = init_segment(AVC, timescale=15360)
    folder = write_track(tmp_path / "v", init, [fragment(1, 0, [512] * 5 + [1024])])
    assert describe_track(folder, "v").frame_rate == 30


def test_size_from_sample_entry_when_tkhd_has_none(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "v", init_segment(AVC), [fragment(1, 0, [512])])
    track = describe_track(folder, "v")
    assert (track.width, track.height) == (1080, 1920)


def test_audio_track(tmp_path: Path) -> None:
    init = init_segment(
        audio_entry(2, 48000, esds(bytes([0x11, 0x90]))),
        handler="soun",
        timescale=48000,
        language=0x15C7,
    )
    folder = write_track(
        tmp_path / "audio", init, [fragment(1, 0, [1024] * 94), fragment(1, 96256, [1024] * 10)]
    )
    track = describe_track(folder, "audio")
    assert (track.kind, track.codecs, track.sample_rate, track.channels) == (
        "audio",
        "mp4a.40.2",
        48000,
        2,
    )
    assert track.language == "eng" and track.frame_rate == 0
    assert track.duration == Fraction(104 * 1024, 48000)


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        (["00001.m4s", "00003.m4s"], MalformedSegmentError, "00002.m4s is missing"),
        (["00002.m4s"], MalformedSegmentError, "00001.m4s is missing"),
        ([], PackagerError, "no segments"),
    ],
)
def test_segment_numbering(
    tmp_path: Path, names: list[str], error: type[Exception], message: str
) -> None:
    folder = write_track(tmp_path / "v", init_segment(AVC), [])
    for name in names:
        (folder / name).write_bytes(fragment(1, 0, [512]))
    (folder / ".00009.m4s.partial").write_bytes(b"ignored")
    with pytest.raises(error, match=message):
        describe_track(folder, "v")


def test_missing_init(tmp_path: Path) -> None:
    tmp_path.joinpath("v").mkdir()
    with pytest.raises(PackagerError, match=r"no init\.mp4"):
        describe_track(tmp_path / "v", "v")


def test_truncated_segment_names_the_file(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "v", init_segment(AVC), [fragment(1, 0, [512])[:-3]])
    with pytest.raises(MalformedSegmentError, match=r"00001\.m4s"):
        describe_track(folder, "v")


def test_truncated_init(tmp_path: Path) -> None:
    init = init_segment(AVC)
    for cut in range(0, len(init), 7):
        folder = write_track(tmp_path / f"v{cut}", init[:cut], [fragment(1, 0, [512])])
        with pytest.raises(MalformedSegmentError):
            describe_track(folder, "v")


def test_unsupported_handler(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "t", init_segment(AVC, handler="subt"), [])
    with pytest.raises(UnsupportedMediaError, match="'subt'"):
        describe_track(folder, "t")


@pytest.mark.parametrize(
    ("kind", "seconds", "expected"),
    [
        (
            "video",
            2.0,
            {"movflags": "frag_keyframe+empty_moov+default_base_moof+skip_sidx+skip_trailer"},
        ),
        (
            "audio",
            2.0,
            {
                "movflags": "empty_moov+default_base_moof+skip_sidx+skip_trailer+cmaf",
                "frag_duration": "2000000",
            },
        ),
        (
            "audio",
            1.5,
            {
                "movflags": "empty_moov+default_base_moof+skip_sidx+skip_trailer+cmaf",
                "frag_duration": "1500000",
            },
        ),
    ],
)
def test_muxer_options(kind: str, seconds: float, expected: dict[str, str]) -> None:
    assert muxer_options(kind, seconds) == expected  # type: ignore[arg-type]


def test_muxer_options_reject_nonpositive_duration() -> None:
    with pytest.raises(ValueError, match="positive"):
        muxer_options("audio", 0)
