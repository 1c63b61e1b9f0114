"""The default ladder table: what a short-video platform serves (vertical first, 9:16)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RungSpec:
    """One row of the ladder table, keyed by the output's short side."""

    short_side: int
    crf: int
    maxrate: int  # bit/s before the source cap
    floor: int  # bit/s: the cap never goes below this


# 1080x1920 / 720x1280 / 540x960 / 360x640 for 9:16; landscape and square mirror the short side.
DEFAULT_RUNGS: tuple[RungSpec, ...] = (
    RungSpec(short_side=1080, crf=23, maxrate=5_000_000, floor=1_500_000),
    RungSpec(short_side=720, crf=23, maxrate=3_000_000, floor=900_000),
    RungSpec(short_side=540, crf=23, maxrate=1_800_000, floor=600_000),
    RungSpec(short_side=360, crf=24, maxrate=900_000, floor=300_000),
)

# PeerTube caps every rung at the input's bitrate x 1.3, so low-bitrate uploads aren't inflated.
SOURCE_BITRATE_FACTOR = 1.3
# VBV buffer as a multiple of maxrate: one second of data. A tighter buffer than the usual 2x
# keeps every 2 s segment close to maxrate, so the HLS BANDWIDTH a player plans with is near
# the rung's nominal rate (a 2x buffer let a 5 Mb/s rung peak at 6.4 Mb/s on grainy footage).
BUFSIZE_FACTOR = 1
