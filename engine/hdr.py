"""Whether and how a source is tone-mapped to SDR: a `ToneMapPlan` from its colour facts.

PQ (HDR10, HDR10+, Dolby Vision 8.1's base layer) and HLG (iPhone, Dolby Vision 8.4's base
layer) sources get the `engine.tonemap` LUT. The source peak the curve rolls off from is the
content light level's MaxCLL (CTA-861.3) when present, else the mastering display's peak
(SMPTE ST 2086), else 1000 cd/m² for PQ; HLG is display-referred to its nominal 1000 cd/m²
display (ITU-R BT.2100 Table 5), so its metadata does not move the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.colorinfo import ColorInfo
from engine.tonemap import DEFAULT_PQ_PEAK, ToneMapParams, build_lut, cube_text

# MaxCLL or mastering peaks outside this range are treated as absent (broken metadata).
PLAUSIBLE_PEAK = (100.0, 10000.0)


@dataclass(frozen=True, slots=True)
class ToneMapSettings:
    """The LUT's size, interpolation and the 16-bit RGB format `lut3d` runs in.

    65 points: at 33 the HLG curve's dark, saturated corner is interpolated too coarsely
    (cockatoo HLG kept 90 % of its saturation, 98.5 % at 65); lut3d costs the same at either
    size. Tetrahedral on gbrp16le is FFmpeg's SIMD path: 8 ms a 1080x1920 frame here, where
    trilinear or rgb48le take 40+."""

    lut_size: int = 65
    interpolation: str = "tetrahedral"
    pixel_format: str = "gbrp16le"


@dataclass(frozen=True, slots=True)
class ToneMapPlan:
    params: ToneMapParams
    peak_from: str  # "max_cll", "mastering_display", "default" or "hlg_nominal"
    settings: ToneMapSettings

    def lut_text(self) -> str:
        return cube_text(build_lut(self.params, self.settings.lut_size))

    def to_json(self) -> dict[str, Any]:
        """What was done, for report.json's `tone_mapping`."""
        return {
            "applied": True,
            "from": {"pq": "PQ (SMPTE ST 2084)", "hlg": "HLG (ARIB STD-B67)"}[self.params.transfer],
            "to": "SDR BT.709 (BT.1886 gamma 2.4), limited range",
            "curve": "ITU-R BT.2390 EETF on max(R,G,B)",
            "gamut": "BT.2020 to BT.709, out-of-gamut colours desaturated toward their luminance",
            "source_peak_nits": self.params.source_peak
            if self.params.transfer == "pq"
            else self.params.hlg_peak,
            "source_peak_from": self.peak_from,
            "sdr_white_nits": self.params.sdr_white_nits,
            **({"hlg_ootf": self.params.hlg_ootf} if self.params.transfer == "hlg" else {}),
            "lut_size": self.settings.lut_size,
            "interpolation": self.settings.interpolation,
            "pixel_format": self.settings.pixel_format,
        }


def source_peak(color: ColorInfo) -> tuple[float, str]:
    """The brightest light the content holds, and where that figure came from."""
    low, high = PLAUSIBLE_PEAK
    light = color.content_light_level
    if light is not None and low <= light.max_cll <= high:
        return float(light.max_cll), "max_cll"
    mastering = color.mastering_display
    peak = mastering.max_luminance if mastering is not None else None
    if peak is not None and low <= peak <= high:
        return float(peak), "mastering_display"
    return DEFAULT_PQ_PEAK, "default"


def plan_tone_map(color: ColorInfo, settings: ToneMapSettings | None) -> ToneMapPlan | None:
    """The plan for an HDR source; None for SDR or when tone mapping is turned off."""
    transfer = color.hdr_transfer
    if transfer is None or settings is None:
        return None
    if transfer == "hlg":
        return ToneMapPlan(ToneMapParams("hlg"), "hlg_nominal", settings)
    peak, peak_from = source_peak(color)
    return ToneMapPlan(ToneMapParams("pq", source_peak=peak), peak_from, settings)


def not_applied(color: ColorInfo) -> dict[str, Any]:
    """report.json's `tone_mapping` for a source that was not tone-mapped."""
    return {"applied": False, "source_transfer": color.transfer}
