"""HDR → SDR tone mapping as a 3D LUT (pure numpy), applied by FFmpeg's `lut3d` filter.

The LUT maps non-linear BT.2020 R'G'B' (PQ or HLG, full-range 0..1, as `scale` converts the
decoded Y'CbCr) to non-linear BT.709 R'G'B' for a BT.1886 display:

1. linearize: SMPTE ST 2084 EOTF (PQ, absolute nits), or the ITU-R BT.2100 HLG inverse OETF
   followed by the HLG system gamma for a display of nominal peak `Lw` (BT.2100 Table 5),
   per component by default (see `hlg_ootf_per_component`), or on luminance;
2. BT.2020 → BT.709 primaries in linear light (ITU-R BT.2087 §2, matrix from the primaries);
   colours outside BT.709 are desaturated toward their own luminance until no component is
   negative (luminance and hue kept, ITU-R BT.2407 §3 "gamut mapping" idea, not clipping);
3. tone curve: the ITU-R BT.2390 §5.4 EETF (Hermite knee in the PQ domain) on max(R, G, B),
   from the source peak (MaxCLL, else the mastering display's peak, else 1000 nits) to the SDR
   peak, RGB scaled by the same ratio so hue and saturation survive;
4. HDR reference white (203 nits, ITU-R BT.2408 §2.2) is SDR 100 %: luminance is divided by
   `sdr_white_nits` and encoded with the inverse BT.1886 EOTF (gamma 2.4, black at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

# SMPTE ST 2084 §5.3 constants.
PQ_M1 = 2610 / 16384
PQ_M2 = 2523 / 4096 * 128
PQ_C1 = 3424 / 4096
PQ_C2 = 2413 / 4096 * 32
PQ_C3 = 2392 / 4096 * 32
PQ_PEAK = 10000.0

# ITU-R BT.2100 Table 5 (HLG) constants.
HLG_A = 0.17883277
HLG_B = 1 - 4 * HLG_A
HLG_C = 0.5 - HLG_A * np.log(4 * HLG_A)
HLG_NOMINAL_PEAK = 1000.0

# ITU-R BT.2408 §2.2: HDR reference (diffuse) white.
REFERENCE_WHITE_NITS = 203.0
# Source peak when the stream carries no metadata: HDR10's common mastering peak.
DEFAULT_PQ_PEAK = 1000.0
BT1886_GAMMA = 2.4

# CIE 1931 xy of the primaries and white (ITU-R BT.709 Table 1 item 1.3, BT.2020 Table 3).
BT709_XY = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
BT2020_XY = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65_XY = (0.3127, 0.3290)


def rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> Array:
    """The RGB → CIE XYZ matrix of a set of primaries (SMPTE RP 177 §3.3)."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = white
    scale = np.linalg.solve(xyz, np.array([wx / wy, 1.0, (1 - wx - wy) / wy]))
    return np.asarray(xyz * scale, dtype=np.float64)


BT2020_TO_XYZ = rgb_to_xyz(BT2020_XY, D65_XY)
BT709_TO_XYZ = rgb_to_xyz(BT709_XY, D65_XY)
BT2020_TO_BT709 = np.linalg.solve(BT709_TO_XYZ, BT2020_TO_XYZ)
BT709_LUMA = BT709_TO_XYZ[1]  # (0.2126, 0.7152, 0.0722)
BT2020_LUMA = BT2020_TO_XYZ[1]  # (0.2627, 0.6780, 0.0593)


def pq_eotf(signal: Array) -> Array:
    """SMPTE ST 2084 §5.2 EOTF: non-linear PQ signal 0..1 → display light in cd/m²."""
    p = np.power(np.clip(signal, 0.0, 1.0), 1 / PQ_M2)
    return np.asarray(
        PQ_PEAK * np.power(np.maximum(p - PQ_C1, 0.0) / (PQ_C2 - PQ_C3 * p), 1 / PQ_M1)
    )


def pq_inverse_eotf(nits: Array) -> Array:
    """SMPTE ST 2084 §5.3 inverse EOTF: cd/m² → non-linear PQ signal 0..1."""
    y = np.power(np.clip(np.asarray(nits, dtype=np.float64) / PQ_PEAK, 0.0, 1.0), PQ_M1)
    return np.asarray(np.power((PQ_C1 + PQ_C2 * y) / (1 + PQ_C3 * y), PQ_M2))


def hlg_inverse_oetf(signal: Array) -> Array:
    """ITU-R BT.2100 Table 5 inverse OETF: HLG signal 0..1 → normalized scene light 0..1."""
    e = np.clip(np.asarray(signal, dtype=np.float64), 0.0, 1.0)
    low = e * e / 3
    high = (np.exp((np.maximum(e, 0.5) - HLG_C) / HLG_A) + HLG_B) / 12
    return np.asarray(np.where(e <= 0.5, low, high))


def hlg_system_gamma(peak_nits: float) -> float:
    """ITU-R BT.2100 Table 5 note 5c: γ = 1.2 + 0.42 log10(Lw / 1000)."""
    return 1.2 + 0.42 * float(np.log10(peak_nits / HLG_NOMINAL_PEAK))


