"""Declared against needed bandwidth, and the last segment, on real clips (issue 13).

For every clip in tests/media with video, `reelforge transcode` (the code in this
checkout) writes an output; this script then reads the files back and measures, for each
video rendition with the audio:

- HLS: BANDWIDTH as declared over the RFC 8216 §4.3.4.2 peak segment bit rate, measured
  here independently (every run of consecutive segments lasting 0.5-1.5 target durations),
  and over the old definition's value (the peak of single segments);
- DASH: @bandwidth over the least rate of ISO/IEC 23009-1 §5.3.5.2's delivery model with the
  MPD's own @minBufferTime, found by simulating the channel;
- the shortest last segment as a fraction of the segment duration.

    .venv/bin/python bench/bandwidth_table.py [--out bench/bandwidth_results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.ffprobe import RenditionProbe, probe_rendition  # noqa: E402
from tests.support.verify import delivery_needed, rfc_peak, xs_seconds  # noqa: E402

MEDIA = ROOT / "tests" / "media"


def _old_peak(rend: RenditionProbe) -> float:
    return max(s.size * 8 / s.duration for s in rend.segments if s.duration)


def measure(outdir: Path) -> list[dict]:
    import m3u8
    from mpegdash.parser import MPEGDASHParser

    master = m3u8.load(str(outdir / "master.m3u8"))
    mpd = MPEGDASHParser.parse(str(outdir / "manifest.mpd"))
    buffer = xs_seconds(mpd.min_buffer_time)
    declared_dash = {
        rep.id: int(rep.bandwidth)
        for period in mpd.periods
        for aset in period.adaptation_sets
        for rep in aset.representations
    }
    audio = probe_rendition(outdir / "audio") if (outdir / "audio").is_dir() else None
    rows = []
    for variant in master.playlists:
        name = Path(variant.uri).parent.name
        rend = probe_rendition(outdir / name)
        needed = rfc_peak(rend) + (rfc_peak(audio) if audio else 0)
        old = _old_peak(rend) + (_old_peak(audio) if audio else 0)
        dash_needed = delivery_needed(rend, buffer)
        last = rend.segments[-1].duration / (float(rend.segments[0].duration) or 1)
        rows.append(
            {
                "rendition": name,
                "segments": len(rend.segments),
                "hls_declared": variant.stream_info.bandwidth,
                "hls_needed": round(needed),
                "hls_ratio": round(variant.stream_info.bandwidth / needed, 3),
                "hls_old_definition_ratio": round(old / needed, 3),
                "dash_declared": declared_dash[name],
                "dash_needed": round(dash_needed),
                "dash_ratio": round(declared_dash[name] / dash_needed, 3),
                "last_segment_fraction": round(last, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "bandwidth_results.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for clip in sorted(MEDIA.iterdir()):
            if clip.suffix not in (".mp4", ".ts", ".webm"):
                continue
            outdir = Path(scratch) / clip.stem
            command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]
            done = subprocess.run(
                [*command, "transcode", str(clip), str(outdir), "--no-thumbnails"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0:
                results[clip.name] = {"rejected": done.stderr.strip().splitlines()[-1:]}
                continue
            results[clip.name] = measure(outdir)
            worst = max(r["hls_ratio"] for r in results[clip.name])
            worst_dash = max(r["dash_ratio"] for r in results[clip.name])
            print(f"{clip.name}: HLS declared/needed <= {worst}, DASH <= {worst_dash}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
