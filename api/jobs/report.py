"""What a transcode's report becomes: the published row's media columns, the report after a
copyright mute, and the reasons an owner reads when the job rejects or fails their video.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.errors import InputRejected


def without_audio(report: dict[str, Any], outdir: Path | None = None) -> dict[str, Any]:
    """The report as it reads once the audio track was removed (a copyright mute); with
    `outdir`, the muted outputs, `output.download` gets the size of the video-only MP4."""
    renditions = {k: v for k, v in report.get("renditions", {}).items() if k != "audio"}
    ladder = {**report.get("ladder", {}), "audio": None}
    muted = {**report, "renditions": renditions, "ladder": ladder}
    download = report.get("output", {}).get("download")
    if download is not None:
        download = {**download, "audio": None}
        path = outdir / download["file"] if outdir is not None else None
        if path is not None and path.is_file():
            download["bytes"] = path.stat().st_size
        muted["output"] = {**report["output"], "download": download}
    return muted


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The published row's media columns from the engine's report.json.

    `renditions` lists each video rung as the HLS master announces it (RFC 8216 §4.3.4.2):
    BANDWIDTH and CODECS of the variant, i.e. the rung's peak plus the shared audio's.
    """
    rendered = report.get("renditions", {})
    audio = rendered.get("audio")
    audio_peak = int(audio["peak_bitrate"]) if audio else 0
    renditions = []
    for rung in report["ladder"]["video"]:
        measured = rendered[rung["name"]]
        codecs = [measured["codecs"], *([audio["codecs"]] if audio else [])]
        renditions.append(
            {
                "name": rung["name"],
                "width": int(rung["width"]),
                "height": int(rung["height"]),
                "bandwidth": int(measured["peak_bitrate"]) + audio_peak,
                "codecs": ",".join(codecs),
            }
        )
    top = max(renditions, key=lambda r: r["width"] * r["height"])
    top_measured = rendered[top["name"]]
    duration = top_measured.get("duration") or report["source"].get("duration")
    return {
        "duration_s": round(float(duration), 3),
        "width": top["width"],
        "height": top["height"],
        "renditions": json.dumps(renditions),
    }


_ERRNO = re.compile(r"\[Errno -?[0-9]+\] ")


def owner_reason(exc: InputRejected, workdir: Path) -> str:
    """The engine's one-line rejection as the owner reads it: no server paths, no errno."""
    text = str(exc) or type(exc).__name__
    text = re.sub(rf":?\s*'?{re.escape(str(workdir))}[^'\s]*'?", "", text)
    return _ERRNO.sub("", text).strip() or type(exc).__name__


def failed_reason(attempts: int | None, exc: BaseException | None) -> str:
    """What the owner reads on a failed video: ours, not theirs; no internals."""
    tries = f" after {attempts} attempts" if attempts else ""
    kind = f" ({type(exc).__name__})" if exc is not None else ""
    return f"processing failed{tries}{kind}; this was our fault, please try again later"
