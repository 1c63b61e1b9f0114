"""report.json: what the job saw, chose, wrote and how long each stage took."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.encoders import EncoderSettings
from engine.source import SourceInfo, fraction_text
from ladders.model import AudioRung, Rung
from packager.model import Track

REPORT_VERSION = 1


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def rendition_report(track: Track) -> dict[str, Any]:
    durations = [round(float(s.seconds(track.timescale)), 6) for s in track.segments]
    return {
        "codecs": track.codecs,
        "average_bitrate": track.average_bandwidth,
        "peak_bitrate": track.peak_bandwidth,
        "segment_count": len(track.segments),
        "segment_durations": durations,
        "duration": round(float(track.presentation_duration), 6),
        "bytes": track.init_size + sum(s.size for s in track.segments),
    }


def build_report(
    source: SourceInfo,
    rungs: Sequence[Rung],
    settings: Sequence[EncoderSettings],
    audio_rung: AudioRung | None,
    video_tracks: Sequence[Track],
    audio_track: Track | None,
    frame_rate: Fraction,
    decode_stats: dict[str, Any],
    thumbnails: dict[str, Any],
    stages: dict[str, float],
    outdir: Path,
) -> dict[str, Any]:
    ladder_video = [
        {"name": r.name, "width": r.width, "height": r.height, **s.to_json()}
        for r, s in zip(rungs, settings, strict=True)
    ]
    ladder_audio = (
        {
            "name": audio_rung.name,
            "codec": audio_rung.codec,
            "bitrate": audio_rung.bitrate,
            "sample_rate": audio_rung.sample_rate,
            "channels": audio_rung.channels,
        }
        if audio_rung is not None
        else None
    )
    renditions = {t.id: rendition_report(t) for t in video_tracks}
    if audio_track is not None:
        renditions[audio_track.id] = rendition_report(audio_track)
    return {
        "version": REPORT_VERSION,
        "source": source.to_json(),
        "output": {
            "frame_rate": fraction_text(frame_rate),
            "segment_seconds": settings[0].gop_seconds if settings else None,
            "hls": "master.m3u8",
            "dash": "manifest.mpd",
            **thumbnails,
        },
        "ladder": {"video": ladder_video, "audio": ladder_audio},
        "renditions": renditions,
        "decode": decode_stats,
        "bytes_written": folder_bytes(outdir),
        "stages": stages,
    }


def timing_report(
    source: SourceInfo, frame_rate: Fraction, decode_stats: dict[str, Any]
) -> dict[str, Any]:
    """How the source's timing was read and what the output made of it (engine/timing.py):
    held frames repeated, the audio past the video's end trimmed (and not decoded)."""
    output_frames = int(decode_stats.get("output_frames", 0))
    return {
        "source_duration": source.duration,
        "longest_stream_duration": source.longest_duration,
        "variable_frame_rate": source.variable_frame_rate,
        "average_frame_rate": fraction_text(source.frame_rate),
        "nominal_frame_rate": fraction_text(source.nominal_frame_rate or source.frame_rate),
        "held_frames": source.held_frames,
        "longest_frame": source.longest_frame,
        "output_frame_rate": fraction_text(frame_rate),
        "output_frames": output_frames,
        "output_duration": round(float(output_frames / frame_rate), 6) if frame_rate else 0.0,
        "audio_trimmed": source.audio_beyond_video,
        "audio_packets_skipped": int(decode_stats.get("audio_packets_skipped", 0)),
    }
