"""FFmpeg filter graphs that normalize decoded frames, built with PyAV's `av.filter.Graph`.

Video: rotate upright → constant frame rate → a cascade of scales, one per rung (square
pixels, 8-bit 4:2:0, limited range BT.709). Audio: align to the video's start, resample to 48 kHz
stereo float planar, apply the loudness gain and limiter, pad/trim to the video's length, cut
into AAC-sized frames.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter

from engine.hdr import ToneMapPlan
from ladders.model import AudioRung, Rung


def rotation_filters(rotation: int) -> list[tuple[str, str]]:
    """Filters that turn a frame upright given its display-matrix rotation (counter-clockwise)."""
    turn = (-rotation) % 360
    if turn == 90:
        return [("transpose", "clock")]
    if turn == 180:
        return [("hflip", ""), ("vflip", "")]
    if turn == 270:
        return [("transpose", "cclock")]
    return []


UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED


def source_matrix(frame: Any) -> str:
    """`in_color_matrix` for an untagged source, as players guess it (ITU-R BT.709 for HD,
    BT.601 for SD); empty when the frame is tagged, so the scaler reads the tag."""
    if int(frame.colorspace) != UNSPECIFIED_COLORSPACE:
        return ""
    hd = max(frame.width, frame.height) >= 1280 or min(frame.width, frame.height) >= 720
    return f"in_color_matrix={'bt709' if hd else 'bt601'}:"


def tone_map_filters(graph: Any, plan: ToneMapPlan, top: Rung, lut_dir: Path) -> list[Any]:
    """HDR → SDR at the top rung's size (fewer pixels than a 4K source): scale to 16-bit
    R'G'B' (BT.2020 matrix, ITU-R BT.2100 Table 6), then the tone-mapping LUT. The rung's own
    scale then only converts the BT.709 R'G'B' to limited-range Y'CbCr."""
    lut = lut_dir / "tonemap.cube"
    lut.write_text(plan.lut_text())
    settings = plan.settings
    return [
        graph.add("scale", f"w={top.width}:h={top.height}:flags=bicubic:in_color_matrix=bt2020"),
        graph.add("format", f"pix_fmts={settings.pixel_format}"),
        graph.add("lut3d", f"file={lut}:interp={settings.interpolation}"),
    ]


class VideoGraph:
    """decoded frames in → one upright, CFR, scaled frame per rung out (in rung order)."""

    def __init__(
        self,
        template: Any,
        time_base: Fraction,
        rotation: int,
        frame_rate: Fraction,
        rungs: Sequence[Rung],
        threads: int = 0,
        tone_map: ToneMapPlan | None = None,
    ) -> None:
        self.width, self.height, self.format = template.width, template.height, template.format.name
        graph = av.filter.Graph()
        if threads:
            graph.threads = threads
        src = graph.add_buffer(
            width=self.width, height=self.height, format=self.format, time_base=time_base
        )
        chain: list[Any] = [src]
        for name, args in rotation_filters(rotation):
            chain.append(graph.add(name, args))
        chain.append(graph.add("fps", f"fps={frame_rate.numerator}/{frame_rate.denominator}"))
        lut_dir = tempfile.TemporaryDirectory(prefix="reelforge-lut-") if tone_map else None
        if tone_map is not None and lut_dir is not None:
            chain += tone_map_filters(graph, tone_map, rungs[0], Path(lut_dir.name))
        graph.link_nodes(*chain)
        # A cascade: each rung is scaled from the one above it, not from the source. A
        # downscale costs about the same whatever the output size (the filter reads every input
        # pixel), so 1080→720→540→360 reads 1.7 frames' worth of pixels where scaling every rung
        # from the source reads 3. Colour conversion to BT.709 limited happens once, at the top.
        self.sinks = []
        upstream, pad = chain[-1], 0
        for index, rung in enumerate(rungs):
            convert = (
                f"{source_matrix(template)}out_color_matrix=bt709:out_range=tv"
                if index == 0
                else "in_color_matrix=bt709:out_color_matrix=bt709:in_range=tv:out_range=tv"
            )
            scale = graph.add("scale", f"w={rung.width}:h={rung.height}:flags=bicubic:{convert}")
            fmt = graph.add("format", "pix_fmts=yuv420p")
            setsar = graph.add("setsar", "1")
            sink = graph.add("buffersink")
            upstream.link_to(scale, pad)
            scale.link_to(fmt)
            fmt.link_to(setsar)
            if index < len(rungs) - 1:
                split = graph.add("split", "2")
                setsar.link_to(split)
                split.link_to(sink, 0)
                upstream, pad = split, 1
            else:
                setsar.link_to(sink)
            self.sinks.append(sink)
        graph.configure()
        if lut_dir is not None:
            lut_dir.cleanup()  # lut3d read the file when it was added
        self.graph = graph
        self.src = src

    def conform(self, frame: Any) -> Any:
        """Frames whose size or format changed mid-stream are scaled back to the first one's."""
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, self.format):
            pts, time_base, duration = frame.pts, frame.time_base, frame.duration
            frame = frame.reformat(width=self.width, height=self.height, format=self.format)
            frame.pts, frame.time_base, frame.duration = pts, time_base, duration
        return frame

    def push(self, frame: Any | None) -> None:
        self.src.push(None if frame is None else self.conform(frame))

    def pull_all(self) -> list[list[Any]]:
        """Every frame ready at each sink, per rung."""
        out: list[list[Any]] = []
        for sink in self.sinks:
            frames = []
            while True:
                try:
                    frames.append(sink.pull())
                except (av.error.BlockingIOError, av.error.EOFError):
                    break
            out.append(frames)
        return out