def hlg_ootf(scene: Array, peak_nits: float = HLG_NOMINAL_PEAK) -> Array:
    """ITU-R BT.2100 Table 5 OOTF: scene RGB (…, 3) → display RGB in cd/m² (black at 0)."""
    ys = np.maximum(scene @ BT2020_LUMA, 0.0)[..., None]
    gamma = hlg_system_gamma(peak_nits)
    boost = np.power(ys, gamma - 1, where=ys > 0, out=np.zeros_like(ys))
    return np.asarray(peak_nits * boost * scene)


def hlg_ootf_per_component(scene: Array, peak_nits: float = HLG_NOMINAL_PEAK) -> Array:
    """The HLG system gamma applied to R, G and B each (the scene-light conversion of
    ITU-R BT.2408 §6, and zimg's HLG): display = Lw · E^γ. Keeps a camera's saturation where
    the luminance OOTF, applied after an SDR-to-HLG mapping made this way, would drain ~15 %."""
    gamma = hlg_system_gamma(peak_nits)
    return np.asarray(peak_nits * np.power(np.clip(scene, 0.0, None), gamma))


def bt2390_eetf(nits: Array, source_peak: float, target_peak: float) -> Array:
    """ITU-R BT.2390-10 §5.4.1 EETF (black level 0): cd/m² in → cd/m² out.

    In the PQ domain normalized to the source peak, values below the knee
    KS = 1.5·maxLum − 0.5 pass unchanged; above it a Hermite spline rolls off to maxLum.
    """
    if source_peak <= target_peak:
        return np.minimum(np.asarray(nits, dtype=np.float64), target_peak)
    source_pq = float(pq_inverse_eotf(np.array(source_peak)))
    e1 = pq_inverse_eotf(nits) / source_pq
    max_lum = float(pq_inverse_eotf(np.array(target_peak))) / source_pq
    knee = 1.5 * max_lum - 0.5
    t = (e1 - knee) / (1 - knee)
    t2, t3 = t * t, t * t * t
    spline = (
        (2 * t3 - 3 * t2 + 1) * knee + (t3 - 2 * t2 + t) * (1 - knee) + (-2 * t3 + 3 * t2) * max_lum
    )
    e2 = np.where(e1 < knee, e1, np.where(e1 <= 1, spline, max_lum))
    return pq_eotf(e2 * source_pq)


def desaturate_into_gamut(rgb: Array, luma: Array) -> Array:
    """Move each colour toward its own luminance just enough that no component is negative."""
    y = (rgb @ luma)[..., None]
    low = rgb.min(axis=-1, keepdims=True)
    outside = (low < 0) & (y > 0)
    keep = np.where(outside, y / np.where(outside, y - low, 1.0), 1.0)
    mixed = y + (rgb - y) * keep
    return np.asarray(np.where(y > 0, np.maximum(mixed, 0.0), 0.0))


@dataclass(frozen=True, slots=True)
class ToneMapParams:
    """What the curve needs to know about the source and the target."""

    transfer: str  # "pq" or "hlg"
    source_peak: float = DEFAULT_PQ_PEAK  # cd/m²
    sdr_white_nits: float = REFERENCE_WHITE_NITS
    hlg_peak: float = HLG_NOMINAL_PEAK  # the HLG display's Lw
    hlg_ootf: str = "per_component"  # or "luminance" (BT.2100 Table 5, display-referred)


def hdr_to_display_nits(signal: Array, params: ToneMapParams) -> Array:
    """Non-linear BT.2020 R'G'B' (…, 3) → linear BT.2020 display light in cd/m²."""
    if params.transfer == "pq":
        return pq_eotf(signal)
    if params.transfer == "hlg":
        scene = hlg_inverse_oetf(signal)
        if params.hlg_ootf == "luminance":
            return hlg_ootf(scene, params.hlg_peak)
        return hlg_ootf_per_component(scene, params.hlg_peak)
    raise ValueError(f"not an HDR transfer: {params.transfer!r}")


def tone_map(signal: Array, params: ToneMapParams) -> Array:
    """Non-linear BT.2020 HDR R'G'B' (…, 3) in 0..1 → non-linear BT.709 SDR R'G'B' in 0..1."""
    display = hdr_to_display_nits(signal, params) @ BT2020_TO_BT709.T
    display = desaturate_into_gamut(display, BT709_LUMA)
    peak = display.max(axis=-1, keepdims=True)
    source_peak = params.hlg_peak if params.transfer == "hlg" else params.source_peak
    mapped = bt2390_eetf(peak, max(source_peak, params.sdr_white_nits), params.sdr_white_nits)
    ratio = np.divide(mapped, peak, out=np.zeros_like(peak), where=peak > 0)
    linear = np.clip(display * ratio / params.sdr_white_nits, 0.0, 1.0)
    return np.asarray(np.power(linear, 1 / BT1886_GAMMA))


def build_lut(params: ToneMapParams, size: int = 65) -> Array:
    """The (size, size, size, 3) LUT indexed [b][g][r], as `.cube` files order it."""
    axis = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return tone_map(np.stack([r, g, b], axis=-1), params)


def cube_text(lut: Array, title: str = "reelforge HDR to SDR") -> str:
    """A Resolve/Adobe `.cube` 3D LUT (red index fastest), as FFmpeg's `lut3d` reads it."""
    size = lut.shape[0]
    values = lut.reshape(-1, 3)
    rows = ("%.6f %.6f %.6f\n" * len(values)) % tuple(values.ravel().tolist())  # one format call
    return f'TITLE "{title}"\nLUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n{rows}'
