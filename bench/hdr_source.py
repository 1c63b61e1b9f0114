"""The HDR bench source: the SDR bench source as a phone's HEVC Main 10 HLG (or PQ) upload.

The SDR source (make_source.py) goes through ffmpeg 9's `zscale` (Debian's 5.1 has none):
BT.709 → linear light with reference white at 203 nits (ITU-R BT.2408 §2.2) → BT.2020
primaries, HLG (ARIB STD-B67 / ITU-R BT.2100) or PQ (SMPTE ST 2084) transfer, BT.2020
non-constant-luminance matrix, limited range, 10-bit 4:2:0; then libx265 Main 10, tagged as
an iPhone tags it (`hvc1`; colour in the VUI and the `colr` box), in a QuickTime file with the
source's AAC copied. A good HDR → SDR conversion gives the SDR source back.

Cached beside the SDR source under a key of the recipe, the SDR source's own key and the
ffmpeg version: a second call with the same arguments costs nothing.

    .venv/bin/python bench/hdr_source.py --seconds 30 --hdr hlg
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_source import (
    MEDIA_DIR,
    WORK_DIR,
    SourceBuildError,
    build_source,
    ffmpeg_version,
)

# --hdr name → the transfer characteristic as ffmpeg and x265 name it.
TRANSFERS = {"hlg": "arib-std-b67", "pq": "smpte2084"}
NOMINAL_PEAK_NITS = 203  # SDR reference white in HDR (ITU-R BT.2408)
# HDR10 static metadata for PQ: a P3-D65 1000-nit mastering display (SMPTE ST 2086), as
# phones that record PQ write it; HLG carries none.
PQ_X265_PARAMS = (
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):"
    "max-cll=1000,400:hdr10=1:hdr10-opt=1"
)
# A high-quality phone upload: its decode cost is that of a real HEVC file.
X265_ARGS = ("-c:v", "libx265", "-preset", "fast", "-crf", "14", "-tag:v", "hvc1")


def hdr_filter(kind: str) -> str:
    """BT.709 SDR → BT.2100 (`kind`) 10-bit; `setparams` first, or zscale finds no path."""
    transfer = TRANSFERS[kind]
    return (
        "setparams=field_mode=prog:color_primaries=bt709:color_trc=bt709:colorspace=bt709:"
        f"range=tv,zscale=t=linear:npl={NOMINAL_PEAK_NITS},format=gbrpf32le,"
        f"zscale=p=bt2020:t={transfer}:m=bt2020nc:r=limited:npl={NOMINAL_PEAK_NITS},"
        "format=yuv420p10le"
    )


def encode_args(kind: str) -> list[str]:
    transfer = TRANSFERS[kind]
    params = f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc:range=limited"
    if kind == "pq":
        params += f":{PQ_X265_PARAMS}"
    return [
        *X265_ARGS, "-x265-params", f"{params}:log-level=error",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc",
        "-color_range", "tv",
        "-c:a", "copy", "-movflags", "+faststart",
    ]  # fmt: skip


def build_command(sdr: Path, output: Path, kind: str, ffmpeg9: str) -> list[str]:
    return [
        ffmpeg9, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(sdr),
        "-map", "0:v:0", "-map", "0:a:0?", "-vf", hdr_filter(kind), *encode_args(kind),
        "-f", "mov", str(output),
    ]  # fmt: skip


def hdr_path(sdr: Path, kind: str) -> Path:
    return sdr.with_name(f"{sdr.stem}-{kind}.mov")


def check_hdr(path: Path, kind: str, frames: int, ffprobe: str = "ffprobe") -> None:
    """The file is what a phone uploads: HEVC Main 10, hvc1, BT.2020 + the transfer."""
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=codec_name,profile,codec_tag_string,pix_fmt,color_primaries,color_transfer,"
         "color_space,nb_read_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SourceBuildError(f"ffprobe failed on {path}: {out.stderr.strip()}")
    stream = json.loads(out.stdout)["streams"][0]
    found = {key: str(value) for key, value in stream.items()}
    wanted = {
        "codec_name": "hevc", "profile": "Main 10", "codec_tag_string": "hvc1",
        "pix_fmt": "yuv420p10le", "color_primaries": "bt2020",
        "color_transfer": TRANSFERS[kind], "color_space": "bt2020nc",
        "nb_read_packets": str(frames),
    }  # fmt: skip
    wrong = {key: found.get(key) for key, value in wanted.items() if found.get(key) != value}
    if wrong:
        raise SourceBuildError(f"{path} is not the {kind} source expected: {wrong}")


def build_hdr_source(
    sdr: Path, kind: str, ffmpeg9: str, ffprobe: str = "ffprobe", force: bool = False
) -> Path:
    """Path of the cached HDR (`hlg` or `pq`) version of the SDR source `sdr`."""
    if kind not in TRANSFERS:
        raise ValueError(f"HDR kind must be one of {', '.join(TRANSFERS)}, got {kind!r}")
    sidecar = json.loads(sdr.with_suffix(".json").read_text())
    output = hdr_path(sdr, kind)
    recipe = {
        "sdr_key": sidecar["key"],
        "filter": hdr_filter(kind),
        "encode": encode_args(kind),
        "ffmpeg": ffmpeg_version(ffmpeg9),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    marker = output.with_suffix(".json")
    if (
        not force
        and output.is_file()
        and marker.is_file()
        and json.loads(marker.read_text()).get("key") == key
    ):
        return output
    partial = output.with_name(f".{output.stem}.partial.mov")
    done = subprocess.run(
        build_command(sdr, partial, kind, ffmpeg9), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SourceBuildError(f"ffmpeg 9 failed ({done.returncode}): {done.stderr.strip()}")
    try:
        check_hdr(partial, kind, sidecar["frames"], ffprobe)
    except SourceBuildError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    marker.write_text(json.dumps({"key": key, "kind": kind, **recipe}, indent=2) + "\n")
    return output


def main(argv: list[str] | None = None) -> int:
    from bench.baseline import newest_ffmpeg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hdr", choices=sorted(TRANSFERS), default="hlg")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--media", type=Path, default=MEDIA_DIR, help="the real clips")
    parser.add_argument("--ffmpeg9", default=None, help="ffmpeg with zscale (default: ffmpeg 9)")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    try:
        sdr = build_source(args.seconds, args.work_dir, args.media)
        print(build_hdr_source(sdr, args.hdr, args.ffmpeg9 or newest_ffmpeg(), force=args.force))
    except (SourceBuildError, FileNotFoundError) as exc:
        print(f"hdr_source: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
