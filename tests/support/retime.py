"""Move a CMAF track on the media timeline by rewriting its fragments in place (tests only).

`shift_tfdt` adds a number of timescale ticks to every `tfdt` (ISO/IEC 14496-12 §8.8.12,
baseMediaDecodeTime) of a segment file: the track's samples then decode and present that much
later, which is how a test builds an output whose audio and video are known to be out of step.
"""

from __future__ import annotations

from pathlib import Path

from packager.errors import MalformedSegmentError
from packager.isobmff import Box, find_box, iter_boxes


def shift_tfdt(segment: Path, ticks: int) -> int:
    """Add `ticks` to each `moof/traf/tfdt` of `segment`; returns how many were moved.

    A version-0 box keeps its 32-bit field, so a result past 2**32 - 1 (or below 0) raises
    MalformedSegmentError rather than wrapping."""
    data = bytearray(segment.read_bytes())
    moved = 0
    for moof in iter_boxes(data):
        if moof.type != "moof":
            continue
        for traf in iter_boxes(moof.payload):
            tfdt = find_box(traf.payload, "tfdt") if traf.type == "traf" else None
            if tfdt is None:
                continue
            width = 8 if tfdt.payload[0] == 1 else 4
            field = tfdt.payload[4 : 4 + width]
            value = int.from_bytes(field, "big") + ticks
            if not 0 <= value < 1 << (8 * width):
                raise MalformedSegmentError(
                    f"{segment}: tfdt {value} does not fit version {tfdt.payload[0]}"
                )
            field[:] = value.to_bytes(width, "big")
            moved += 1
    if not moved:
        raise MalformedSegmentError(f"{segment}: no moof/traf/tfdt to move")
    segment.write_bytes(data)
    return moved


def add_edit_list(init: Path, media_time: int) -> None:
    """Give the single track of a CMAF header one edit (ISO/IEC 14496-12 §8.6.6, `elst`
    version 0): presentation starts at `media_time` (media timescale ticks), for the whole
    track (segment_duration 0, as fragmented files have no duration up front), at rate 1.

    The `edts` goes right after `tkhd` (§8.3.1 box order); `trak` and `moov` grow by its
    size. Used to measure issue 13's "trun v0 + an edit list" design in real players."""
    original = init.read_bytes()
    moov = next((box for box in iter_boxes(original) if box.type == "moov"), None)
    if moov is None:
        raise MalformedSegmentError(f"{init}: no moov")
    traks = [box for box in iter_boxes(moov.payload) if box.type == "trak"]
    if len(traks) != 1 or find_box(traks[0].payload, "edts") is not None:
        raise MalformedSegmentError(f"{init}: needs exactly one trak and no edts")
    tkhd = find_box(traks[0].payload, "tkhd")
    if tkhd is None:
        raise MalformedSegmentError(f"{init}: no tkhd")
    trak_at = moov.offset + _header_size(moov) + traks[0].offset
    insert_at = trak_at + _header_size(traks[0]) + tkhd.offset + tkhd.size
    elst = b"".join((
        (28).to_bytes(4, "big"), b"elst", bytes(4),  # size, type, version 0 + flags
        (1).to_bytes(4, "big"),  # entry_count
        bytes(4), media_time.to_bytes(4, "big", signed=True),  # segment_duration, media_time
        (1).to_bytes(2, "big"), bytes(2),  # media_rate 1.0
    ))  # fmt: skip
    edts = (8 + len(elst)).to_bytes(4, "big") + b"edts" + elst
    data = bytearray(original)
    for at in (moov.offset, trak_at):  # 32-bit sizes: a header is small
        size = int.from_bytes(data[at : at + 4], "big")
        data[at : at + 4] = (size + len(edts)).to_bytes(4, "big")
    data[insert_at:insert_at] = edts
    init.write_bytes(data)


def _header_size(box: Box) -> int:
    return box.size - len(box.payload)
