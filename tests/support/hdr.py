"""HDR test clips made from real SDR footage, and the measures that compare SDR renderings.

The clips are made with the static ffmpeg 9 of imageio-ffmpeg (it has `zscale`): the SDR clip
is linearized (BT.1886), its BT.709 primaries converted to BT.2020 and re-encoded with the PQ
(SMPTE ST 2084) or HLG (ARIB STD-B67) transfer with diffuse white at 203 nits (ITU-R BT.2408
§2.2), as HEVC Main 10 tagged `hvc1`, the way an iPhone writes HLG. A good HDR → SDR rendering
of such a clip gives the original SDR clip back, so the original is the reference.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
import numpy as np

FFMPEG9 = imageio_ffmpeg.get_ffmpeg_exe()
QUIET = ["-hide_banner", "-nostdin", "-v", "error", "-y"]
TRANSFERS = {"hlg": "arib-std-b67", "pq": "smpte2084"}
# HDR10 static metadata as x265 writes it into SEI (SMPTE ST 2086, CTA-861.3): a P3-D65
# 1000-nit mastering display, MaxCLL 400 nits, MaxFALL 100 nits.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
MAX_CLL = "400,100"


def run9(*args: str) -> None:
    """Run ffmpeg 9 quietly; raise with its stderr on failure."""
    cmd = [FFMPEG9, *QUIET, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr}")


def make_sdr_reference(
    source: Path, dest: Path, seconds: float, width: int, height: int, start: float = 0.0
) -> Path:
    """A short, small BT.709 limited-range 4:2:0 cut of a real clip (the reference)."""
    if not dest.exists():
        run9(
            "-ss", f"{start:g}", "-t", f"{seconds:g}", "-i", str(source), "-an",
            "-vf", f"scale={width}:{height}:flags=bicubic:out_color_matrix=bt709:out_range=tv,"
            "format=yuv420p,setsar=1",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "12",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
            "-color_range", "tv", str(dest),
        )  # fmt: skip
    return dest


def make_hdr_version(sdr: Path, dest: Path, transfer: str, hdr10_metadata: bool = False) -> Path:
    """`sdr` as HEVC Main 10 BT.2020 PQ or HLG, white at 203 nits (RECIPES.md "HDR test clips")."""
    if dest.exists():
        return dest
    trc = TRANSFERS[transfer]
    params = f"colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc:range=limited"
    if hdr10_metadata:
        params += f":hdr10=1:master-display={MASTER_DISPLAY}:max-cll={MAX_CLL}"
    run9(
        "-i", str(sdr),
        "-vf", "setparams=field_mode=prog:color_primaries=bt709:color_trc=bt709:"
        "colorspace=bt709:range=tv,zscale=t=linear:npl=203,format=gbrpf32le,"
        f"zscale=p=bt2020:t={trc}:m=bt2020nc:r=limited:npl=203,format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-crf", "10", "-tag:v", "hvc1",
        "-x265-params", f"log-level=error:{params}",
        "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
        "-color_range", "tv", str(dest),
    )  # fmt: skip
    return dest


def make_hable_reference(hdr: Path, dest: Path) -> Path:
    """ffmpeg 9's usual HDR → SDR chain: zscale linear → tonemap=hable → BT.709."""
    if not dest.exists():
        run9(
            "-i", str(hdr),
            "-vf", "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
            "tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "12",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
            str(dest),
        )  # fmt: skip
    return dest


@dataclass(frozen=True, slots=True)
class Looks:
    """Mean luma (Y' code value) and mean HSV saturation of every decoded frame."""

    luma: float
    saturation: float
    frames: int


def frame_looks(frame: Any, width: int, height: int) -> tuple[float, float]:
    yuv = frame.reformat(width=width, height=height, format="yuv420p")
    luma = float(yuv.to_ndarray()[:height].mean())
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray().astype(np.float32)
    top, bottom = rgb.max(axis=2), rgb.min(axis=2)
    lit = top > 0
    saturation = float(((top - bottom)[lit] / top[lit]).mean()) if lit.any() else 0.0
    return luma, saturation


def looks(path: Path, width: int, height: int) -> Looks:
    """Decode `path` (scaled to width x height, BT.709) and average luma and saturation."""
    lumas: list[float] = []
    sats: list[float] = []
    with av.open(str(path)) as container:
        stream: Any = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            luma, sat = frame_looks(frame, width, height)
            lumas.append(luma)
            sats.append(sat)
    return Looks(float(np.mean(lumas)), float(np.mean(sats)), len(lumas))


_SSIM_ALL = re.compile(r"SSIM .*All:([0-9.]+)")


def ssim(distorted: Path, reference: Path, width: int, height: int) -> float:
    """ffmpeg's `ssim` filter (all planes), both scaled to width x height, frame by frame."""
    size = f"scale={width}:{height}:flags=bicubic,format=yuv420p"
    cmd = [
        FFMPEG9, "-hide_banner", "-nostdin", "-i", str(distorted), "-i", str(reference),
        "-lavfi", f"[0:v]{size}[a];[1:v]{size}[b];[a][b]ssim=shortest=1", "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = _SSIM_ALL.search(proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"ssim failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return float(match.group(1))
