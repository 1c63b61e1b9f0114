"""The engine's entry points for callers (CLI, workers): each job runs in a bounded child."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.pipeline import ProgressFn, TranscodeOptions, probe_and_check, transcode
from engine.policy import InputPolicy
from engine.sandbox import run_limited
from engine.source import SourceInfo, probe

PROBE_WALL_SECONDS = 60.0


def _probe(path: Path, progress: ProgressFn | None = None) -> SourceInfo:
    return probe(path)


def probe_limited(path: Path, policy: InputPolicy | None = None) -> SourceInfo:
    """Probe in a child process bounded in time and memory."""
    policy = policy or InputPolicy()
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    result: SourceInfo = run_limited(
        _probe, path, wall_seconds=PROBE_WALL_SECONDS, memory_bytes=policy.max_memory_bytes
    )
    return result


def transcode_limited(
    input_path: Path,
    outdir: Path,
    options: TranscodeOptions | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The whole transcode in a child process bounded by the policy's time and memory."""
    options = options or TranscodeOptions()
    if not input_path.is_file():
        raise FileNotFoundError(2, "no such file", str(input_path))
    report: dict[str, Any] = run_limited(
        transcode,
        input_path,
        outdir,
        options,
        wall_seconds=options.policy.max_wall_seconds,
        memory_bytes=options.policy.max_memory_bytes,
        progress=progress,
    )
    return report


__all__ = ["probe_and_check", "probe_limited", "transcode_limited"]
