"""`choose_ladder`: which renditions to make for a given source. Pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from ladders.defaults import BUFSIZE_FACTOR, DEFAULT_RUNGS, SOURCE_BITRATE_FACTOR, RungSpec
from ladders.model import Rung


class SourceShape(Protocol):
    """What the ladder needs of a probed source (engine.source.SourceInfo satisfies it)."""

    @property
    def display_width(self) -> int: ...
    @property
    def display_height(self) -> int: ...
    @property
    def bit_rate(self) -> int | None: ...


def even(value: float) -> int:
    """Nearest even integer, at least 2 (H.264 4:2:0 needs even dimensions)."""
    return max(2, 2 * math.floor(value / 2 + 0.5))


def even_floor(value: int) -> int:
    """Largest even integer not above `value`, at least 2."""
    return max(2, value - value % 2)


def fit_short_side(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale `width`x`height` so its short side is `short_side`, keeping the aspect, even sizes."""
    if width <= height:
        return even(short_side), even(height * short_side / width)
    return even(width * short_side / height), even(short_side)


def cap_bitrate(spec: RungSpec, source_bit_rate: int | None) -> int:
    """maxrate of a rung: the table's value, capped at source x 1.3, never below the floor."""
    if not source_bit_rate:
        return spec.maxrate
    return max(spec.floor, min(spec.maxrate, round(source_bit_rate * SOURCE_BITRATE_FACTOR)))


def rung_name(width: int, height: int) -> str:
    return f"v{min(width, height)}"


def make_rung(spec: RungSpec, width: int, height: int, source_bit_rate: int | None) -> Rung:
    maxrate = cap_bitrate(spec, source_bit_rate)
    return Rung(
        name=rung_name(width, height),
        width=width,
        height=height,
        crf=spec.crf,
        maxrate=maxrate,
        bufsize=maxrate * BUFSIZE_FACTOR,
    )


def choose_ladder(source: SourceShape, table: Sequence[RungSpec] = DEFAULT_RUNGS) -> list[Rung]:
    """The rungs for `source`, largest first.

    Never upscale: rungs whose short side exceeds the source's are dropped; a source smaller
    than the smallest rung gets one rung at its own (even) size with the smallest rung's rates.
    """
    width, height = source.display_width, source.display_height
    source_short = min(width, height)
    specs = sorted(table, key=lambda s: s.short_side, reverse=True)
    rungs = [
        make_rung(spec, *fit_short_side(width, height, spec.short_side), source.bit_rate)
        for spec in specs
        if spec.short_side <= source_short
    ]
    if not rungs:
        rungs = [make_rung(specs[-1], even_floor(width), even_floor(height), source.bit_rate)]
    return rungs
