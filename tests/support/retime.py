"""Move a CMAF track on the media timeline by rewriting its fragments in place (tests only).

`shift_tfdt` adds a number of timescale ticks to every `tfdt` (ISO/IEC 14496-12 §8.8.12,
baseMediaDecodeTime) of a segment file: the track's samples then decode and present that much
later, which is how a test builds an output whose audio and video are known to be out of step.
"""

from __future__ import annotations

from pathlib import Path

from packager.errors import MalformedSegmentError
from packager.isobmff import find_box, iter_boxes


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
