"""Typed views of `ffprobe -of json` for the media tests.

A CMAF rendition (ISO/IEC 23000-19: `init.mp4` + one `moof`/`mdat` per `.m4s`) is probed as the
byte concatenation init + segments, which is itself a valid fragmented MP4. Each packet's `pos`
is a byte offset into that concatenation, which tells which segment file the sample lives in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

FFPROBE = "ffprobe"
_SEGMENT_NAME = re.compile(r"^(\d+)\.m4s$")
_FRAME_FIELDS = "pts_time,best_effort_timestamp_time,key_frame,pict_type,width,height"


class ProbeError(RuntimeError):
    """ffprobe could not read the file (not media, truncated header, missing file)."""


def run_ffprobe(path: Path, *args: str) -> dict[str, Any]:
    """Run `ffprobe -v error -of json ARGS PATH` and return the parsed JSON."""
    cmd = [FFPROBE, "-v", "error", "-of", "json", *args, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ProbeError(f"ffprobe failed on {path}: {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout or "{}")
    return result


def _fraction(text: str | None) -> Fraction:
    """'30000/1001', '1:1' or '0/0' as a Fraction (0 when unknown)."""
    if not text:
        return Fraction(0)
    num, _, den = text.replace(":", "/").partition("/")
    if not den:
        return Fraction(num)
    return Fraction(int(num), int(den)) if int(den) else Fraction(0)


def _float(value: Any) -> float | None:
    if value in (None, "N/A", ""):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Stream:
    index: int
    codec_type: str
    codec_name: str
    profile: str = ""
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    sample_aspect_ratio: Fraction = Fraction(1)  # 1 when unset (0:1 or absent)
    rotation: int = 0  # display-matrix rotation in degrees, normalised to 0/90/180/270
    r_frame_rate: Fraction = Fraction(0)
    avg_frame_rate: Fraction = Fraction(0)
    time_base: Fraction = Fraction(0)
    sample_rate: int = 0
    channels: int = 0
    channel_layout: str = ""
    bits_per_raw_sample: int = 0
    start_time: float | None = None
    duration: float | None = None
    duration_ts: int | None = None  # in time_base units; in fMP4 the sum of `trun` durations

    @property
    def display_size(self) -> tuple[int, int]:
        """Upright display size: SAR applied to the width, then the rotation."""
        width = round(self.width * self.sample_aspect_ratio)
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stream:
        sar = _fraction(data.get("sample_aspect_ratio"))
        rotation = 0
        for side in data.get("side_data_list", []):
            if "rotation" in side:
                rotation = int(side["rotation"])
        if not rotation and "rotate" in data.get("tags", {}):
            rotation = int(data["tags"]["rotate"])
        return cls(
            index=int(data["index"]),
            codec_type=data.get("codec_type", ""),
            codec_name=data.get("codec_name", ""),
            profile=data.get("profile", ""),
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            pix_fmt=data.get("pix_fmt", ""),
            sample_aspect_ratio=sar or Fraction(1),
            rotation=rotation % 360,
            r_frame_rate=_fraction(data.get("r_frame_rate")),
            avg_frame_rate=_fraction(data.get("avg_frame_rate")),
            time_base=_fraction(data.get("time_base")),
            sample_rate=int(data.get("sample_rate", 0)),
            channels=int(data.get("channels", 0)),
            channel_layout=data.get("channel_layout", ""),
            bits_per_raw_sample=int(data.get("bits_per_raw_sample", 0)),
            start_time=_float(data.get("start_time")),
            duration=_float(data.get("duration")),
            duration_ts=int(data["duration_ts"]) if "duration_ts" in data else None,
        )


@dataclass(frozen=True, slots=True)
class Packet:
    """One sample; times in seconds, exact from the integer timestamps and the time base."""

    pts: float | None
    dts: float | None
    duration: float | None
    size: int
    pos: int  # byte offset in the file, -1 when unknown
    keyframe: bool
    discard: bool  # outside the edit list: decoded for reference, never shown

    @classmethod
    def from_json(cls, data: dict[str, Any], time_base: Fraction) -> Packet:
        def seconds(key: str) -> float | None:
            value = data.get(key)
            return None if value in (None, "N/A") else float(int(value) * time_base)

        flags = data.get("flags", "")
        pos = data.get("pos")
        return cls(
            pts=seconds("pts"),
            dts=seconds("dts"),
            duration=seconds("duration"),
            size=int(data["size"]),
            pos=int(pos) if pos not in (None, "N/A") else -1,
            keyframe="K" in flags,
            discard="D" in flags,
        )


@dataclass(frozen=True, slots=True)
class Frame:
    pts: float | None
    key_frame: bool
    pict_type: str
    width: int = 0
    height: int = 0


def probe_streams(path: Path) -> list[Stream]:
    data = run_ffprobe(path, "-show_streams")
    return [Stream.from_json(s) for s in data.get("streams", [])]


def probe_format(path: Path) -> dict[str, Any]:
    """The `format` section: format_name, duration (may be absent), size, bit_rate."""
    section: dict[str, Any] = run_ffprobe(path, "-show_format").get("format", {})
    return section


def probe_packets(path: Path, select: str = "v:0") -> list[Packet]:
    """Packets of one stream in decode order; no decoding happens."""
    data = run_ffprobe(
        path,
        "-select_streams", select,
        "-show_entries", "stream=time_base:packet=pts,dts,duration,size,pos,flags",
    )  # fmt: skip
    streams = data.get("streams", [])
    time_base = _fraction(streams[0]["time_base"]) if streams else Fraction(0)
    return [Packet.from_json(p, time_base) for p in data.get("packets", [])]


def probe_frames(path: Path, select: str = "v:0", keyframes_only: bool = False) -> list[Frame]:
    """Decoded frames; with `keyframes_only` the decoder skips everything but key frames."""
    skip = ["-skip_frame", "nokey"] if keyframes_only else []
    data = run_ffprobe(
        path, *skip,
        "-select_streams", select,
        "-show_entries", f"frame={_FRAME_FIELDS}",
    )  # fmt: skip
    return [
        Frame(
            pts=_float(f.get("pts_time", f.get("best_effort_timestamp_time"))),
            key_frame=bool(int(f.get("key_frame", 0))),
            pict_type=f.get("pict_type", "?"),
            width=int(f.get("width", 0)),
            height=int(f.get("height", 0)),
        )
        for f in data.get("frames", [])
    ]


def fill_durations(packets: Sequence[Packet]) -> list[float]:
    """Each packet's duration; a missing one (MPEG-TS has none, ffmpeg's fMP4 leaves the
    first AAC packet without one) is the gap to the next dts, or the typical one."""
    known = [p.duration for p in packets if p.duration]
    gaps = [b.dts - a.dts for a, b in pairwise(packets) if a.dts is not None and b.dts is not None]
    typical = median(known or [g for g in gaps if g > 0] or [0.0])
    out: list[float] = []
    for pkt, nxt in zip(packets, [*packets[1:], None], strict=True):
        if pkt.duration:
            out.append(pkt.duration)
        elif nxt is not None and pkt.dts is not None and nxt.dts is not None:
            out.append(nxt.dts - pkt.dts)
        else:
            out.append(typical)
    return out


def presentation_span(
    packets: Sequence[Packet], clip_negative: bool = False
) -> tuple[float, float]:
    """(first, end) presentation time of the shown packets, in seconds.

    With `clip_negative` times below zero count as hidden, as in an ISOBMFF edit list
    (AAC priming is carried as negative pts). A sample lasts until the next one is shown, so
    the end is the last-shown sample's pts plus its own duration: with B-frames a packet's
    duration is a gap between decode times, which after a held frame lands on another one."""
    durations = fill_durations(packets)
    shown = [
        (p.pts, d)
        for p, d in zip(packets, durations, strict=True)
        if p.pts is not None and not p.discard
    ]
    if not shown:
        return 0.0, 0.0
    first = min(pts for pts, _ in shown)
    last_pts, last_duration = max(shown)
    end = last_pts + last_duration
    if clip_negative:
        first = max(first, 0.0)
    return first, end


def video_span(path: Path) -> float:
    """Length of the first video stream: first shown frame to the end of the last one.

    This, not the container duration, is the source duration: it exists for files without
    one (live WebM), ignores trailing audio, and honours edit lists."""
    first, end = presentation_span(probe_packets(path, "v:0"))
    return end - first


def segment_paths(folder: Path) -> list[Path]:
    """The numbered `NNNNN.m4s` files of a rendition, in number order."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _SEGMENT_NAME.match(p.name))]
    return [p for _, p in sorted(found)]


