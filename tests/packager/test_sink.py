"""FragmentSink on synthetic byte streams, cut into write() calls every which way."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from packager.errors import MalformedSegmentError
from packager.sink import FragmentSink
from tests.packager.boxes import box, fragment, init_segment

INIT = init_segment(b"")
FRAGMENTS = [
    fragment(1, 0, [512] * 3, mdat=b"a" * 300),
    box("styp", b"cmfs") + fragment(1, 1536, [512], mdat=b"b" * 70_000),
    fragment(1, 2048, [512, 256], mdat=b"c"),
]
STREAM = INIT + b"".join(FRAGMENTS) + box("mfra", box("mfro", bytes(8)))


def chunkings() -> dict[str, list[int]]:
    rng = random.Random(7)
    return {
        "whole": [len(STREAM)],
        "bytewise": [1] * len(STREAM),
        "sevens": [7] * (len(STREAM) // 7 + 1),
        "random": [rng.randint(1, 5000) for _ in range(len(STREAM) // 100)],
        "ffmpeg-like": [28, 734, 32768, 32768, 32768],
    }


def feed(sink: FragmentSink, data: bytes, sizes: list[int]) -> None:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        assert sink.write(data[pos : pos + size]) == len(data[pos : pos + size])
        pos += size
    if pos < len(data):
        sink.write(data[pos:])


@pytest.mark.parametrize("name", chunkings())
def test_split_into_init_and_segments(tmp_path: Path, name: str) -> None:
    with FragmentSink(tmp_path / "v720") as sink:
        feed(sink, STREAM, chunkings()[name])
    files = sorted(p.name for p in (tmp_path / "v720").iterdir())
    assert files == ["00001.m4s", "00002.m4s", "00003.m4s", "init.mp4"]
    assert (tmp_path / "v720" / "init.mp4").read_bytes() == INIT
    for number, expected in enumerate(FRAGMENTS, start=1):
        assert (tmp_path / "v720" / f"{number:05d}.m4s").read_bytes() == expected
    assert sink.segment_count == 3 and sink.closed


def test_file_protocol_pyav_relies_on(tmp_path: Path) -> None:
    sink = FragmentSink(tmp_path)
    assert sink.writable() and not sink.seekable() and not sink.closed
    assert not hasattr(sink, "seek") and not hasattr(sink, "tell")
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"x")


def test_segment_appears_only_when_its_mdat_is_complete(tmp_path: Path) -> None:
    sink = FragmentSink(tmp_path)
    first = INIT + FRAGMENTS[0]
    sink.write(first[:-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".00001.m4s.partial", "init.mp4"]
    sink.write(first[-1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00001.m4s", "init.mp4"]
    sink.close()


@pytest.mark.parametrize("cut", [3, len(INIT) - 1, len(INIT) + 50, len(INIT) + 400])
def test_truncated_stream_raises_on_close_and_leaves_no_partial(tmp_path: Path, cut: int) -> None:
    sink = FragmentSink(tmp_path)
    sink.write(STREAM[:cut])
    with pytest.raises(MalformedSegmentError, match="stream ended inside"):
        sink.close()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert not (tmp_path / "00001.m4s").exists()


def test_exception_in_with_block_discards_without_masking(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="encoder died"), FragmentSink(tmp_path) as sink:
        sink.write(INIT + FRAGMENTS[0][:100])
        raise RuntimeError("encoder died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.mp4"]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (FRAGMENTS[0], "before the moov"),
        (INIT + box("mdat", b"x"), "mdat without a moof"),
        (INIT + box("moof") + box("moof"), "two moof boxes"),
        (INIT + FRAGMENTS[0] + INIT, "after the init segment"),
        (INIT + b"\x00\x00\x00\x10\xff\xfe\x00\x01", "garbage box type"),
        (INIT + b"\x00\x00\x00\x00mdat", "unknown size"),
        (b"\x00\x00\x00\x04ftyp", "smaller than its 8-byte header"),
    ],
)
def test_out_of_order_or_garbage_raises(tmp_path: Path, stream: bytes, message: str) -> None:
    sink = FragmentSink(tmp_path)
    with pytest.raises(MalformedSegmentError, match=message):
        sink.write(stream)
    sink.abort()


def test_starting_a_sink_clears_an_earlier_runs_files(tmp_path: Path) -> None:
    for name in ("init.mp4", "00001.m4s", "00009.m4s", ".00010.m4s.partial"):
        (tmp_path / name).write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("keep")
    with FragmentSink(tmp_path) as sink:
        sink.write(INIT + FRAGMENTS[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00001.m4s", "init.mp4", "notes.txt"]
