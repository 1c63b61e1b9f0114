"""Split and stitch, the jobs: one chunk of the video (every rung, frames [start, end) of the
plan in engine/chunks.py), and the audio track over the whole source.

A chunk decodes only its time range: it seeks to the keyframe at or before its first frame's
time and feeds every frame from there through the same normalization graph as the single
pass (engine/graphs.py `VideoGraph`: rotation, CFR `fps`, tone mapping, the scale cascade).
The `fps` filter's output grid is the output frame numbers themselves (pts n = frame n, in
1/frame_rate), so frames fed from an earlier keyframe give the single pass's frames from the
chunk's start on; the ones before it are dropped, and decoding stops once the filter has put
out a frame at or past the chunk's end. Only the last chunk decodes to the end of the file and
gives its last frame the probed duration, as `run_single_pass` does.

Each rung's encoder sees the frames with their global pts, so IDRs fall on the global segment
starts (engine/encode.py `VideoEncoder.prepare`). FFmpeg's mp4 muxer starts every file's decode
timeline at 0, so the chunk's fragments are then moved onto the global timeline: every `tfdt`
advanced by the chunk's start, `mfhd` sequence numbers and file names counted from its first
segment. The result is the segment files the single pass's muxer would have written for those
frames (before packager/timeline.py `finish_tracks`, which the stitch runs on the whole).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from engine.audiopass import check_output, encode_audio
from engine.chunks import Chunk
from engine.encode import VideoEncoder
from engine.encoders import chunk_settings
from engine.errors import EngineError, NotMediaError, ResourceLimitError, UndecodableError
from engine.graphs import VideoGraph
from engine.hdr import plan_tone_map
from engine.keyframes import decodes_alone
from engine.loudness import GainPlan, Loudness, plan_source
from engine.options import EncodePlan, TranscodeOptions
from engine.pipeline import FrameConsumer, finish_all
from engine.source import SourceInfo, pick_video_stream
from ladders.model import Rung
from packager.cmaf import list_segment_files, read_init
from packager.model import INIT_NAME, segment_name
from packager.moofedit import renumber_fragments, replace_file, shift_tfdts

# How far before a chunk's start the second seek aims when the first landed after it (seconds);
# each further try doubles it.
SEEK_BACKOFF = 1.0


@dataclass
class RangeStats:
    packets: int = 0
    decoded_frames: int = 0
    errors: int = 0
    seeks: int = 0
    bad_keyframes: int = 0  # keyframes a seek landed on that did not decode alone
    first_time: float = 0.0  # where decoding started, seconds on the output timeline


@dataclass
class ChunkResult:
    """What a chunk job wrote: one folder per rung under `workdir`, globally numbered segments."""

    chunk: Chunk
    workdir: Path
    rungs: list[str]
    output_frames: int
    stats: dict[str, Any] = field(default_factory=dict)

    def folder(self, rung: str) -> Path:
        return self.workdir / rung


class RangeDecode:
    """The source's video frames from the keyframe at or before `start` (seconds on the output
    timeline, where the first frame is 0), their pts moved as engine/decode.py moves them."""

    def __init__(self, source: SourceInfo, start: float, deadline: float | None = None) -> None:
        try:
            self.container: Any = av.open(source.path, mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, ValueError) as exc:
            raise NotMediaError(f"not a media file: {exc}") from exc
        self.video: Any = pick_video_stream(self.container)
        self.video.thread_type = "AUTO"
        self.shift = round(source.start_time / self.video.time_base)
        self.source_path = str(source.path)
        self.start = start
        self.deadline = deadline
        self.stats = RangeStats()

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> RangeDecode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _packets(self) -> Iterator[Any]:
        for packet in self.container.demux(self.video):
            self.stats.packets += 1
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ResourceLimitError("decoding took longer than the policy allows")
            yield packet

    def _landed_well(self, packets: Iterator[Any]) -> tuple[bool, Iterator[Any]]:
        """Whether the seek's first keyframe decodes alone (engine/keyframes.py), and the
        packets from it on, that one included."""
        head = next(packets, None)
        while head is not None and not head.size:
            head = next(packets, None)
        if head is None:
            return True, packets
        ok = not head.is_keyframe or decodes_alone(self.source_path, head)
        if not ok:
            self.stats.bad_keyframes += 1
        return ok, itertools.chain([head], packets)

    def _decoded(self, packets: Iterator[Any]) -> Iterator[Any]:
        for packet in packets:
            try:
                frames = packet.decode()
            except av.error.MemoryError:
                raise
            except av.error.FFmpegError:
                self.stats.errors += 1
                continue
            for frame in frames:
                if frame.pts is not None:
                    frame.pts -= self.shift
                    self.stats.decoded_frames += 1
                    yield frame

    def frames(self) -> Iterator[Any]:
        """Seek, and seek again twice as far back while the first frame decoded lies after
        `start` (a demuxer may land past the target) or the keyframe landed on does not
        decode alone (engine/keyframes.py); from the file's start when nothing decodes after
        a seek (a stream with one keyframe, as some MPEG-TS recordings are)."""
        backoff = 0.0 if self.start > 0 else math.inf
        while True:
            target = self.start - backoff
            if target > 0:
                offset = round(target / self.video.time_base) + self.shift
                self.container.seek(offset, backward=True, any_frame=False, stream=self.video)
                self.stats.seeks += 1
            elif self.stats.seeks:  # back to the file's start after seeks that missed
                self.container.seek(0, backward=True, any_frame=False, stream=self.video)
                self.stats.seeks += 1
            packets = self._packets()
            if target > 0:
                landed, packets = self._landed_well(packets)
                if not landed:  # a keyframe that needs earlier pictures: start further back
                    self.video.codec_context.flush_buffers()
                    backoff = max(SEEK_BACKOFF, 2 * backoff)
                    continue
            decoded = self._decoded(packets)
            first = next(decoded, None)
            if first is None and target <= 0:
                raise UndecodableError("undecodable video stream: no frame decoded")
            if first is not None and (
                float(first.pts * first.time_base) <= self.start or target <= 0
            ):
                self.stats.first_time = float(first.pts * first.time_base)
                yield first
                yield from decoded
                return
            self.video.codec_context.flush_buffers()
            backoff = math.inf if first is None else max(SEEK_BACKOFF, 2 * backoff)


def encode_chunk(
    source: SourceInfo,
    chunk: Chunk,
    plan: EncodePlan,
    options: TranscodeOptions,
    workdir: Path,
    taps: Sequence[FrameConsumer] = (),
    progress: Callable[[float], None] | None = None,
    rungs: Sequence[str] | None = None,
    lead: Callable[[Any, float], None] | None = None,
) -> ChunkResult:
    """The segments of the chunk's frames for each rung named in `rungs` (every rung when
    None; none: the frames only go to `taps`), in `workdir/<rung>/` (see the module doc).

    The normalization graph makes the top rung's frames and those of the rungs encoded here,
    each scaled from the one above it among them (engine/graphs.py's cascade): every rung
    gets the single pass's pictures when all are encoded together (as the chunks of one run
    encode the rungs they share), and a rung encoded with the top alone (the preview) is
    scaled from the top directly, the cheapest way to its size. `taps` see each kept frame of
    the top rung with its global time, in order, as the single pass's taps do (thumbnails and
    analyzers; merging per-chunk tap results is the caller's: engine/rangetaps.py). `lead`
    sees the top rung's frame before the chunk's first (decoded for it: the sampler's
    previous frame), when the chunk does not start the video."""
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [r.name for r in plan.rungs] if rungs is None else list(rungs)
    unknown = set(chosen) - {r.name for r in plan.rungs}
    if unknown:
        raise EngineError(f"chunk {chunk.index}: rungs {chosen} are not the plan's")
    made = [i for i, rung in enumerate(plan.rungs) if i == 0 or rung.name in chosen]
    encoders: list[VideoEncoder | None] = [
        VideoEncoder(
            workdir / plan.rungs[i].name,
            plan.rungs[i],
            chunk_settings(plan.settings[i], chunk.index > 0),
            options.segment_seconds,
        )
        if plan.rungs[i].name in chosen
        else None
        for i in made
    ]
    live = [encoder for encoder in encoders if encoder is not None]
    for encoder in live:
        encoder.start()
    try:
        graph_rungs = [plan.rungs[i] for i in made]
        stats = _feed_range(
            source, chunk, plan, graph_rungs, options, encoders, taps, progress, lead
        )
    finally:
        finish_all(live)
    for rung in plan.rungs:
        if rung.name in chosen:
            move_to_timeline(workdir / rung.name, chunk, plan.frame_rate)
    names = [r.name for r in plan.rungs if r.name in chosen]
    return ChunkResult(chunk, workdir, names, stats["output_frames"], stats)


def _feed_range(
    source: SourceInfo,
    chunk: Chunk,
    plan: EncodePlan,
    rungs: Sequence[Rung],
    options: TranscodeOptions,
    encoders: Sequence[VideoEncoder | None],
    taps: Sequence[FrameConsumer],
    progress: Callable[[float], None] | None,
    lead: Callable[[Any, float], None] | None = None,
) -> dict[str, Any]:
    """Decode, normalize and encode the chunk's frames (a rung whose encoder is None is made
    and dropped); the numbers for the report."""
    lead_frame = chunk.start_frame - 1 if lead is not None and chunk.start_frame > 0 else None
    frame_rate = plan.frame_rate
    frame_time = float(1 / frame_rate)
    end = None if chunk.last else chunk.end_frame
    kept = [0] * len(encoders)
    dropped = 0
    past_end = False
    graph: VideoGraph | None = None

    def feed(per_rung: list[list[Any]]) -> None:
        nonlocal dropped, past_end
        for index, (encoder, frames) in enumerate(zip(encoders, per_rung, strict=True)):
            for frame in frames:
                if frame.pts < chunk.start_frame:
                    dropped += index == 0
                    if index == 0 and frame.pts == lead_frame and lead is not None:
                        lead(frame, frame.pts * frame_time)
                elif end is not None and frame.pts >= end:
                    past_end = True
                else:
                    if encoder is not None:
                        encoder.put(frame)
                    kept[index] += 1
                    if index == 0:
                        for tap in taps:
                            tap.on_video(frame, frame.pts * frame_time)
        if progress is not None and per_rung[0]:
            progress(min(1.0, kept[0] / max(1, chunk.frames)))

    deadline = time.monotonic() + options.policy.max_wall_seconds
    held_back: Any = None
    # From the frame before the chunk's when `lead` wants it.
    start_seconds = float(
        (lead_frame if lead_frame is not None else chunk.start_frame) / frame_rate
    )
    with RangeDecode(source, start_seconds, deadline) as decode:
        for frame in decode.frames():
            if graph is None:
                graph = VideoGraph(
                    frame,
                    decode.video.time_base,
                    source.rotation,
                    frame_rate,
                    rungs,
                    threads=options.filter_threads,
                    tone_map=plan_tone_map(source.color, options.tone_map),
                )
            if held_back is not None:
                graph.push(held_back)
                feed(graph.pull_all())
                if past_end:
                    break
            held_back = frame
        stats = decode.stats
        time_base = decode.video.time_base
    if graph is None:
        raise UndecodableError("undecodable video stream: no frame decoded")
    if not past_end:  # the end of the file (the last chunk): as run_single_pass ends
        file_end = round(Fraction(source.duration).limit_denominator(100000) / time_base)
        if file_end > held_back.pts:
            held_back.duration = file_end - held_back.pts
        graph.push(held_back)
        graph.push(None)
        feed(graph.pull_all())
    if len(set(kept)) != 1 or (end is not None and kept[0] != chunk.frames) or not kept[0]:
        raise EngineError(
            f"chunk {chunk.index}: frames per rung {kept}, planned {chunk.frames} "
            f"(output frames {chunk.start_frame}..{chunk.end_frame})"
        )
    return {
        "packets": stats.packets,
        "decoded_video_frames": stats.decoded_frames,
        "decode_errors": stats.errors,
        "output_frames": kept[0],
        "frames_before_start": dropped,  # filtered, then dropped: the cost of the seek
        "decode_started_at": round(stats.first_time, 6),
        "seeks": stats.seeks,
        "bad_keyframes": stats.bad_keyframes,
    }


def move_to_timeline(folder: Path, chunk: Chunk, frame_rate: Fraction) -> None:
    """Put a chunk's freshly muxed track folder on the presentation's timeline: decode times
    advanced by the chunk's start, fragments and files numbered from its first segment."""
    paths = list_segment_files(folder)
    if not paths:
        raise EngineError(f"{folder}: the chunk's encoder wrote no segment")
    if not chunk.last and len(paths) != chunk.segment_files:
        raise EngineError(f"{folder}: {len(paths)} segments, planned {chunk.segment_files}")
    timescale = read_init((folder / INIT_NAME).read_bytes()).timescale
    ticks = chunk.start_frame * Fraction(timescale) / frame_rate
    if ticks.denominator != 1:
        raise EngineError(f"{folder}: frame {chunk.start_frame} is not on the {timescale} Hz grid")
    # From the last file down: every new number is at least the old one, so none is overwritten.
    for offset, path in reversed(list(enumerate(paths))):
        number = chunk.first_segment + offset
        data = renumber_fragments(shift_tfdts(path.read_bytes(), int(ticks)), number)
        replace_file(folder / segment_name(number), data)
        if number != offset + 1:
            path.unlink()


@dataclass(frozen=True, slots=True)
class AudioResult:
    folder: Path
    loudness: tuple[Loudness | None, GainPlan | None, Loudness | None]


def encode_audio_track(
    source: SourceInfo,
    plan: EncodePlan,
    options: TranscodeOptions,
    folder: Path,
    taps: Sequence[Any] = (),
) -> AudioResult:
    """The audio track of the whole source in `folder`, loudness-normalized as the single pass
    does: the source measured first, the track encoded, measured, and encoded again when it
    missed (engine/audiopass.py `check_output`). `taps` see the first encode's frames, as the
    single pass's audio taps do."""
    rung = plan.audio_rung
    if rung is None:
        raise EngineError("the source has no audio to encode")
    loud = options.loudness
    measured, gain = (
        plan_source(source.path, source.duration, loud) if loud.enabled else (None, None)
    )
    encode_audio(source, rung, plan.frame_rate, options.segment_seconds, gain, folder, taps)
    output = None
    if measured is not None and gain is not None:
        gain, output = check_output(
            source, rung, plan.frame_rate, options.segment_seconds, loud, measured, gain, folder
        )
    return AudioResult(folder, (measured, gain, output))
