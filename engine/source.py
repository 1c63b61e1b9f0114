"""`probe`: what an upload is, as a typed `SourceInfo`.

The probe opens the container, reads the headers, demuxes (without decoding) the video
packets to measure the real duration, frame rate and bit rate — container headers lie, and
some containers (Matroska from phones) have no duration at all — and decodes the first
video frame to prove the stream decodes and to read its rotation and pixel format. The audio
packets are demuxed in the same pass: the policy caps the longest stream, and audio that runs
past the video is trimmed (engine/timing.py has the rules for times and rates).
"""

from __future__ import annotations

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
from engine.timing import STANDARD_RATES as STANDARD_RATES  # moved; kept importable here
from engine.timing import FrameTiming, frame_timing, snap_rate

MAX_OUTPUT_RATE = Fraction(60)


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
    frame_rate: Fraction  # average over the stream (snapped when the rate is constant)
    variable_frame_rate: bool
    # Keyword-only, with defaults: built by `probe`, optional for hand-made ones (tests).
    # The rate of the moving frames (engine/timing.py): what the output is encoded at.
    nominal_frame_rate: Fraction | None = field(default=None, kw_only=True)
    held_frames: int = field(default=0, kw_only=True)
    longest_frame: float = field(default=0.0, kw_only=True)  # seconds one frame is shown
    # The longest stream, first start to last end over video and audio: what the policy caps.
    media_duration: float | None = field(default=None, kw_only=True)
    audio_beyond_video: float = field(default=0.0, kw_only=True)  # seconds trimmed off
    declared_duration: float | None = field(default=None, kw_only=True)  # container header
    # False when the packet scan stopped at its cap: the durations above are lower bounds.
    scanned_to_end: bool = field(default=True, kw_only=True)
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
        """The constant rate the ladder is encoded at: the source's nominal rate (that of its
        moving frames, never an average dragged down by held ones), at most 60 fps."""
        return output_rate(self.nominal_frame_rate or self.frame_rate)

    @property
    def longest_duration(self) -> float:
        """The longest stream's length (video or audio), which the duration cap applies to."""
        return max(self.duration, self.media_duration or 0.0)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sample_aspect_ratio"] = fraction_text(self.sample_aspect_ratio)
        data["frame_rate"] = fraction_text(self.frame_rate)
        data["nominal_frame_rate"] = fraction_text(self.nominal_frame_rate or self.frame_rate)
        data["frame_rate_fps"] = round(float(self.frame_rate), 3)
        data["output_frame_rate"] = fraction_text(self.output_frame_rate)
        data["color"]["hdr"] = self.color.hdr_transfer
        return data


def fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


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
    """What the demuxed packets say; times in seconds."""

    count: int = 0
    total_bytes: int = 0
    stamps: list[int] = field(default_factory=list)  # video pts, decode order
    last_duration: int | None = None  # of the video packet with the largest pts
    timing: FrameTiming | None = None
    audio_start: float = math.inf
    audio_end: float = -math.inf
    complete: bool = True  # False: stopped at `stop_after`

    @property
    def first_pts(self) -> float:
        return self.timing.start if self.timing is not None else math.inf

    @property
    def last_end(self) -> float:
        return self.timing.end if self.timing is not None else -math.inf

    @property
    def vfr(self) -> bool:
        return self.timing is not None and self.timing.variable

    @property
    def media_span(self) -> float:
        """First start to last end over the video and the audio."""
        start = min(self.first_pts, self.audio_start)
        end = max(self.last_end, self.audio_end)
        return max(0.0, end - start) if math.isfinite(start) and math.isfinite(end) else 0.0


