"""What download.mp4 costs (issue 12, "An MP4 for sharing": target < 2 % of the job).

Transcodes the benchmark source alternately without and with the download (side by side, so
both see the same machine load), and reports for each run the `download` stage against the
whole job (`stages.total`), then the remux alone repeated on a finished output, in wall
seconds and in CPU seconds (the CPU share does not depend on how busy the machine is).

    PYTHONPATH=$PWD .venv/bin/python bench/make_source.py --seconds 30
    PYTHONPATH=$PWD .venv/bin/python bench/download_bench.py --seconds 30 --pairs 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from engine.pipeline import TranscodeOptions, transcode
from packager.cmaf import describe_track
from packager.progressive import write_download

WORK_DIR = Path(__file__).resolve().parent / "work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--remux-repeats", type=int, default=5)
    args = parser.parse_args()
    source = WORK_DIR / f"source-{args.seconds}s.mp4"
    if not source.is_file():
        raise SystemExit(f"{source} missing: run bench/make_source.py --seconds {args.seconds}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmp:
        kept: Path | None = None
        for pair in range(args.pairs):
            for download in (False, True):
                outdir = Path(tmp) / f"{pair}-{download}"
                cpu = time.process_time()
                report = transcode(source, outdir, TranscodeOptions(download=download))
                cpu = time.process_time() - cpu
                stages = report["stages"]
                runs.append(
                    {
                        "download": download,
                        "total_s": stages["total"],
                        "cpu_s": round(cpu, 3),
                        "download_s": stages.get("download", 0.0),
                        "share": stages.get("download", 0.0) / stages["total"],
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
                if download and kept is None:
                    kept = outdir
                else:
                    shutil.rmtree(outdir)
        assert kept is not None
        report = json.loads((kept / "report.json").read_text())
        video = [describe_track(kept / r["name"], r["name"]) for r in report["ladder"]["video"]]
        audio = describe_track(kept / "audio", "audio") if (kept / "audio").is_dir() else None
        remux, remux_cpu = [], []
        for _ in range(args.remux_repeats):
            start, cpu = time.perf_counter(), time.process_time()
            written = write_download(kept, video, audio)
            remux.append(time.perf_counter() - start)
            remux_cpu.append(time.process_time() - cpu)
    with_download = [r for r in runs if r["download"]]
    without = [r for r in runs if not r["download"]]
    summary = {
        "source": source.name,
        "download": written.to_json(),
        "share_of_job": statistics.median(r["share"] for r in with_download),
        "remux_s_median": statistics.median(remux),
        "remux_share_of_median_job": statistics.median(remux)
        / statistics.median(r["total_s"] for r in with_download),
        "remux_cpu_s_median": statistics.median(remux_cpu),
        "remux_cpu_share_of_job_cpu": statistics.median(remux_cpu)
        / statistics.median(r["cpu_s"] for r in runs),
        "total_with_over_without": statistics.median(r["total_s"] for r in with_download)
        / statistics.median(r["total_s"] for r in without),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
