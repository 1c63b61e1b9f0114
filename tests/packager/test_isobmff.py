"""Box parsing on bytes built in the test: fields, default fallbacks, truncation."""

from __future__ import annotations

import struct

import pytest

from packager.errors import MalformedSegmentError
from packager.isobmff import (
    find_box,
    iter_boxes,
    parse_mdhd,
    parse_tfdt,
    parse_tfhd,
    parse_tkhd,
    parse_trun,
    read_box_header,
    read_fragment_timing,
)
from tests.packager.boxes import box, fragment, full_box, init_segment, tfdt, tfhd, trun, u32


def test_iter_boxes_walks_siblings_and_nesting() -> None:
    data = box("ftyp", b"iso6") + box("moov", box("trak", box("tkhd")), box("mvex"))
    assert [(b.type, b.offset, b.size) for b in iter_boxes(data)] == [
        ("ftyp", 0, 12),
        ("moov", 12, 32),
    ]
    found = find_box(data, "moov/trak/tkhd")
    assert found is not None and found.size == 8
    assert find_box(data, "moov/udta") is None


def test_largesize_and_uuid_headers() -> None:
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 3) + b"abc"
    uuid = struct.pack(">I4s", 8 + 16 + 2, b"uuid") + bytes(range(16)) + b"hi"
    boxes = list(iter_boxes(large + uuid))
    assert [(b.type, bytes(b.payload)) for b in boxes] == [("mdat", b"abc"), ("uuid", b"hi")]


def test_size_zero_extends_to_end() -> None:
    (only,) = iter_boxes(struct.pack(">I4s", 0, b"mdat") + b"tail")
    assert only.size == 12 and bytes(only.payload) == b"tail"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00", "truncated box header"),
        (struct.pack(">I4s", 4, b"free"), "smaller than its 8-byte header"),
        (struct.pack(">I4s", 100, b"moof") + bytes(10), "only 18 remain"),
        (struct.pack(">I4sI", 1, b"mdat", 0), "truncated box header"),
        (struct.pack(">I4sQ", 1, b"mdat", 12), "smaller than its 16-byte header"),
    ],
)
def test_malformed_headers_raise(data: bytes, message: str) -> None:
    with pytest.raises(MalformedSegmentError, match=message):
        list(iter_boxes(data))


def test_read_box_header_waits_for_more_bytes() -> None:
    assert read_box_header(b"\x00\x00\x00\x10moo") is None
    assert read_box_header(struct.pack(">I4s", 1, b"mdat") + b"\x00") is None
    header = read_box_header(struct.pack(">I4s", 24, b"moof"))
    assert header is not None and (header.type, header.size, header.header_size) == ("moof", 24, 8)


def test_tkhd_and_mdhd() -> None:
    init = init_segment(b"", timescale=30000, width=1080, height=1920, language=0x15C7)
    tkhd = find_box(init, "moov/trak/tkhd")
    mdhd = find_box(init, "moov/trak/mdia/mdhd")
    assert tkhd is not None and mdhd is not None
    header = parse_tkhd(tkhd.payload)
    assert (header.track_id, header.width, header.height) == (1, 1080, 1920)
    media = parse_mdhd(mdhd.payload)
    assert (media.timescale, media.language) == (30000, "eng")


def test_mdhd_version_1_and_zero_timescale() -> None:
    v1 = full_box("mdhd", 1, 0, bytes(16), u32(48000), bytes(8), struct.pack(">HH", 0x55C4, 0))
    assert parse_mdhd(box("x", v1)[8 + 8 :]).timescale == 48000
    zero = full_box("mdhd", 0, 0, u32(0, 0, 0, 0), bytes(4))
    with pytest.raises(MalformedSegmentError, match="timescale is 0"):
        parse_mdhd(zero[8:])


@pytest.mark.parametrize(("version", "value"), [(0, 90_000), (1, 2**40 + 7)])
def test_tfdt_versions(version: int, value: int) -> None:
    assert parse_tfdt(tfdt(value, version)[8:]) == value


def test_tfhd_default_duration_optional() -> None:
    assert parse_tfhd(tfhd(3, 512)[8:]).default_sample_duration == 512
    assert parse_tfhd(tfhd(3)[8:]).default_sample_duration is None
    with_offset = full_box("tfhd", 0, 0x01 | 0x02 | 0x08, u32(1), bytes(8), u32(1), u32(1001))
    assert parse_tfhd(with_offset[8:]).default_sample_duration == 1001


def test_trun_durations_present_or_not() -> None:
    assert parse_trun(trun([512, 512, 1024])[8:]) == (3, (512, 512, 1024))
    assert parse_trun(trun(None, count=4)[8:]) == (4, None)


def test_trun_sample_count_larger_than_box() -> None:
    lying = full_box("trun", 0, 0x100, u32(1_000_000), u32(512))
    with pytest.raises(MalformedSegmentError, match="do not fit"):
        parse_trun(lying[8:])


@pytest.mark.parametrize(
    ("data", "trex", "start", "durations"),
    [
        (fragment(1, 0, [512] * 3), 0, 0, (512,) * 3),
        (fragment(1, 30720, None, default=1001, count=2), 0, 30720, (1001, 1001)),
        (fragment(1, 96256, None, count=2), 1024, 96256, (1024, 1024)),
        (fragment(1, 0, [512]) + fragment(1, 512, [512, 500]), 0, 0, (512, 512, 500)),
    ],
    ids=["trun", "tfhd-default", "trex-default", "two-fragments"],
)
def test_fragment_timing(data: bytes, trex: int, start: int, durations: tuple[int, ...]) -> None:
    timing = read_fragment_timing(data, 1, trex)
    assert (timing.base_media_decode_time, timing.sample_durations) == (start, durations)
    assert timing.duration == sum(durations)


def test_fragment_timing_ignores_other_tracks() -> None:
    with pytest.raises(MalformedSegmentError, match="no moof/traf for track 2"):
        read_fragment_timing(fragment(1, 0, [512]), 2, 0)


def test_every_truncation_of_a_fragment_raises() -> None:
    data = fragment(1, 1024, [512, 512, 512], mdat=b"")
    for cut in range(len(data)):
        with pytest.raises(MalformedSegmentError):
            read_fragment_timing(data[:cut], 1, 0)


def test_garbage_raises() -> None:
    garbage = bytes((i * 73 + 11) % 256 for i in range(200))
    with pytest.raises(MalformedSegmentError):
        read_fragment_timing(garbage, 1, 0)
