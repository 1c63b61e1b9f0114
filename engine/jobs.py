"""The engine's entry points for callers (CLI, workers): each job runs in a bounded child."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.pipeline import TranscodeOptions, transcode
from engine.policy import InputPolicy
from engine.sandbox import ProgressFn, run_limited
from engine.source import SourceInfo, probe

PROBE_WALL_SECONDS = 60.0
KILL_GRACE_SECONDS = 10.0


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
    try:
        report: dict[str, Any] = run_limited(
            transcode,
            input_path,
            outdir,
            options,
            # The job stops itself at its deadline and cleans up; the kill is the backstop.
            wall_seconds=options.policy.max_wall_seconds + KILL_GRACE_SECONDS,
            memory_bytes=options.policy.max_memory_bytes,
            progress=progress,
        )
    except BaseException:
        # A killed child cannot remove its staging folder: do it here.
        for staging in outdir.parent.glob(f".{outdir.name}.partial-*"):
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
