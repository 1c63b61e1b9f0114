"""Split and stitch, the work each job does in its sandboxed child (engine/sandbox.py
`run_limited`, bounded like the single pass): plan, one chunk, the audio track, the assembly.

Every job probes the same source with the same options, so each one plans the same chunks
(engine/chunks.py is deterministic); a part's folder carries `part.json` (what the stitch needs
to know of it) next to its track folders, so the assembly rebuilds the parts from files alone.

Analysis and thumbnails (first cut): the audio job fingerprints the normalized audio as it
encodes it (the frames the single pass's audio taps see); the chunk jobs only note which output
frames carry a source keyframe's flag; the assembly decodes the stitched top rung once and feeds
the frame analyzers (moderation sampling, PDQ) and the thumbnail tap the same frames at the same
output times and flags as the single pass, read back from the encoded output, so safety routing
gets the inputs it gets today.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import av

from engine.analysis import build_analyzers, build_fingerprint, close_analyzers, collect_results
from engine.chunked import AudioResult, ChunkResult, encode_audio_track, encode_chunk
from engine.chunks import Chunk, ChunkPlan, plan_chunks
from engine.errors import EngineError
from engine.loudness import GainPlan, Loudness
from engine.options import EncodePlan, TranscodeOptions, plan_encoders, planned_frames
from engine.outputs import discard_staging, prepare_outdir, publish_outdir
from engine.pipeline import probe_and_check
from engine.sandbox import ProgressFn
from engine.source import SourceInfo
from engine.stitch import stitch
from engine.thumbnails import ThumbnailTap
from packager.model import INIT_NAME

PART_FILE = "part.json"


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What the planner learns: the source's duration, its chunks, whether it has audio."""

    duration: float
    chunks: int
    audio: bool


def _plan(
    path: Path, options: TranscodeOptions, segments: int
) -> tuple[SourceInfo, EncodePlan, ChunkPlan]:
    source = probe_and_check(path, options.policy)
    encode = plan_encoders(source, options)
    frames = planned_frames(source, encode.frame_rate)
    chunks = plan_chunks(
        frames, encode.gop_frames, segments, encode.frame_rate, options.segment_seconds
    )
    return source, encode, chunks


def plan_job(
    path: Path, options: TranscodeOptions, segments: int, progress: ProgressFn | None = None
) -> JobPlan:
    source, encode, plan = _plan(path, options, segments)
    return JobPlan(float(source.duration), len(plan.chunks), encode.audio_rung is not None)


class SourceKeys:
    """A chunk's tap: the output frames that carry a source keyframe's flag (the sampler's
    keyframe samples; classifiers/sampling.py), which decoding the output cannot tell."""

    def __init__(self, frame_rate: float) -> None:
        self.frame_rate = frame_rate
        self.frames: list[int] = []

    def on_video(self, frame: Any, time: float) -> None:
        if frame.key_frame:
            self.frames.append(round(time * self.frame_rate))


def chunk_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    index: int,
    folder: Path,
    progress: ProgressFn | None = None,
) -> int:
    """Encode chunk `index` into `folder` (one folder per rung, and `part.json`); its frames."""
    source, encode, plan = _plan(path, options, segments)
    if index >= len(plan.chunks):
        raise EngineError(f"chunk {index}: the plan has {len(plan.chunks)} chunks")
    keys = SourceKeys(float(encode.frame_rate))
    result = encode_chunk(source, plan.chunks[index], encode, options, folder, [keys], progress)
    facts = {
        "chunk": asdict(result.chunk),
        "frames": result.output_frames,
        "stats": result.stats,
        "source_keys": keys.frames,
    }
    (folder / PART_FILE).write_text(json.dumps(facts))
    return result.output_frames


def audio_job(
    path: Path, options: TranscodeOptions, folder: Path, progress: ProgressFn | None = None
) -> None:
    """Encode the audio track into `folder / <rung>`; its loudness and its fingerprint (the
    single pass's audio analysis, on the same frames) in `folder/part.json`."""
    source = probe_and_check(path, options.policy)
    encode = plan_encoders(source, options)
    if encode.audio_rung is None:
        raise EngineError("the source has no audio track to encode")
    spec = options.analysis
    taps = [build_fingerprint(spec.fingerprint)] if spec and spec.fingerprint is not None else []
    result = encode_audio_track(source, encode, options, folder / encode.audio_rung.name, taps)
    measured, gain, output = result.loudness
    facts = {
        "analysis": collect_results(taps) if taps else {},
        "measured": asdict(measured) if measured else None,
        "gain": asdict(gain) if gain else None,
        "output": asdict(output) if output else None,
    }
    (folder / PART_FILE).write_text(json.dumps(facts))


