"""Split and stitch, the stitch: the chunks' segments of each rung (engine/chunked.py) put into
one track folder under one init segment, then finished, measured, manifested and reported by
the same code as the single pass (engine/outputs.py), so the output has its structure.

`transcode_chunked` runs a whole chunked job in this process, one chunk after another: the
reference the tests compare with the single pass, and the shape a distributed job takes
(probe and plan; chunk jobs and the audio job anywhere; then the stitch).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from engine.chunked import AudioResult, ChunkResult, encode_audio_track, encode_chunk
from engine.chunks import ChunkPlan, plan_chunks
from engine.errors import EngineError
from engine.options import EncodePlan, StageClock, TranscodeOptions, plan_encoders, planned_frames
from engine.outputs import discard_staging, package, prepare_outdir, publish_outdir, write_report
from engine.pipeline import probe_and_check
from engine.source import SourceInfo
from engine.thumbnails import ThumbnailTap
from packager.cmaf import list_segment_files, read_init
from packager.model import INIT_NAME

DECODE_SUMS = ("packets", "decoded_video_frames", "decode_errors", "output_frames")


def check_inits(inits: Sequence[Path]) -> bool:
    """The chunks' init segments of one rung must describe the same track: identical bytes, or
    at least the same sample description (codec string, size, avcC), timescale and track id.
    Returns whether all were identical."""
    first = inits[0].read_bytes()
    reference = read_init(first)
    identical = True
    for path in inits[1:]:
        data = path.read_bytes()
        if data == first:
            continue
        identical = False
        info = read_init(data)
        same = (info.sample, info.timescale, info.track_id) == (
            reference.sample,
            reference.timescale,
            reference.track_id,
        )
        if not same:
            raise EngineError(f"{path}: its track is not {inits[0]}'s: {info} / {reference}")
    return identical


def holders(rung: str, chunks: Sequence[ChunkResult], total_frames: int) -> list[ChunkResult]:
    """The parts that hold `rung`, in timeline order; they must tile the presentation's frames
    [0, total_frames) without a gap or an overlap (the plan's chunks, or one part over the
    whole video such as the preview job's, api/jobs/chunkwork.py)."""
    ordered = sorted(
        (c for c in chunks if rung in c.rungs), key=lambda c: (c.chunk.start_frame, c.chunk.index)
    )
    at = 0
    for result in ordered:
        if result.chunk.start_frame != at:
            break
        at = result.chunk.end_frame
    else:
        if ordered and ordered[-1].chunk.last and at == total_frames:
            return ordered
    ranges = [(c.chunk.start_frame, c.chunk.end_frame) for c in ordered]
    raise EngineError(f"rung {rung}: the parts {ranges} do not cover frames 0..{total_frames}")


def gather_rung(rung: str, chunks: Sequence[ChunkResult], dest: Path) -> bool:
    """Move every chunk's segments of `rung` into `dest`, with the first chunk's init; whether
    the chunks' inits were byte-identical (`check_inits`). `chunks` are the rung's holders."""
    ordered = sorted(chunks, key=lambda c: c.chunk.start_frame)
    identical = check_inits([c.folder(rung) / INIT_NAME for c in ordered])
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(ordered[0].folder(rung) / INIT_NAME, dest / INIT_NAME)
    for result in ordered:
        for path in sorted(result.folder(rung).glob("*.m4s")):
            target = dest / path.name
            if target.exists():
                raise EngineError(f"{path}: segment {path.name} written by two chunks")
            path.rename(target)
    list_segment_files(dest)  # numbered 1..N without a gap, or it raises
    return identical


def decode_totals(plan: ChunkPlan, chunks: Sequence[ChunkResult]) -> dict[str, Any]:
    """report.json `decode` of a chunked job: the single pass's numbers summed over chunks."""
    totals: dict[str, Any] = {key: sum(c.stats.get(key, 0) for c in chunks) for key in DECODE_SUMS}
    totals["expected_frames"] = plan.total_frames
    return totals


def chunks_report(chunks: Sequence[ChunkResult], identical_inits: bool) -> dict[str, Any]:
    """report.json `chunked`: each chunk's frames and what its seek cost."""
    ordered = sorted(chunks, key=lambda c: c.chunk.index)
    return {
        "chunks": [
            {
                "start_frame": c.chunk.start_frame,
                "end_frame": c.chunk.start_frame + c.output_frames,
                "first_segment": c.chunk.first_segment,
                **{k: c.stats[k] for k in ("decode_started_at", "frames_before_start", "seeks")},
            }
            for c in ordered
        ],
        "frames_before_start": sum(c.stats["frames_before_start"] for c in ordered),
        "identical_inits": identical_inits,
    }


def stitch(
    staging: Path,
    source: SourceInfo,
    encode: EncodePlan,
    plan: ChunkPlan,
    options: TranscodeOptions,
    chunks: Sequence[ChunkResult],
    audio: AudioResult | None,
    thumbs: dict[str, Any] | None = None,
    clock: StageClock | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the chunks and the audio track in `staging` and finish the presentation there
    (manifests, download.mp4, report.json); returns the report. Each rung of `encode` is
    taken from the parts that hold it (`holders`); the report's decode figures are those of
    the top rung's parts. `thumbs` is what a thumbnail tap wrote into `staging`
    (engine/thumbnails.py `ThumbnailTap.close`); `extra` is merged into the report (a
    distributed job's `analysis`)."""
    clock = clock or StageClock()
    held = {rung.name: holders(rung.name, chunks, plan.total_frames) for rung in encode.rungs}
    identical = [
        clock.run("stitch", partial(gather_rung, rung.name, held[rung.name], staging / rung.name))
        for rung in encode.rungs
    ]
    top = held[encode.rungs[0].name]
    if (encode.audio_rung is None) != (audio is None):
        raise EngineError("the audio track does not match the plan")
    if audio is not None and encode.audio_rung is not None:
        target = staging / encode.audio_rung.name
        if audio.folder != target:
            shutil.move(audio.folder, target)
    tracks = package(staging, encode, options, clock)
    return write_report(
        staging,
        source,
        encode,
        options,
        tracks,
        decode_totals(plan, top),
        thumbs or {},
        clock.seconds,
        audio.loudness if audio is not None else (None, None, None),
        {"chunked": chunks_report(top, all(identical)), **(extra or {})},
    )


def transcode_chunked(
    input_path: str | Path,
    outdir: str | Path,
    segments_per_chunk: int,
    options: TranscodeOptions | None = None,
) -> dict[str, Any]:
    """A whole chunked job in this process, chunk after chunk (see the module doc). The
    thumbnail tap is one object fed by every chunk in order, which only works in one process."""
    options = options or TranscodeOptions()
    input_path, outdir = Path(input_path), Path(outdir)
    clock = StageClock()
    started = time.perf_counter()
    source = clock.run("probe", lambda: probe_and_check(input_path, options.policy))
    encode = plan_encoders(source, options)
    plan = plan_chunks(
        planned_frames(source, encode.frame_rate),
        encode.gop_frames,
        segments_per_chunk,
        encode.frame_rate,
        options.segment_seconds,
    )
    staging = prepare_outdir(outdir)
    work = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.chunks-", dir=outdir.parent))
    try:
        thumbnails = ThumbnailTap(staging)
        taps = [thumbnails] if options.thumbnails else []
        chunks = [
            clock.run(
                "chunks",
                partial(encode_chunk, source, c, encode, options, work / f"{c.index}", taps),
            )
            for c in plan.chunks
        ]
        audio = (
            clock.run(
                "audio",
                lambda: encode_audio_track(source, encode, options, work / "audio"),
            )
            if encode.audio_rung is not None
            else None
        )
        frames = sum(c.output_frames for c in chunks)
        thumbs = (
            clock.run("thumbnails", lambda: thumbnails.close(float(frames / encode.frame_rate)))
            if options.thumbnails
            else {}
        )
        clock.seconds["total"] = round(time.perf_counter() - started, 4)
        report = stitch(staging, source, encode, plan, options, chunks, audio, thumbs, clock)
        publish_outdir(staging, outdir)
        return report
    except BaseException:
        discard_staging(staging)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
