"""The end of a job, shared by the single pass (engine/pipeline.py) and the stitch of a
chunked one (engine/stitch.py): track folders finished and measured, manifests, download.mp4,
and report.json; then the staging folder is published."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.hdr import not_applied, plan_tone_map
from engine.loudness import GainPlan, Loudness, loudness_report
from engine.options import EncodePlan, StageClock, TranscodeOptions
from engine.report import build_report, timing_report
from engine.source import SourceInfo
from packager.cmaf import describe_track
from packager.manifests import write_manifests
from packager.model import Track
from packager.progressive import Download, write_download
from packager.timeline import finish_tracks


def prepare_outdir(outdir: Path) -> Path:
    """A fresh staging folder next to `outdir`; `outdir` must not hold anything yet."""
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise EngineError(f"output folder {outdir} exists and is not empty")
    outdir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))


def publish_outdir(staging: Path, outdir: Path) -> None:
    if outdir.exists():
        outdir.rmdir()
    staging.rename(outdir)


def discard_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def package(
    staging: Path, plan: EncodePlan, options: TranscodeOptions, clock: StageClock
) -> tuple[list[Track], Track | None, Download | None]:
    """Finish the track folders in `staging` (packager/timeline.py), measure them, write the
    manifests and download.mp4."""
    rungs, audio_rung = plan.rungs, plan.audio_rung

    def tracks() -> tuple[list[Track], Track | None]:
        finish_tracks(
            [staging / rung.name for rung in rungs],
            staging / audio_rung.name if audio_rung is not None else None,
            options.segment_seconds,
        )
        video = [describe_track(staging / rung.name, rung.name) for rung in rungs]
        audio = (
            describe_track(staging / audio_rung.name, audio_rung.name)
            if audio_rung is not None
            else None
        )
        write_manifests(staging, video, audio)
        return video, audio

    video_tracks, audio_track = clock.run("package", tracks)
    download = (
        clock.run("download", lambda: write_download(staging, video_tracks, audio_track))
        if options.download
        else None
    )
    return video_tracks, audio_track, download


def write_report(
    staging: Path,
    source: SourceInfo,
    plan: EncodePlan,
    options: TranscodeOptions,
    tracks: tuple[list[Track], Track | None, Download | None],
    decode_stats: dict[str, Any],
    thumbs: dict[str, Any],
    stages: dict[str, float],
    loudness: tuple[Loudness | None, GainPlan | None, Loudness | None],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json (engine/report.py) written into `staging`; returned."""
    video_tracks, audio_track, download = tracks
    report = build_report(
        source,
        plan.rungs,
        plan.settings,
        plan.audio_rung,
        video_tracks,
        audio_track,
        plan.frame_rate,
        decode_stats,
        thumbs,
        stages,
        staging,
    )
    report["timing"] = timing_report(source, plan.frame_rate, decode_stats)
    report.update(extra or {})
    if download is not None:
        report["output"]["download"] = download.to_json()  # its time: stages.download
    tone_map = plan_tone_map(source.color, options.tone_map)
    report["tone_mapping"] = (
        tone_map.to_json() if tone_map is not None else not_applied(source.color)
    )
    if plan.audio_rung is not None:
        report["loudness"] = loudness_report(options.loudness, *loudness)
    (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
