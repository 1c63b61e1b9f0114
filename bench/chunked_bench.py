"""What splitting a job into chunks costs in CPU (issue 15, "split and stitch").

Transcodes the benchmark source (bench/make_source.py) alternately as the single pass and as a
chunked job run in this process (engine/stitch.py `transcode_chunked`'s steps, each timed):
every chunk, the audio job, the stitch. CPU seconds are this process's (every thread's), so
they do not depend on how busy the machine is. The overhead is split into its two known parts:
the extra decoding (the frames each chunk decodes from the keyframe before its start, priced
at the decode-only CPU per frame measured here) and the rest (each chunk's encoders starting
and flushing, the audio decoded on its own, the files moved).

    PYTHONPATH=$PWD .venv/bin/python bench/make_source.py --seconds 20
    PYTHONPATH=$PWD .venv/bin/python bench/chunked_bench.py --seconds 20 --per-chunk 2 --pairs 2

Measured (bench/chunked_results.json, 2 shared CPUs, 20 s source, 10 segments of 2 s, medians
of 2 pairs): 5 chunks of 2 segments cost +0.85 CPU-s on 32.1 (+2.7 %), of which 0.47 CPU-s is
the 144 frames decoded before chunk starts; 10 chunks of 1 segment +1.85 CPU-s (+5.7 %), 1.08
of it for 306 extra decoded frames.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.make_source import build_source
from engine.chunked import RangeDecode, encode_audio_track, encode_chunk
from engine.chunks import plan_chunks
from engine.options import TranscodeOptions, plan_encoders, planned_frames
from engine.outputs import prepare_outdir, publish_outdir
from engine.pipeline import probe_and_check, transcode
from engine.stitch import stitch
from engine.thumbnails import ThumbnailTap


def cpu_of(fn: Any) -> tuple[Any, float]:
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def decode_cpu_per_frame(source: Path) -> float:
    """CPU seconds to decode one video frame of `source` (decode only, no filter, no encode)."""
    info = probe_and_check(source, TranscodeOptions().policy)

    def run() -> int:
        with RangeDecode(info, 0.0) as decode:
            return sum(1 for _ in decode.frames())

    frames, cpu = cpu_of(run)
    return cpu / frames


def chunked_job(source: Path, outdir: Path, per_chunk: int) -> dict[str, Any]:
    options = TranscodeOptions()
    info = probe_and_check(source, options.policy)
    encode = plan_encoders(info, options)
    plan = plan_chunks(
        planned_frames(info, encode.frame_rate),
        encode.gop_frames,
        per_chunk,
        encode.frame_rate,
        options.segment_seconds,
    )
    staging = prepare_outdir(outdir)
    work = Path(tempfile.mkdtemp(dir=outdir.parent))
    thumbnails = ThumbnailTap(staging)
    chunk_cpu, chunks = [], []
    for chunk in plan.chunks:
        result, cpu = cpu_of(
            lambda c=chunk: encode_chunk(
                info, c, encode, options, work / str(c.index), [thumbnails]
            )
        )
        chunks.append(result)
        chunk_cpu.append(round(cpu, 3))
    audio, audio_cpu = cpu_of(lambda: encode_audio_track(info, encode, options, work / "audio"))
    frames = sum(c.output_frames for c in chunks)
    thumbs = thumbnails.close(float(frames / encode.frame_rate))
    report, stitch_cpu = cpu_of(
        lambda: stitch(staging, info, encode, plan, options, chunks, audio, thumbs)
    )
    publish_outdir(staging, outdir)
    shutil.rmtree(work)
    return {
        "chunks": len(chunks),
        "chunk_cpu_s": chunk_cpu,
        "audio_cpu_s": round(audio_cpu, 3),
        "stitch_cpu_s": round(stitch_cpu, 3),
        "decoded_video_frames": report["decode"]["decoded_video_frames"],
        "output_frames": report["decode"]["output_frames"],
        "frames_before_start": report["chunked"]["frames_before_start"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--per-chunk", type=int, default=2, help="segments per chunk")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    source = build_source(args.seconds)
    per_frame = decode_cpu_per_frame(source)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="chunked-bench-") as tmp:
        for pair in range(args.pairs):
            single, single_cpu = cpu_of(lambda p=pair: transcode(source, Path(tmp) / f"s{p}"))
            chunked, chunked_cpu = cpu_of(
                lambda p=pair: chunked_job(source, Path(tmp) / f"c{p}", args.per_chunk)
            )
            extra_frames = (
                chunked["decoded_video_frames"] - single["decode"]["decoded_video_frames"]
            )
            overhead = chunked_cpu - single_cpu
            runs.append(
                {
                    "single_cpu_s": round(single_cpu, 3),
                    "chunked_cpu_s": round(chunked_cpu, 3),
                    "overhead_cpu_s": round(overhead, 3),
                    "overhead_share": round(overhead / single_cpu, 4),
                    "extra_decoded_frames": extra_frames,
                    "extra_decode_cpu_s": round(extra_frames * per_frame, 3),
                    "rest_cpu_s": round(overhead - extra_frames * per_frame, 3),
                    **chunked,
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    summary = {
        "source_seconds": args.seconds,
        "segments_per_chunk": args.per_chunk,
        "decode_cpu_ms_per_frame": round(per_frame * 1000, 3),
        "median_overhead_cpu_s": statistics.median(r["overhead_cpu_s"] for r in runs),
        "median_overhead_share": statistics.median(r["overhead_share"] for r in runs),
        "median_single_cpu_s": statistics.median(r["single_cpu_s"] for r in runs),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
