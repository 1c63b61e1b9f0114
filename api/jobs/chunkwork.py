"""Split and stitch, the work each job does in its sandboxed child (engine/sandbox.py
`run_limited`, bounded like the single pass): plan, the preview, one chunk, the audio track,
the early (playable) presentation, the assembly.

Every job probes the same source with the same options, so each one plans the same chunks
(engine/chunks.py is deterministic); a part's folder carries `part.json` (what the stitch needs
to know of it) next to its track folders, so the assembly rebuilds the parts from files alone.

By default a run has no preview part (issue 15: no second decode of the video): each chunk
decodes its range, encodes every rung and feeds the frame analyzers (moderation sampling, PDQ)
and the thumbnail tap its frames (engine/rangetaps.py), and the assembly merges the chunks'
taps into exactly what the single pass's produce (engine/tapmerge.py). With `preview_rungs` ≥ 1
the preview job ("Playable early") decodes the whole video a second time: it encodes the lowest
rungs over the whole timeline and feeds the analyzers and the thumbnail tap the top rung's
frames, as the single pass does, and the chunk jobs encode the other rungs of their range with
no tap; once the preview and the audio are done, `early_job` stitches them into a complete
presentation of the low rungs (published first, api/jobs/chunking.py). The audio job
fingerprints the normalized audio as it encodes it (the frames the single pass's audio taps
see). The assembly stitches every rung from the parts that hold it (engine/stitch.py
`holders`) and decodes nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.analysis import build_analyzers, build_fingerprint, close_analyzers, collect_results
from engine.chunked import AudioResult, ChunkResult, encode_audio_track, encode_chunk
from engine.chunks import Chunk, ChunkPlan, plan_chunks
from engine.encoders import select_encoder
from engine.errors import EngineError
from engine.jobs import KILL_GRACE_SECONDS
from engine.loudness import GainPlan, Loudness
from engine.options import EncodePlan, TranscodeOptions, plan_encoders, planned_frames
from engine.outputs import discard_staging, prepare_outdir, publish_outdir
from engine.pipeline import probe_and_check
from engine.rangetaps import ARTIFACTS, RangeTaps
from engine.sandbox import ProgressFn
from engine.source import SourceInfo
from engine.stitch import stitch
from engine.tapmerge import merge_taps
from engine.thumbnails import ThumbnailTap

PART_FILE = "part.json"


PREVIEW_FOLDER, AUDIO_FOLDER, THUMBS_FOLDER = "preview", "audio", "thumbs"
ARTIFACTS_FOLDER = ARTIFACTS
"""In the preview's folder, or (merged from the chunks') in the parts' folder: the analyzers'
worst-frame JPEGs (stored under `safety/`; `artifacts_of`)."""
WHOLE = 1 << 30
"""Segments per chunk that make one chunk of any video (the preview job's range)."""


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What the planner learns: the source's duration, its chunks, whether it has audio, and
    how many rungs the preview job encodes (0: none, the ladder has a single rung)."""

    duration: float
    chunks: int
    audio: bool
    preview_rungs: int
    encoder: str  # the encoder every part of the run uses (engine/encoders.py ENCODERS)


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


def split_rungs(encode: EncodePlan, preview_rungs: int) -> tuple[list[str], list[str]]:
    """(the preview job's rungs, the chunk jobs' rungs): the lowest `preview_rungs` rungs
    first, always leaving the top rung (and so at least one) to the chunks."""
    names = [rung.name for rung in encode.rungs]
    count = max(0, min(preview_rungs, len(names) - 1))
    return names[len(names) - count :], names[: len(names) - count]


def plan_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    preview_rungs: int,
    progress: ProgressFn | None = None,
) -> JobPlan:
    source, encode, plan = _plan(path, options, segments)
    low, _ = split_rungs(encode, preview_rungs)
    return JobPlan(
        float(source.duration),
        len(plan.chunks),
        encode.audio_rung is not None,
        len(low),
        select_encoder(options.encoder).name,
    )


def _whole(plan: ChunkPlan, encode: EncodePlan, options: TranscodeOptions) -> Chunk:
    """The presentation as one chunk, from its first frame to its end."""
    return plan_chunks(
        plan.total_frames, encode.gop_frames, WHOLE, encode.frame_rate, options.segment_seconds
    ).chunks[0]


def _write_facts(folder: Path, result: ChunkResult, **more: Any) -> None:
    facts = {
        "chunk": asdict(result.chunk),
        "frames": result.output_frames,
        "stats": result.stats,
        "rungs": result.rungs,
        **more,
    }
    (folder / PART_FILE).write_text(json.dumps(facts))


def preview_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    preview_rungs: int,
    folder: Path,
    progress: ProgressFn | None = None,
) -> int:
    """The whole video's one decode (see the module doc): the preview rungs in `folder/<rung>`,
    thumbnails in `folder/thumbs`, the frame analyzers' results in `part.json`; its frames."""
    source, encode, plan = _plan(path, options, segments)
    low, _ = split_rungs(encode, preview_rungs)
    spec = options.analysis
    if spec is not None and encode.audio_rung is not None:  # the audio job fingerprints
        spec = replace(spec, fingerprint=None)
    analyzers = build_analyzers(spec, source.duration) if spec is not None and spec.enabled else []
    thumbs_dir = folder / THUMBS_FOLDER
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    thumbnails = ThumbnailTap(thumbs_dir)
    taps: list[Any] = [*([thumbnails] if options.thumbnails else []), *analyzers]
    try:
        whole = _whole(plan, encode, options)
        result = encode_chunk(source, whole, encode, options, folder, taps, progress, low)
    except BaseException:
        close_analyzers(analyzers)
        raise
    analysis = collect_results(analyzers) if analyzers else None
    duration = float(result.output_frames / encode.frame_rate)
    thumbs = thumbnails.close(duration) if options.thumbnails else {}
    _write_facts(folder, result, analysis=analysis, thumbs=thumbs)
    return result.output_frames


def chunk_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    preview_rungs: int,
    index: int,
    folder: Path,
    progress: ProgressFn | None = None,
) -> int:
    """Encode chunk `index` of the rungs the preview leaves (one folder per rung, and
    `part.json`) into `folder`; its frames. With no preview part (no preview rung), the chunk
    encodes every rung and runs the frame taps on its range (engine/rangetaps.py), which the
    assembly merges (engine/tapmerge.py)."""
    source, encode, plan = _plan(path, options, segments)
    if index >= len(plan.chunks):
        raise EngineError(f"chunk {index}: the plan has {len(plan.chunks)} chunks")
    low, high = split_rungs(encode, preview_rungs)
    chunk = plan.chunks[index]
    taps = (
        None
        if low
        else RangeTaps(
            options.analysis if options.analysis is not None and options.analysis.enabled else None,
            options.thumbnails,
            float(source.duration),
            chunk.start_frame,
            float(1 / encode.frame_rate),
            folder,
        )
    )
    try:
        result = encode_chunk(
            source, chunk, encode, options, folder, taps.taps if taps else (), progress, high,
            taps.lead if taps else None,
        )  # fmt: skip
    except BaseException:
        if taps is not None:
            taps.abort()
        raise
    if taps is not None:
        taps.close()
    _write_facts(folder, result)
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