@contextmanager
def joined_rendition(folder: Path) -> Iterator[Path]:
    """init.mp4 + every segment concatenated into one temporary fragmented MP4."""
    with tempfile.TemporaryDirectory(prefix="rendition-") as tmp:
        joined = Path(tmp) / f"{folder.name}.mp4"
        with joined.open("wb") as out:
            for part in [folder / "init.mp4", *segment_paths(folder)]:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        yield joined


@dataclass(frozen=True, slots=True)
class SegmentProbe:
    number: int
    path: Path
    size: int  # bytes of the file (moof + mdat)
    packets: tuple[Packet, ...]  # decode order
    durations: tuple[float, ...]
    span: float | None = None  # time on screen: to the next segment's start, or the last end

    @property
    def start(self) -> float | None:
        """Presentation time of the earliest shown sample: where the segment starts on the
        timeline (DASH S@t), whatever its decode times."""
        return self.first_pts

    @property
    def first_pts(self) -> float | None:
        """Presentation time of the earliest shown sample."""
        return min((p.pts for p in self.packets if p.pts is not None), default=None)

    @property
    def duration(self) -> float:
        """How long the segment is on the timeline: from its earliest presentation to the
        next segment's (the last: to the end of its last-shown sample); the sum of sample
        (decode) durations when presentation times are unknown."""
        return self.span if self.span is not None else sum(self.durations)

    @property
    def payload(self) -> int:
        """Elementary-stream bytes (what the encoder's VBV constrains)."""
        return sum(p.size for p in self.packets)


