"""Sample tables of fragments built byte by byte (packager/fragments.py), and which rung
download.mp4 is made of (packager/progressive.py `download_track`): no media file needed."""

from __future__ import annotations

import struct

import pytest

from packager.errors import MalformedSegmentError, PackagerError
from packager.fragments import (
    NON_SYNC,
    SampleDefaults,
    SampleRef,
    read_fragment_samples,
    read_track_defaults,
)
from packager.model import Track
from packager.progressive import download_track
from tests.packager.boxes import box, full_box, tfdt, u32

SYNC, OTHER = 0x02000000, 0x01010000  # depends on no other / non-sync, depends on others


def trun_v1(samples: list[tuple[int, int, int]], *, data_offset: int | None, first: int) -> bytes:
    """A version-1 trun with (duration, size, composition offset) per sample."""
    flags = 0x100 | 0x200 | 0x800 | 0x004 | (0x001 if data_offset is not None else 0)
    head = u32(len(samples)) + (struct.pack(">i", data_offset) if data_offset is not None else b"")
    body = b"".join(struct.pack(">IIi", d, s, c) for d, s, c in samples)
    return full_box("trun", 1, flags, head, u32(first), body)


def moof_mdat(track_id: int, start: int, runs: list[bytes], payload: bytes) -> bytes:
    tfhd = full_box("tfhd", 0, 0x020000 | 0x20, u32(track_id, OTHER))
    moof = box("moof", full_box("mfhd", 0, 0, u32(1)), box("traf", tfhd, tfdt(start), *runs))
    return moof + box("mdat", payload)


def test_samples_carry_offsets_times_and_sync_flags() -> None:
    samples = [(512, 3, 0), (512, 2, 1536), (512, 4, -1024)]
    # The moof's size does not depend on data_offset's value: build it once to measure where
    # the payload starts (after the moof and the mdat's 8-byte header).
    start = len(moof_mdat(1, 0, [trun_v1(samples, data_offset=0, first=SYNC)], b""))
    data = moof_mdat(1, 1024, [trun_v1(samples, data_offset=start, first=SYNC)], b"AAABBCCCC")
    got = read_fragment_samples(data, 1, SampleDefaults())
    assert got == [
        SampleRef(1024, 512, 0, start, 3, True),
        SampleRef(1536, 512, 1536, start + 3, 2, False),
        SampleRef(2048, 512, -1024, start + 5, 4, False),
    ]
    assert [data[s.offset : s.offset + s.size] for s in got] == [b"AAA", b"BB", b"CCCC"]
    assert [s.presentation_time for s in got] == [1024, 3072, 1024]


def test_a_run_without_data_offset_continues_after_the_previous_one() -> None:
    first = trun_v1([(10, 2, 0)], data_offset=0, first=SYNC)
    second = trun_v1([(10, 3, 0)], data_offset=None, first=OTHER)
    start = len(moof_mdat(7, 0, [first, second], b""))
    data = moof_mdat(7, 0, [trun_v1([(10, 2, 0)], data_offset=start, first=SYNC), second], b"xxyyy")
    got = read_fragment_samples(data, 7, SampleDefaults())
    assert [(s.decode_time, s.offset, s.size, s.sync) for s in got] == [
        (0, start, 2, True),
        (10, start + 2, 3, False),
    ]
    assert read_fragment_samples(data, 8, SampleDefaults()) == []  # another track's fragment


def test_trex_defaults_fill_what_the_fragment_leaves_out() -> None:
    trex = full_box("trex", 0, 0, u32(3, 1, 1024, 6, NON_SYNC))
    init = box("ftyp", b"iso6") + box("moov", box("mvex", trex))
    defaults = read_track_defaults(init, 3)
    assert defaults == SampleDefaults(1024, 6, NON_SYNC)
    assert read_track_defaults(init, 4) == SampleDefaults()
    tfhd = full_box("tfhd", 0, 0x020000, u32(3))
    trun = full_box("trun", 0, 0x001, u32(2), struct.pack(">i", 0))
    offset = len(box("moof", box("traf", tfhd, tfdt(0), trun))) + 8
    trun = full_box("trun", 0, 0x001, u32(2), struct.pack(">i", offset))
    data = box("moof", box("traf", tfhd, tfdt(0), trun)) + box("mdat", bytes(12))
    got = read_fragment_samples(data, 3, defaults)
    assert [(s.decode_time, s.duration, s.size, s.sync) for s in got] == [
        (0, 1024, 6, False),
        (1024, 1024, 6, False),
    ]


def test_a_sample_outside_the_file_is_refused() -> None:
    data = moof_mdat(1, 0, [trun_v1([(1, 100, 0)], data_offset=0, first=SYNC)], b"short")
    with pytest.raises(MalformedSegmentError, match="outside"):
        read_fragment_samples(data, 1, SampleDefaults())


def video(name: str, width: int, height: int) -> Track:
    return Track(name, "video", "avc1.64001f", 15360, (), 0, width=width, height=height)


@pytest.mark.parametrize(
    ("sizes", "chosen"),
    [
        ([(1080, 1920), (720, 1280), (540, 960), (360, 640)], "v720"),  # portrait ladder
        ([(1920, 1080), (1280, 720), (960, 540), (640, 360)], "v720"),  # landscape
        ([(540, 960), (360, 640)], "v540"),  # the ladder stops below 720: its top rung
        ([(640, 360)], "v360"),
        ([(300, 200)], "v200"),  # a source smaller than every rung
        ([(1080, 1080), (720, 720)], "v720"),  # square
    ],
)
def test_download_rung_is_720p_or_the_top_rung_below(
    sizes: list[tuple[int, int]], chosen: str
) -> None:
    tracks = [video(f"v{min(w, h)}", w, h) for w, h in sizes]
    assert download_track(tracks).id == chosen


def test_download_needs_a_video_track() -> None:
    with pytest.raises(PackagerError):
        download_track([])