def scan_video_packets(
    container: Any, stream: Any, stop_after: float, audio: Any | None = None
) -> PacketScan:
    """Demux the video (and audio) packets, no decoding, to measure spans, frame count, size,
    regularity (engine/timing.py).

    Stops once either stream's span passes `stop_after` seconds so a hostile, endless file is
    cheap (`complete` is then False).
    """
    scan = PacketScan()
    tb = float(stream.time_base)
    atb = float(audio.time_base) if audio is not None else 0.0
    top_pts: int | None = None
    first_video = first_audio = math.inf
    audio_pts: int | None = None
    streams = [stream] if audio is None else [stream, audio]
    for packet in container.demux(*streams):
        if packet.pts is None:
            continue
        if packet.stream is stream:
            scan.count += 1
            scan.total_bytes += packet.size
            scan.stamps.append(packet.pts)
            if top_pts is None or packet.pts > top_pts:
                top_pts, scan.last_duration = packet.pts, packet.duration
            first_video = min(first_video, packet.pts * tb)
            reached = packet.pts * tb - first_video
        else:
            gap = packet.pts - audio_pts if audio_pts is not None else 0
            audio_pts = packet.pts
            first_audio = min(first_audio, packet.pts * atb)
            scan.audio_end = max(scan.audio_end, (packet.pts + (packet.duration or gap)) * atb)
            reached = packet.pts * atb - first_audio
        if reached > stop_after:
            scan.complete = False
            break
    scan.timing = frame_timing(scan.stamps, stream.time_base, scan.last_duration)
    if audio is not None and math.isfinite(first_audio):
        # The declared start honours the edit list (priming samples are not presented).
        declared = audio.start_time * audio.time_base if audio.start_time is not None else None
        scan.audio_start = first_audio if declared is None else max(first_audio, float(declared))
    return scan


def measure_rate(stream: Any, scan: PacketScan) -> tuple[Fraction, Fraction]:
    """(average, nominal) rate: measured from the timestamps, else from the stream's headers."""
    timing = scan.timing
    if timing is not None and timing.count > 1 and timing.nominal_rate > 0:
        return timing.average_rate, timing.nominal_rate
    for candidate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if candidate and 0 < candidate <= 1000:
            rate = snap_rate(Fraction(candidate))
            return rate, rate
    return Fraction(30), Fraction(30)


# A video track that holds less than this share of the duration its header declares is a
# truncated upload (an interrupted transfer), not a short video.
TRUNCATION_SHARE = 0.9


def check_complete(stream: Any, span: float, scanned_to_end: bool) -> None:
    """Reject a file whose video track stops well short of the duration its header declares."""
    if stream.duration is None or stream.time_base is None or not scanned_to_end:
        return
    declared = float(stream.duration * stream.time_base)
    if declared > 0 and span < declared * TRUNCATION_SHARE - 0.5:
        raise UndecodableError(
            f"undecodable video stream: the file is truncated "
            f"(its header declares {declared:.1f} s of video, it holds {span:.1f} s)"
        )


def scan_file(
    path: Path, stream_index: int, max_scan_seconds: float, audio_index: int | None = None
) -> PacketScan:
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            audio = container.streams[audio_index] if audio_index is not None else None
            scan = scan_video_packets(
                container, container.streams[stream_index], max_scan_seconds, audio
            )
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
        scan = scan_file(
            path,
            stream.index,
            max_scan_seconds,
            audio_stream.index if audio_stream is not None else None,
        )
        sar = Fraction(stream.sample_aspect_ratio or ctx.sample_aspect_ratio or 1)
        if sar <= 0:
            sar = Fraction(1)
        rotation = round(frame.rotation or 0) % 360
        display_w, display_h = display_size(frame.width, frame.height, sar, rotation)
        span = max(0.0, scan.last_end - scan.first_pts)
        header_duration = (container.duration or 0) / av.time_base
        check_complete(stream, span, scan.complete)
        duration = span if span > 0 else header_duration
        bit_rate = round(scan.total_bytes * 8 / span) if span > 0 else None
        average_rate, nominal_rate = measure_rate(stream, scan)
        timing = scan.timing
        video_end = scan.first_pts + duration
        audio_beyond = max(0.0, scan.audio_end - video_end) if audio is not None else 0.0
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
            frame_rate=average_rate,
            variable_frame_rate=scan.vfr,
            nominal_frame_rate=nominal_rate,
            held_frames=timing.held_frames if timing is not None else 0,
            longest_frame=round(timing.longest_frame, 6) if timing is not None else 0.0,
            media_duration=round(max(duration, scan.media_span), 6),
            audio_beyond_video=round(audio_beyond, 6),
            declared_duration=round(header_duration, 6) if container.duration else None,
            scanned_to_end=scan.complete,
            frame_count=scan.count,
            pixel_format=frame.format.name,
            color_range=color_range_name(frame.color_range, frame.format.name),
            bit_rate=bit_rate,
            container_bit_rate=container.bit_rate or None,
            start_time=scan.first_pts if math.isfinite(scan.first_pts) else 0.0,
            audio=audio,
            color=read_color_info(frame),
        )