@dataclass(frozen=True, slots=True)
class RenditionProbe:
    folder: Path
    init_size: int
    stream: Stream
    segments: tuple[SegmentProbe, ...]
    packets: tuple[Packet, ...]
    keyframes: tuple[Frame, ...] = field(default=())  # decoded key frames (video only)

    @property
    def span(self) -> tuple[float, float]:
        return presentation_span(self.packets, clip_negative=True)


def probe_rendition(folder: Path) -> RenditionProbe:
    """Probe a CMAF rendition folder and assign every sample to its segment file."""
    paths = segment_paths(folder)
    if not (folder / "init.mp4").is_file() or not paths:
        raise ProbeError(f"{folder} has no init.mp4 or no segments")
    init_size = (folder / "init.mp4").stat().st_size
    sizes = [p.stat().st_size for p in paths]
    with joined_rendition(folder) as joined:
        stream = probe_streams(joined)[0]
        packets = probe_packets(joined, "0")
        keyframes = (
            probe_frames(joined, "0", keyframes_only=True) if stream.codec_type == "video" else []
        )
    durations = fill_durations(packets)
    # In a fragmented MP4 ffprobe gives the very last sample the duration of the one before,
    # not its `trun` entry (a trimmed last AAC frame reads as 1024 samples); the stream's
    # duration_ts is where the track's decode timeline ends (the last tfdt plus its samples),
    # so the last one is what remains. FFmpeg moves dts back by the most negative
    # composition offset (signed trun) without moving that end; a track whose tfdt starts
    # later than 0 (audio aligned to the video's first frame) keeps its dts as they are.
    first_dts, last_dts = packets[0].dts if packets else None, packets[-1].dts if packets else None
    if stream.duration_ts and first_dts is not None and last_dts is not None:
        end = float(stream.duration_ts * stream.time_base)
        remains = min(first_dts, 0.0) + end - last_dts
        if remains > 0:
            durations[-1] = remains
    bounds = [init_size]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    per_segment: list[list[int]] = [[] for _ in paths]
    for i, pkt in enumerate(packets):
        seg = bisect_right(bounds, pkt.pos) - 1
        if not 0 <= seg < len(paths):
            raise ProbeError(f"{folder}: packet at byte {pkt.pos} lies in no segment")
        per_segment[seg].append(i)
    segments = [
        SegmentProbe(
            number=int(path.stem),
            path=path,
            size=size,
            packets=tuple(packets[i] for i in idx),
            durations=tuple(durations[i] for i in idx),
        )
        for path, size, idx in zip(paths, sizes, per_segment, strict=True)
    ]
    for index, seg in enumerate(segments):
        shown = [
            (p.pts, d) for p, d in zip(seg.packets, seg.durations, strict=True) if p.pts is not None
        ]
        if seg.first_pts is None or not shown:
            continue
        if index + 1 < len(segments) and segments[index + 1].first_pts is not None:
            span = segments[index + 1].first_pts - seg.first_pts
        else:
            last_pts, last_duration = max(shown)
            span = last_pts + last_duration - seg.first_pts
        segments[index] = replace(seg, span=span)
    return RenditionProbe(
        folder, init_size, stream, tuple(segments), tuple(packets), tuple(keyframes)
    )