def _chunk_result(folder: Path, rungs: list[str]) -> ChunkResult:
    facts = json.loads((folder / PART_FILE).read_text())
    return ChunkResult(Chunk(**facts["chunk"]), folder, rungs, facts["frames"], facts["stats"])


def _facts(folder: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((folder / PART_FILE).read_text())
    return facts


def _source_keys(folder: Path) -> set[int]:
    return set(_facts(folder)["source_keys"])


def _audio_result(folder: Path, rung: str) -> AudioResult:
    facts = json.loads((folder / PART_FILE).read_text())
    measured, output = (Loudness(**facts[k]) if facts[k] else None for k in ("measured", "output"))
    gain = GainPlan(**facts["gain"]) if facts["gain"] else None
    return AudioResult(folder / rung, (measured, gain, output))


def _track_file(folders: list[Path], dest: Path) -> Path:
    """One fragmented MP4 of a track: the first folder's init, then every segment in order."""
    with dest.open("wb") as out:
        out.write((folders[0] / INIT_NAME).read_bytes())
        for folder in folders:
            for path in sorted(folder.glob("*.m4s")):  # zero-padded numbers, from any first
                out.write(path.read_bytes())
    return dest


def _analyse(video: Path, fps: float, taps: list[Any], frames: int, keys: set[int]) -> None:
    """Feed the taps the top rung's frames: frame k at k / fps, flagged a keyframe where the
    source's was, as the single pass does."""
    fed = 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for picture in container.decode(stream):
            picture.key_frame = fed in keys  # type: ignore[misc]  # settable in PyAV 18
            for tap in taps:
                tap.on_video(picture, fed / fps)
            fed += 1
    if fed != frames:
        raise EngineError(f"the stitched top rung decodes to {fed} frames, planned {frames}")


def assemble_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    parts: Path,
    outdir: Path,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Stitch the parts under `parts` (`chunk-NNNN/`, `audio/`) into `outdir`, with thumbnails
    and the analysis of the stitched output (see the module doc); returns the report."""
    source, encode, plan = _plan(path, options, segments)
    rungs = [rung.name for rung in encode.rungs]
    chunks = [_chunk_result(parts / chunk_folder(c.index), rungs) for c in plan.chunks]
    audio = (
        _audio_result(parts / "audio", encode.audio_rung.name)
        if encode.audio_rung is not None
        else None
    )
    staging = prepare_outdir(outdir)
    spec = options.analysis
    if spec is not None and audio is not None:  # the audio job fingerprinted the track
        spec = replace(spec, fingerprint=None)
    analyzers = build_analyzers(spec, source.duration) if spec is not None and spec.enabled else []
    try:
        thumbnails = ThumbnailTap(staging)
        taps: list[Any] = [*([thumbnails] if options.thumbnails else []), *analyzers]
        frames = sum(c.output_frames for c in chunks)
        with tempfile.TemporaryDirectory(dir=parts) as scratch:
            top = _track_file([c.folder(rungs[0]) for c in chunks], Path(scratch) / "top.mp4")
            keys = set().union(*(_source_keys(parts / chunk_folder(c.index)) for c in plan.chunks))
            _analyse(top, float(encode.frame_rate), taps, frames, keys)
        analysis = collect_results(analyzers) if analyzers else None
        if audio is not None and options.analysis is not None:
            heard = _facts(parts / "audio")["analysis"]
            analysis = {**(analysis or {}), **heard} if heard or analysis else None
        thumbs = thumbnails.close(float(frames / encode.frame_rate)) if options.thumbnails else {}
        extra = {"analysis": analysis} if analysis is not None else None
        report = stitch(staging, source, encode, plan, options, chunks, audio, thumbs, None, extra)
        publish_outdir(staging, outdir)
        return report
    except BaseException:
        close_analyzers(analyzers)
        discard_staging(staging)
        raise


def chunk_folder(index: int) -> str:
    """A chunk's folder name among a run's parts (and under its storage prefix)."""
    return f"chunk-{index:04d}"
