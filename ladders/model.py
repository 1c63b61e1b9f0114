"""What to encode: rungs of the ladder. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rung:
    """One video rendition of the ladder."""

    name: str  # folder and representation id, e.g. "v720"
    width: int  # even, display (upright) width
    height: int  # even, display (upright) height
    crf: int
    maxrate: int  # bit/s
    bufsize: int  # bits

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


@dataclass(frozen=True, slots=True)
class AudioRung:
    """The single AAC-LC stereo rendition shared by every video rendition."""

    name: str = "audio"
    codec: str = "aac"
    bitrate: int = 128_000
    sample_rate: int = 48_000
    channels: int = 2