def _facts(folder: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((folder / PART_FILE).read_text())
    return facts


def _chunk_result(folder: Path) -> ChunkResult:
    facts = _facts(folder)
    return ChunkResult(
        Chunk(**facts["chunk"]), folder, facts["rungs"], facts["frames"], facts["stats"]
    )


def _audio_result(folder: Path, rung: str) -> AudioResult:
    facts = _facts(folder)
    measured, output = (Loudness(**facts[k]) if facts[k] else None for k in ("measured", "output"))
    gain = GainPlan(**facts["gain"]) if facts["gain"] else None
    return AudioResult(folder / rung, (measured, gain, output))


def _present(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    parts: Path,
    outdir: Path,
    rungs: list[str] | None,
    chunk_folders: list[str],
    note: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stitch `rungs` (None: every rung) from the preview and the folders `chunk_folders`,
    with the audio track, the preview's thumbnails and the preview's and audio's analysis,
    into `outdir`; returns the report."""
    source, encode, plan = _plan(path, options, segments)
    if rungs is not None:
        keep = [i for i, rung in enumerate(encode.rungs) if rung.name in rungs]
        encode = replace(
            encode,
            rungs=[encode.rungs[i] for i in keep],
            settings=[encode.settings[i] for i in keep],
        )
    preview = parts / PREVIEW_FOLDER
    chunks = [_chunk_result(parts / name) for name in chunk_folders]
    has_preview = (preview / PART_FILE).is_file()
    results = [*([_chunk_result(preview)] if has_preview else []), *chunks]
    audio = (
        _audio_result(parts / AUDIO_FOLDER, encode.audio_rung.name)
        if encode.audio_rung is not None
        else None
    )
    if has_preview:  # the preview tapped the whole video
        seen = _facts(preview)
        analysis, thumbs = seen.get("analysis"), seen.get("thumbs") or {}
        thumbs_dir = preview / THUMBS_FOLDER
    else:  # each chunk tapped its range
        thumbs_dir = parts / THUMBS_FOLDER
        frames = sum(c.output_frames for c in chunks)
        analysis, thumbs = merge_taps(
            [parts / name for name in chunk_folders],
            options.analysis if options.analysis is not None and options.analysis.enabled else None,
            float(source.duration),
            float(frames / encode.frame_rate),
            audio is not None,
            thumbs_dir if options.thumbnails else None,
            parts / ARTIFACTS_FOLDER,
        )
    if audio is not None and options.analysis is not None:
        heard = _facts(parts / AUDIO_FOLDER)["analysis"]
        analysis = {**(analysis or {}), **heard} if heard or analysis else None
    staging = prepare_outdir(outdir)
    try:
        for name in ("poster", "storyboard", "storyboard_vtt"):
            if name in thumbs:
                shutil.copyfile(thumbs_dir / thumbs[name], staging / thumbs[name])
        extra = {**({"analysis": analysis} if analysis is not None else {}), **(note or {})}
        report = stitch(staging, source, encode, plan, options, results, audio, thumbs, None, extra)
        publish_outdir(staging, outdir)
        return report
    except BaseException:
        discard_staging(staging)
        raise


def early_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    preview_rungs: int,
    parts: Path,
    outdir: Path,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The playable-early presentation: the preview's rungs and the audio track, complete over
    the whole video (manifests, download.mp4, thumbnails, report) in `outdir`."""
    low = _facts(parts / PREVIEW_FOLDER)["rungs"]
    if not low:
        raise EngineError("the preview holds no rung to present")
    return _present(path, options, segments, parts, outdir, low, [], {"early": {"rungs": low}})


def assemble_job(
    path: Path,
    options: TranscodeOptions,
    segments: int,
    preview_rungs: int,
    parts: Path,
    outdir: Path,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Stitch the parts under `parts` (`preview/`, `chunk-NNNN/`, `audio/`) into the whole
    ladder in `outdir`, with the preview's thumbnails and analysis; returns the report."""
    _, _, plan = _plan(path, options, segments)
    folders = [chunk_folder(c.index) for c in plan.chunks]
    return _present(path, options, segments, parts, outdir, None, folders)


def limits_of(options: TranscodeOptions) -> dict[str, Any]:
    """The single pass's bounds (engine/jobs.py `transcode_limited`) for a part's child."""
    return {
        "wall_seconds": options.policy.max_wall_seconds + KILL_GRACE_SECONDS,
        "memory_bytes": options.policy.max_memory_bytes,
    }


def artifacts_of(parts: Path) -> Path:
    """Where the presentation of the run's parts under `parts` found its worst-frame images:
    the preview's, or the merge's (`_present`)."""
    preview = parts / PREVIEW_FOLDER
    return (
        preview / ARTIFACTS_FOLDER if (preview / PART_FILE).is_file() else parts / ARTIFACTS_FOLDER
    )


def chunk_folder(index: int) -> str:
    """A chunk's folder name among a run's parts (and under its storage prefix)."""
    return f"chunk-{index:04d}"
