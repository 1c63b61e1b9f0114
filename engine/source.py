"""`probe`: what an upload is, as a typed `SourceInfo`.

The probe opens the container, reads the headers, demuxes (without decoding) the video
packets to measure the real duration, frame rate and bit rate — container headers lie, and
some containers (Matroska from phones) have no duration at all — and decodes the first
video frame to prove the stream decodes and to read its rotation and pixel format.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from engine.colorinfo import ColorInfo, read_color_info
from engine.errors import NotMediaError, NoVideoStreamError, UndecodableError

# Common rates that measured rates snap to (NTSC rates included).
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(r)
    for r in (
        "10",
        "12",
        "15",
        "24000/1001",
        "24",
        "25",
        "30000/1001",
        "30",
        "48",
        "50",
        "60000/1001",
        "60",
        "90",
        "100",
        "120000/1001",
        "120",
    )
)
MAX_OUTPUT_RATE = Fraction(60)
# Share of frame intervals that may stray from the median before a stream counts as VFR.
VFR_OUTLIER_SHARE = 0.02


@dataclass(frozen=True, slots=True)
class AudioInfo:
    codec: str
    channels: int
    sample_rate: int
    layout: str
    start_time: float


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A probed upload. Sizes are in pixels; times in seconds; rates in frames per second."""

    path: str
    file_size: int
    container: str
    duration: float
    video_codec: str
    video_profile: str | None
    coded_width: int
    coded_height: int
    sample_aspect_ratio: Fraction
    rotation: int  # degrees the frame must turn clockwise... see `display_rotation`
    display_width: int  # after SAR and rotation: what a viewer sees
    display_height: int
    frame_rate: Fraction  # average over the stream
    variable_frame_rate: bool
    frame_count: int
    pixel_format: str
    color_range: str  # "limited", "full" or "unknown"
    bit_rate: int | None  # video stream, bit/s, measured from packet sizes
    container_bit_rate: int | None
    start_time: float
    audio: AudioInfo | None
    # Primaries, transfer, matrix, HDR metadata (engine/colorinfo.py); keep last (defaulted).
    color: ColorInfo = field(default_factory=ColorInfo)

    @property
    def output_frame_rate(self) -> Fraction:
        """The constant rate the ladder is encoded at: the source's, at most 60 fps."""
        return output_rate(self.frame_rate)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sample_aspect_ratio"] = fraction_text(self.sample_aspect_ratio)
        data["frame_rate"] = fraction_text(self.frame_rate)
        data["frame_rate_fps"] = round(float(self.frame_rate), 3)
        data["output_frame_rate"] = fraction_text(self.output_frame_rate)
        data["color"]["hdr"] = self.color.hdr_transfer
        return data


def fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def snap_rate(rate: Fraction) -> Fraction:
    """A measured rate, snapped to the nearest standard rate within 1 %, else to a whole number."""
    nearest = min(STANDARD_RATES, key=lambda standard: abs(rate - standard))
    if abs(rate - nearest) <= nearest / 100:
        return nearest
    return Fraction(max(1, round(rate)))


def output_rate(rate: Fraction) -> Fraction:
    """Halve high rates until they fit under 60 fps (120 → 60, 100 → 50), then snap."""
    while rate > MAX_OUTPUT_RATE * Fraction(1005, 1000):
        rate /= 2
    return snap_rate(rate)


def display_size(width: int, height: int, sar: Fraction, rotation: int) -> tuple[int, int]:
    """Upright, square-pixel size: width stretched by the SAR, then swapped for ±90° turns."""
    display_w = max(1, round(width * sar)) if sar > 0 else width
    if rotation % 180:
        return height, display_w
    return display_w, height


def color_range_name(value: int, pixel_format: str) -> str:
    if pixel_format.startswith("yuvj"):
        return "full"
    return {1: "limited", 2: "full"}.get(int(value), "unknown")


@dataclass(slots=True)
class PacketScan:
    count: int = 0
    first_pts: float = math.inf
    last_end: float = -math.inf
    total_bytes: int = 0
    intervals_median: float = 0.0
    vfr: bool = False


