"""Media commands: `reelforge probe`, `transcode` and `sample`, with the terminal progress bar."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from cli.exit_codes import EXIT_OK, EXIT_REJECTED


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not a terminal."""

    def __init__(self, label: str, stream: Any = sys.stderr) -> None:
        self.label, self.stream = label, stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, fraction: float, detail: str = "") -> None:
        """Draw `fraction` (0..1) done, with `detail` after it (a stage, an ETA)."""
        if not self.enabled:
            return
        width = 30
        filled = round(width * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (width - filled)
        line = f"\r{self.label} [{bar}] {fraction:4.0%} {elapsed:5.1f}s"
        # Padded: a shorter detail than the last one must not leave its tail on screen.
        self.stream.write(f"{line} {detail:<36}" if detail else line)
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
    from engine.loudness import LoudnessSpec
    from engine.pipeline import TranscodeOptions
    from engine.policy import InputPolicy

    policy = (
        InputPolicy() if args.max_duration is None else InputPolicy(max_duration=args.max_duration)
    )
    try:
        loudness = LoudnessSpec(
            enabled=not args.no_loudness,
            target_lufs=args.loudness_target,
            true_peak_dbtp=args.true_peak,
        )
    except ValueError as exc:
        print(f"reelforge: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    options = TranscodeOptions(
        segment_seconds=args.segment_seconds,
        preset=args.preset,
        encoder=args.encoder,
        policy=policy,
        thumbnails=not args.no_thumbnails,
        encoder_threads=args.encoder_threads,
        loudness=loudness,
    )
    if args.no_tone_map:
        options = dataclasses.replace(options, tone_map=None)
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `probe`, `transcode` and `sample` subcommands."""
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
    transcode.add_argument(
        "--no-tone-map",
        action="store_true",
        help="HDR (PQ, HLG) sources are not tone-mapped to SDR (the old path; for measuring)",
    )
    transcode.add_argument(
        "--encoder-threads",
        type=int,
        default=None,
        help="x264 frame threads per rung (default: the CPUs shared out by pixels; 0: x264 auto)",
    )
    transcode.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="refuse sources longer than this, audio included (default 600)",
    )
    transcode.add_argument(
        "--loudness-target",
        type=float,
        default=-14.0,
        metavar="LUFS",
        help="integrated loudness of the audio (BS.1770-4 / EBU R128; -40..-5, default -14)",
    )
    transcode.add_argument(
        "--true-peak",
        type=float,
        default=-1.0,
        metavar="DBTP",
        help="true-peak ceiling of the encoded audio (-9..0, default -1)",
    )
    transcode.add_argument(
        "--no-loudness", action="store_true", help="keep the source's level (no gain, no limiter)"
    )
    transcode.set_defaults(run=cmd_transcode)
    sample = sub.add_parser("sample", help="write a sample 1080x1920 clip made by the project")
    sample.add_argument("output")
    sample.add_argument("--seconds", type=float, default=10.0)
    sample.set_defaults(run=cmd_sample)
