"""Split and stitch (engine/chunked.py, engine/stitch.py) against the single pass of the same
source, in the same test: the stitched output passes the project's verifier, and has the single
pass's segments (count, start times, durations), an IDR at the start of every segment, fragment
sequence numbers 1..N, the same frames, and audio that starts with the video.

Sources: a generated 10.4 s 30 fps clip with 2 s segments and 2 segments per chunk (3 chunks,
the last with the short tail merged), whose keyframes (every 1.5 s) never fall on a chunk
start; real clips: a rotated one (cut into 0.5 s segments, one per chunk), 4:4:4 footage with
MP3 audio, an MPEG-TS with a single keyframe (every chunk decodes from the file's start), VFR
screen capture, and an HDR (PQ) version of real footage (tone mapping in every chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.options import TranscodeOptions
from engine.pipeline import transcode
from engine.stitch import transcode_chunked
from packager.isobmff import iter_boxes
from tests.support.clips import chunking_clip
from tests.support.ffprobe import RenditionProbe, probe_rendition
from tests.support.hdr import make_hdr_version, make_sdr_reference
from tests.support.verify import verify_output

FRAME_TOLERANCE = 1e-6  # s: segment times are exact tick counts in both outputs


@dataclass(frozen=True)
class Pair:
    source: Path
    single: Path
    chunked: Path
    single_report: dict[str, Any]
    chunked_report: dict[str, Any]


def generated_clip(dest: Path) -> Path:
    """10.4 s of 1280x720 30 fps with a tone, keyframes every 45 frames (1.5 s)."""
    if not dest.exists():
        chunking_clip(dest, "1280x720")
    return dest


def hdr_clip(media: Path, clip_dir: Path) -> Path:
    sdr = make_sdr_reference(
        media / "cockatoo.mp4", clip_dir / "chunk-cockatoo-sdr.mp4", 6, 640, 360, start=2
    )
    return make_hdr_version(sdr, clip_dir / "chunk-cockatoo-pq.mov", "pq")


# name → (how to get the source, segment seconds, segments per chunk)
SOURCES: dict[str, tuple[Callable[[Path, Path], Path], float, int]] = {
    "generated": (lambda media, clips: generated_clip(clips / "chunk-generated.mp4"), 2.0, 2),
    "rotated": (lambda media, clips: media / "rotate-buck-bunny.mp4", 0.5, 1),
    "cockatoo-mp3": (lambda media, clips: media / "cockatoo.mp4", 2.0, 2),
    "ts-one-keyframe": (lambda media, clips: media / "0.ts", 1.0, 1),
    "vfr": (lambda media, clips: media / "cursed-vfr.mp4", 2.0, 2),
    "hdr-pq": (hdr_clip, 1.0, 2),
}


@pytest.fixture(scope="module")
def pairs(
    media: Path, clip_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Pair]:
    root = tmp_path_factory.mktemp("chunked")
    cache: dict[str, Pair] = {}

    def build(name: str) -> Pair:
        if name not in cache:
            make, seconds, per_chunk = SOURCES[name]
            source = make(media, clip_dir)
            options = TranscodeOptions(segment_seconds=seconds)
            single = transcode(source, root / f"{name}-single", options)
            chunked = transcode_chunked(source, root / f"{name}-chunked", per_chunk, options)
            cache[name] = Pair(
                source, root / f"{name}-single", root / f"{name}-chunked", single, chunked
            )
        return cache[name]

    return build


def sequence_numbers(folder: Path) -> list[int]:
    numbers = []
    for path in sorted(folder.glob("*.m4s")):
        for moof in iter_boxes(path.read_bytes()):
            if moof.type == "moof":
                mfhd = next(b for b in iter_boxes(moof.payload) if b.type == "mfhd")
                numbers.append(int.from_bytes(bytes(mfhd.payload[4:8]), "big"))
    return numbers


def first_vcl_nal_type(segment: Path) -> int:
    """The NAL unit type of the first coded slice in a segment's mdat (4-byte lengths, avcC)."""
    data = segment.read_bytes()
    mdat = next(b for b in iter_boxes(data) if b.type == "mdat")
    body, pos = bytes(mdat.payload), 0
    while pos + 4 < len(body):
        size = int.from_bytes(body[pos : pos + 4], "big")
        kind = body[pos + 4] & 0x1F
        if kind in (1, 5):
            return kind
        pos += 4 + size
    raise AssertionError(f"{segment}: no coded slice")


def segment_table(rend: RenditionProbe) -> list[tuple[float | None, float]]:
    return [(seg.start, seg.duration) for seg in rend.segments]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_stitched_output_is_the_single_pass_structure(
    name: str, pairs: Callable[[str], Pair]
) -> None:
    pair = pairs(name)
    assert verify_output(pair.single, pair.source) == []
    assert verify_output(pair.chunked, pair.source) == []
    single, chunked = pair.single_report, pair.chunked_report
    assert len(chunked["chunked"]["chunks"]) >= 2
    assert chunked["chunked"]["identical_inits"]
    assert set(chunked["renditions"]) == set(single["renditions"])
    assert chunked["decode"]["output_frames"] == single["decode"]["output_frames"]
    for rung in chunked["renditions"]:
        rendition = chunked["renditions"][rung]
        assert rendition["segment_count"] == single["renditions"][rung]["segment_count"]
        assert rendition["segment_durations"] == single["renditions"][rung]["segment_durations"]
        a, b = probe_rendition(pair.chunked / rung), probe_rendition(pair.single / rung)
        for (start_a, dur_a), (start_b, dur_b) in zip(
            segment_table(a), segment_table(b), strict=True
        ):
            assert start_a is not None and start_b is not None
            assert abs(start_a - start_b) < FRAME_TOLERANCE, (rung, segment_table(a))
            assert abs(dur_a - dur_b) < FRAME_TOLERANCE, (rung, segment_table(a))
        assert len(a.packets) == len(b.packets)  # every frame, none twice
        numbers = sequence_numbers(pair.chunked / rung)  # a merged tail holds two fragments
        assert numbers == sequence_numbers(pair.single / rung) == list(range(1, len(numbers) + 1))
        if rung != "audio":
            for segment in a.segments:
                assert first_vcl_nal_type(segment.path) == 5, f"{segment.path}: not an IDR"
                assert segment.packets[0].keyframe
    video = probe_rendition(pair.chunked / next(iter(chunked["ladder"]["video"]))["name"])
    frame = 1 / float(video.stream.avg_frame_rate or video.stream.r_frame_rate)
    if chunked["ladder"]["audio"] is not None:
        audio = probe_rendition(pair.chunked / "audio")
        assert video.segments[0].start is not None and audio.segments[0].start is not None
        assert abs(video.segments[0].start - audio.segments[0].start) <= frame
        assert chunked["loudness"]["output"] is not None


def test_generated_clip_is_three_chunks_with_the_tail_merged(
    pairs: Callable[[str], Pair],
) -> None:
    report = pairs("generated").chunked_report
    assert [c["start_frame"] for c in report["chunked"]["chunks"]] == [0, 120, 240]
    assert report["decode"]["output_frames"] == 312
    for rung in ("v720", "v540", "v360"):
        assert report["renditions"][rung]["segment_durations"] == [2.0, 2.0, 2.0, 2.0, 2.4]
    # Keyframes every 45 frames: chunk 2 (frame 120) decodes from 90, chunk 3 (240) from 225.
    assert [c["frames_before_start"] for c in report["chunked"]["chunks"]] == [0, 30, 15]
    assert [c["decode_started_at"] for c in report["chunked"]["chunks"]] == [0.0, 3.0, 7.5]