def add_audio_source(graph: Any, template: Any, time_base: Any) -> Any:
    """An `abuffer` taking frames shaped like `template` (format, rate, layout)."""
    return graph.add_abuffer(
        format=template.format.name,
        sample_rate=template.sample_rate,
        layout=template.layout.name,
        time_base=time_base,
    )


class AudioGraph:
    """decoded audio in → 48 kHz stereo fltp frames of 1024 samples, `total_samples` long."""

    def __init__(
        self,
        template: Any,
        time_base: Fraction,
        rung: AudioRung,
        total_samples: int,
        priming: int = 1024,
        level_filters: Sequence[tuple[str, str]] = (),
    ):
        graph = av.filter.Graph()
        src = add_audio_source(graph, template, time_base)
        resample = graph.add(
            "aresample", f"{rung.sample_rate}:async=1:first_pts=0:min_hard_comp=0.05"
        )
        fmt = graph.add(
            "aformat",
            f"sample_fmts=fltp:sample_rates={rung.sample_rate}:channel_layouts=stereo",
        )
        # Loudness normalization (engine/loudness.py GainPlan.filters: volume, alimiter) on the
        # 48 kHz stereo signal, before the pad and trim so the length and alignment stay theirs.
        level = [graph.add(name, args) for name, args in level_filters]
        if level:
            level.append(graph.add("aformat", "sample_fmts=fltp"))
        pad = graph.add("apad", f"whole_len={total_samples}")
        # The AAC encoder puts `priming` samples of its own in front (ISO/IEC 14496-3 encoder
        # delay) and a fragmented CMAF track has no edit list to hide them; dropping as many
        # samples from the start keeps every later sample at its true time (A/V in sync) and
        # the track exactly as long as the video.
        trim = graph.add("atrim", f"start_sample={priming}:end_sample={total_samples}")
        sink = graph.add("abuffersink")
        graph.link_nodes(src, resample, fmt, *level, pad, trim, sink)
        graph.configure()
        graph.set_audio_frame_size(1024)
        self.graph, self.src, self.sink = graph, src, sink
        self.layout = template.layout.name
        self.sample_rate = template.sample_rate
        self.format = template.format.name

    def push(self, frame: Any | None) -> None:
        if frame is not None and (
            frame.sample_rate != self.sample_rate
            or frame.layout.name != self.layout
            or frame.format.name != self.format
        ):
            return  # a mid-stream audio format change is dropped rather than crash the job
        self.src.push(frame)

    def pull_all(self) -> list[Any]:
        frames = []
        while True:
            try:
                frames.append(self.sink.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
                break
        return frames
