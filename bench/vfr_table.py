"""The VFR table (issue 12): for each variable-rate shape, the source, what the engine probes
and what it outputs, picture by picture, and the A/V offset.

    .venv/bin/python bench/vfr_table.py [--results bench/vfr_results.json]

The shapes are tests/support/timing_clips.py's (a held first frame, a held middle frame,
iPhone slow motion at 120 and 240 fps, a screen recorder); each frame carries its index in
the picture and the audio a beep at a known frame, so "kept" counts the distinct source frames
the top rendition shows and the offset is the beep's onset against the picture it belongs to.
Clips and outputs go to bench/work/vfr/ (git-ignored). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.pipeline import transcode  # noqa: E402
from engine.source import probe  # noqa: E402
from tests.support.ffprobe import joined_rendition  # noqa: E402
from tests.support.timing_clips import (  # noqa: E402
    SHAPES,
    Shape,
    av_offset,
    build,
    misplaced_frames,
    play,
)

WORK = ROOT / "bench" / "work" / "vfr"
HEADER = [
    "shape", "source", "probed duration", "probed rate", "VFR", "output duration",
    "output rate", "output frames", "source frames kept", "misplaced", "A/V offset",
]  # fmt: skip


def measure(shape: Shape) -> dict[str, Any]:
    source = build(shape, WORK / "clips")
    info = probe(source)
    outdir = WORK / "out" / shape.name
    shutil.rmtree(outdir, ignore_errors=True)
    report = transcode(source, outdir)
    rate = Fraction(report["output"]["frame_rate"])
    top = report["ladder"]["video"][0]["name"]
    with joined_rendition(outdir / top) as video, joined_rendition(outdir / "audio") as audio:
        out = play(video, audio)
    offset = av_offset(shape, out)
    return {
        "shape": shape.name,
        "note": shape.note,
        "source": {
            "duration": shape.end,
            "frames": shape.frame_count,
            "peak_rate": shape.peak_rate,
        },
        "probed": {
            "duration": info.duration,
            "average_rate": float(info.frame_rate),
            "nominal_rate": float(info.nominal_frame_rate or info.frame_rate),
            "variable": info.variable_frame_rate,
            "held_frames": info.held_frames,
        },
        "output": {
            "duration": round(out.video_end, 6),
            "audio_duration": round(out.audio_end or 0.0, 6),
            "rate": str(rate),
            "frames": len(out.codes),
            "source_frames_kept": len(set(out.codes)),
            "misplaced_frames": len(misplaced_frames(shape, out, float(rate))),
            "av_offset_ms": None if offset is None else round(offset * 1000, 1),
        },
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        src, probed, out = row["source"], row["probed"], row["output"]
        offset = out["av_offset_ms"]
        cells = [
            f"{row['shape']} ({row['note']})",
            f"{src['duration']:g} s, {src['frames']} frames, peak {src['peak_rate']:g} fps",
            f"{probed['duration']:.3f} s",
            f"{probed['nominal_rate']:g} fps (average {probed['average_rate']:.3g})",
            f"{'yes' if probed['variable'] else 'no'} ({probed['held_frames']} held)",
            f"{out['duration']:.3f} s (audio {out['audio_duration']:.3f})",
            f"{out['rate']} fps",
            str(out["frames"]),
            f"{out['source_frames_kept']} of {src['frames']}",
            str(out["misplaced_frames"]),
            "n/a" if offset is None else f"{offset:+.1f} ms",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "vfr_results.json")
    args = parser.parse_args(argv)
    rows = [measure(shape) for shape in SHAPES]
    args.results.write_text(json.dumps({"shapes": rows}, indent=2) + "\n")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