def scan_video_packets(container: Any, stream: Any, stop_after: float) -> PacketScan:
    """Demux the video packets (no decoding) to measure span, frame count, size, regularity.

    Stops once the span passes `stop_after` seconds so a hostile, endless file is cheap.
    """
    scan = PacketScan()
    tb = float(stream.time_base)
    stamps: list[int] = []
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        scan.count += 1
        scan.total_bytes += packet.size
        stamps.append(packet.pts)
        start = packet.pts * tb
        scan.first_pts = min(scan.first_pts, start)
        scan.last_end = max(scan.last_end, start + (packet.duration or 0) * tb)
        if scan.last_end - scan.first_pts > stop_after:
            break
    stamps.sort()
    intervals = sorted(b - a for a, b in itertools.pairwise(stamps) if b > a)
    if intervals:
        median = intervals[len(intervals) // 2]
        scan.intervals_median = median * tb
        strays = sum(1 for d in intervals if abs(d - median) > max(1, median // 10))
        scan.vfr = strays > VFR_OUTLIER_SHARE * len(intervals)
        # A packet without a duration leaves its last frame out of the span: add one interval.
        scan.last_end = max(scan.last_end, stamps[-1] * tb + scan.intervals_median)
    return scan


def measure_rate(stream: Any, scan: PacketScan) -> Fraction:
    if scan.count > 1 and scan.last_end > scan.first_pts:
        measured = Fraction(scan.count / (scan.last_end - scan.first_pts)).limit_denominator(1001)
        return snap_rate(measured) if not scan.vfr else measured
    for candidate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if candidate and 0 < candidate <= 1000:
            return snap_rate(Fraction(candidate))
    return Fraction(30)


# A video track that holds less than this share of the duration its header declares is a
# truncated upload (an interrupted transfer), not a short video.
TRUNCATION_SHARE = 0.9


def check_complete(stream: Any, span: float, max_scan_seconds: float) -> None:
    """Reject a file whose video track stops well short of the duration its header declares."""
    if stream.duration is None or stream.time_base is None or span >= max_scan_seconds:
        return
    declared = float(stream.duration * stream.time_base)
    if declared > 0 and span < declared * TRUNCATION_SHARE - 0.5:
        raise UndecodableError(
            f"undecodable video stream: the file is truncated "
            f"(its header declares {declared:.1f} s of video, it holds {span:.1f} s)"
        )


def scan_file(path: Path, stream_index: int, max_scan_seconds: float) -> PacketScan:
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            scan = scan_video_packets(container, container.streams[stream_index], max_scan_seconds)
    except av.error.FFmpegError as exc:
        raise UndecodableError(f"undecodable container: {exc}") from exc
    if scan.count == 0:
        raise UndecodableError("undecodable video stream: it holds no packets")
    return scan


def pick_video_stream(container: Any) -> Any:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise NoVideoStreamError("no video stream: the file holds no video track (audio-only?)")


def first_frame(container: Any, stream: Any) -> Any:
    try:
        for frame in container.decode(stream):
            return frame
    except (av.error.FFmpegError, ValueError) as exc:
        raise UndecodableError(f"undecodable video stream: {exc}") from exc
    raise UndecodableError("undecodable video stream: no frame could be decoded")


def probe(path: str | os.PathLike[str], max_scan_seconds: float = 3600.0) -> SourceInfo:
    """Probe `path`. Raises an `InputRejected` subclass for files that are not usable media."""
    path = Path(path)
    file_size = path.stat().st_size
    if file_size == 0:
        raise NotMediaError("not a media file: the file is empty")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise NotMediaError(f"not a media file: {exc}") from exc
    with container:
        stream = pick_video_stream(container)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise UndecodableError("undecodable video stream: no frame size in the headers")
        audio_stream = container.streams.audio[0] if container.streams.audio else None
        audio = None
        if audio_stream is not None:
            actx = audio_stream.codec_context
            audio = AudioInfo(
                codec=actx.name,
                channels=actx.channels,
                sample_rate=actx.sample_rate,
                layout=actx.layout.name if actx.layout else "",
                start_time=float(audio_stream.start_time * audio_stream.time_base)
                if audio_stream.start_time is not None and audio_stream.time_base is not None
                else 0.0,
            )
        frame = first_frame(container, stream)
        scan = scan_file(path, stream.index, max_scan_seconds)
        sar = Fraction(stream.sample_aspect_ratio or ctx.sample_aspect_ratio or 1)
        if sar <= 0:
            sar = Fraction(1)
        rotation = round(frame.rotation or 0) % 360
        display_w, display_h = display_size(frame.width, frame.height, sar, rotation)
        span = max(0.0, scan.last_end - scan.first_pts)
        header_duration = (container.duration or 0) / av.time_base
        check_complete(stream, span, max_scan_seconds)
        duration = span if span > 0 else header_duration
        bit_rate = round(scan.total_bytes * 8 / span) if span > 0 else None
        return SourceInfo(
            path=str(path),
            file_size=file_size,
            container=container.format.name,
            duration=round(duration, 6),
            video_codec=ctx.name,
            video_profile=stream.profile,
            coded_width=frame.width,
            coded_height=frame.height,
            sample_aspect_ratio=sar,
            rotation=rotation,
            display_width=display_w,
            display_height=display_h,
            frame_rate=measure_rate(stream, scan),
            variable_frame_rate=scan.vfr,
            frame_count=scan.count,
            pixel_format=frame.format.name,
            color_range=color_range_name(frame.color_range, frame.format.name),
            bit_rate=bit_rate,
            container_bit_rate=container.bit_rate or None,
            start_time=scan.first_pts if math.isfinite(scan.first_pts) else 0.0,
            audio=audio,
            color=read_color_info(frame),
        )
