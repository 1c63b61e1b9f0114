"""A source's colour facts: primaries, transfer, matrix and HDR metadata, read from a frame.

Names are FFmpeg's (`av_color_*_name`, as ffprobe prints them). The HDR static metadata is the
decoder's frame side data: the mastering display colour volume (SMPTE ST 2086, HEVC SEI
payload 137 or the MP4 `mdcv` box) and the content light level (CTA-861.3 MaxCLL/MaxFALL,
SEI payload 144 or `clli`). Dolby Vision shows as RPU side data on each frame; its stream
configuration record (`dvcC`/`dvvC`, ETSI TS 103 572 / Dolby's ISOBMFF spec) is read from the
container by `engine.dovi`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from av.sidedata.sidedata import Type as SideDataType

PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
             8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432",
             22: "ebu3213"}  # fmt: skip
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
             8: "linear", 11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10",
             15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}  # fmt: skip
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
            9: "bt2020nc", 10: "bt2020c", 14: "ictcp"}  # fmt: skip
# The HDR transfer functions (ITU-R BT.2100): what the tone mapper calls them.
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}


def color_name(table: dict[int, str], value: Any) -> str:
    return table.get(int(value), "unknown")


@dataclass(frozen=True, slots=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display: CIE 1931 xy of R, G, B and white; luminance cd/m²."""

    red: tuple[float, float] | None
    green: tuple[float, float] | None
    blue: tuple[float, float] | None
    white_point: tuple[float, float] | None
    min_luminance: float | None
    max_luminance: float | None


@dataclass(frozen=True, slots=True)
class ContentLightLevel:
    """CTA-861.3 §3.2: brightest pixel (MaxCLL) and brightest frame average (MaxFALL), cd/m²."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True, slots=True)
class ColorInfo:
    primaries: str = "unknown"
    transfer: str = "unknown"
    matrix: str = "unknown"
    mastering_display: MasteringDisplay | None = None
    content_light_level: ContentLightLevel | None = None
    dolby_vision: dict[str, Any] | None = None

    @property
    def hdr_transfer(self) -> str | None:
        """ "pq" or "hlg" for an HDR source, else None (SDR, or untagged)."""
        return HDR_TRANSFERS.get(self.transfer)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def parse_mastering_display(data: bytes) -> MasteringDisplay:
    """`AVMasteringDisplayMetadata`: 10 AVRationals (R, G, B, white xy; min, max luminance),
    then has_primaries, has_luminance (libavutil/mastering_display_metadata.h)."""
    values = struct.unpack_from("=22i", data)
    rationals = [_ratio(values[i], values[i + 1]) for i in range(0, 20, 2)]
    has_primaries, has_luminance = values[20], values[21]

    def xy(index: int) -> tuple[float, float] | None:
        x, y = rationals[index], rationals[index + 1]
        return (x, y) if has_primaries and x is not None and y is not None else None

    return MasteringDisplay(
        red=xy(0),
        green=xy(2),
        blue=xy(4),
        white_point=xy(6),
        min_luminance=rationals[8] if has_luminance else None,
        max_luminance=rationals[9] if has_luminance else None,
    )


def parse_content_light_level(data: bytes) -> ContentLightLevel:
    """`AVContentLightMetadata`: unsigned MaxCLL, MaxFALL."""
    max_cll, max_fall = struct.unpack_from("=2I", data)
    return ContentLightLevel(max_cll=max_cll, max_fall=max_fall)


def read_color_info(frame: Any, dolby_vision: dict[str, Any] | None = None) -> ColorInfo:
    """The colour facts of a decoded video frame (the stream's first)."""
    mastering = light = None
    rpu = False
    for side in frame.side_data:
        if side.type == SideDataType.MASTERING_DISPLAY_METADATA:
            mastering = parse_mastering_display(bytes(side))
        elif side.type == SideDataType.CONTENT_LIGHT_LEVEL:
            light = parse_content_light_level(bytes(side))
        elif side.type in (SideDataType.DOVI_METADATA, SideDataType.DOVI_RPU_BUFFER):
            rpu = True
    if rpu:
        dolby_vision = {**(dolby_vision or {}), "rpu_present_in_frames": True}
    return ColorInfo(
        primaries=color_name(PRIMARIES, frame.color_primaries),
        transfer=color_name(TRANSFERS, frame.color_trc),
        matrix=color_name(MATRICES, frame.colorspace),
        mastering_display=mastering,
        content_light_level=light,
        dolby_vision=dolby_vision,
    )
