"""A/V start in Chromium's players (issue 13): where each track's first media lands.

    .venv/bin/python bench/player_av_start.py [--elst] [--results FILE.json] [SOURCE ...]

Transcodes tests/support/timing_clips.py's plain 30 fps clip (B-frames, audio) and each
SOURCE (default: tests/media/cockatoo.mp4 and rotate-buck-bunny.mp4) with this checkout's
engine into bench/work/av_start/ (git-ignored), plays every output in hls.js, dash.js, Shaka
(DASH and HLS) and native HLS (tests/support/player.py), and prints a Markdown table of the
first buffered start of the video and audio SourceBuffers, their gap, the players'
timestampOffsets, the first presented frame's mediaTime and the errors recorded. Native HLS
has no SourceBuffers: its row shows video.buffered (all tracks together).

--elst first rewrites each output into issue 13's "trun v0 + an edit list" design: for an
output whose manifest.mpd carries presentationTimeOffset (the packaging of branch `pkg`),
each video rendition's init.mp4 gets an `elst` starting at that offset, the audio `tfdt`s
move back by the audio's offset, and the offsets leave the MPD (tests/support/retime.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.pipeline import transcode  # noqa: E402
from tests.support import timing_clips  # noqa: E402
from tests.support.player import MODES, play  # noqa: E402
from tests.support.retime import add_edit_list, shift_tfdt  # noqa: E402

WORK = ROOT / "bench" / "work" / "av_start"
MEDIA = ROOT / "tests" / "media"
DEFAULT_SOURCES = [MEDIA / "cockatoo.mp4", MEDIA / "rotate-buck-bunny.mp4"]
_REPRESENTATION = re.compile(r'<Representation id="([^"]+)".*?</Representation>', re.S)
_OFFSET = re.compile(r' presentationTimeOffset="(\d+)"')


def to_edit_list_design(outdir: Path) -> None:
    """Rewrite a presentationTimeOffset output (see the module docstring) in place."""
    mpd = (outdir / "manifest.mpd").read_text()
    for match in _REPRESENTATION.finditer(mpd):
        offset = _OFFSET.search(match.group(0))
        if offset is None:
            continue
        ticks, folder = int(offset.group(1)), outdir / match.group(1)
        if 'contentType="audio"' in mpd[: match.start()].rsplit("<AdaptationSet", 1)[-1]:
            for segment in sorted(folder.glob("*.m4s")):
                shift_tfdt(segment, -ticks)
        else:
            add_edit_list(folder / "init.mp4", ticks)
    mpd = _OFFSET.sub("", mpd)
    (outdir / "manifest.mpd").write_text(re.sub(r'<S t="\d+"', '<S t="0"', mpd))


def measure(outdir: Path, mode: str) -> dict[str, Any]:
    result = play(outdir, mode, timeout=60, until=2.0)
    row: dict[str, Any] = {
        "mode": mode,
        "played_to": round(result.current_time, 3),
        "first_frame_media_time": result.first_frame_media_time,
        "errors": [e.get("details") or e.get("message") for e in result.errors],
    }
    if result.source_buffers:
        video, audio = result.track_start("video"), result.track_start("audio")
        offsets = {b.kind: b.first_timestamp_offset for b in result.source_buffers if not b.removed}
        row |= {"video": video, "audio": audio, "gap_ms": round((video - audio) * 1000, 1),
                "timestamp_offsets": offsets}  # fmt: skip
    else:
        row["video_buffered"] = result.video_buffered[:1]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--elst", action="store_true")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    sources = [timing_clips.build(timing_clips.plain(30, 4.0), WORK / "clips")]
    sources += args.sources or DEFAULT_SOURCES
    rows = []
    print("| clip | player | video start | audio start | gap | first frame | errors |")
    print("|---|---|---|---|---|---|---|")
    for source in sources:
        outdir = WORK / "out" / source.stem
        shutil.rmtree(outdir, ignore_errors=True)
        transcode(source, outdir)
        if args.elst:
            to_edit_list_design(outdir)
        for mode in MODES:
            row = {"clip": source.stem, **measure(outdir, mode)}
            rows.append(row)
            if "video" in row:
                cells = [f"{row['video']:.6f}", f"{row['audio']:.6f}", f"{row['gap_ms']:+.1f} ms"]
            else:
                cells = [f"buffered {row['video_buffered']}", "—", "—"]
            errors = ", ".join(map(str, row["errors"])) or "none"
            print(f"| {source.stem} | {mode} | {' | '.join(cells)} | "
                  f"{row['first_frame_media_time']} | {errors} |", flush=True)  # fmt: skip
    if args.results:
        args.results.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
