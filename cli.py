"""`reelforge` command line: probe, transcode, sample.

Exit codes: 0 done; 2 the input was rejected (one line on stderr naming why); 1 our failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_REJECTED = 0, 1, 2


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not a terminal."""

    def __init__(self, label: str, stream: Any = sys.stderr) -> None:
        self.label, self.stream = label, stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        width = 30
        filled = round(width * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {elapsed:5.1f}s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def cmd_probe(args: argparse.Namespace) -> int:
    from engine.jobs import probe_limited

    info = probe_limited(Path(args.input))
    data = info.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:22} {value}")
    return EXIT_OK


def cmd_transcode(args: argparse.Namespace) -> int:
    from engine.jobs import transcode_limited
    from engine.pipeline import TranscodeOptions

    options = TranscodeOptions(
        segment_seconds=args.segment_seconds,
        preset=args.preset,
        encoder=args.encoder,
        thumbnails=not args.no_thumbnails,
    )
    bar = ProgressBar("transcode")
    try:
        report = transcode_limited(Path(args.input), Path(args.outdir), options, progress=bar)
    finally:
        bar.done()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        stages = report["stages"]
        print(
            f"wrote {args.outdir}: {len(report['ladder']['video'])} video renditions"
            f"{' + audio' if report['ladder']['audio'] else ''}, "
            f"{report['bytes_written']} bytes in {stages['total']:.2f} s"
        )
        for name, rendition in report["renditions"].items():
            print(
                f"  {name:6} {rendition['segment_count']:3} segments  "
                f"avg {rendition['average_bitrate'] / 1000:7.0f} kb/s  "
                f"peak {rendition['peak_bitrate'] / 1000:7.0f} kb/s"
            )
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from engine.sample import make_sample

    print(make_sample(args.output, seconds=args.seconds))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe", help="what the source is")
    probe.add_argument("input")
    probe.add_argument("--json", action="store_true", help="print JSON")
    probe.set_defaults(run=cmd_probe)
    transcode = sub.add_parser("transcode", help="ladder + HLS/DASH + thumbnails + report")
    transcode.add_argument("input")
    transcode.add_argument("outdir")
    transcode.add_argument("--json", action="store_true", help="print the report as JSON")
    transcode.add_argument("--segment-seconds", type=float, default=2.0)
    transcode.add_argument("--preset", default="veryfast")
    transcode.add_argument("--encoder", default="auto", help="auto, libx264 or h264_nvenc")
    transcode.add_argument(
        "--no-thumbnails", action="store_true", help="the ladder alone: no poster or storyboard"
    )
    transcode.set_defaults(run=cmd_transcode)
    sample = sub.add_parser("sample", help="write a sample 1080x1920 clip made by the project")
    sample.add_argument("output")
    sample.add_argument("--seconds", type=float, default=10.0)
    sample.set_defaults(run=cmd_sample)
    return parser


def single_threaded_libraries() -> None:
    """Keep numpy's BLAS from starting a thread pool: the CLI needs none, and a process with
    no native threads can fork its job child instead of spawning it (no re-import)."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def main(argv: list[str] | None = None) -> int:
    single_threaded_libraries()
    from engine.errors import InputRejected

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except InputRejected as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except FileNotFoundError as exc:
        print(f"reelforge: input rejected: no such file: {exc.filename}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"reelforge: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
