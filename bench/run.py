"""Benchmark `reelforge transcode` against the one-process ffmpeg command a user would run.

    .venv/bin/python bench/run.py --seconds 30 --rounds 5 [--hdr hlg|pq]

Each round runs, in turn (order reversed every other round): reelforge's whole job and its
ladder alone (`--no-thumbnails`), the ffmpeg whole job (ladder + HLS/DASH + poster +
storyboard) and the ffmpeg ladder alone, each with Debian's ffmpeg 5.1 (`ffmpeg*`) and with
the newest CLI, the static ffmpeg 9 of `imageio-ffmpeg` (`ffmpeg9*`), and the x264 floor (the
same encoders fed pre-scaled raw frames). The outputs of the last round are read back and
checked against the plan (same rungs, frame counts, GOPs, tags). Medians go to a Markdown
table on stdout and, with every run, to bench/results.json. A last pass measures peak memory
on a 60 s source (`--memory-seconds`). `--hdr` runs it all on an HEVC Main 10 HLG/PQ version
of the source (bench/hdr_source.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and the engine importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av

from bench import baseline, outputs
from bench.hdr_source import TRANSFERS, build_hdr_source
from bench.make_source import MEDIA_DIR, WORK_DIR, SourceBuildError, build_source, ffmpeg_version
from bench.measure import Measurement, run_measured, wait_for_quiet
from bench.table import ratios, render_table
from engine.encoders import DEFAULT_PRESET

RESULTS = Path(__file__).resolve().parent / "results.json"
VARIANTS = (
    "reelforge", "ffmpeg", "ffmpeg9",
    "reelforge_ladder", "ffmpeg_ladder", "ffmpeg9_ladder",
    "x264_floor",
)  # fmt: skip


class BenchError(RuntimeError):
    """A benchmarked command failed: the figures would mean nothing."""


def reelforge_binary() -> str:
    beside = Path(sys.executable).parent / "reelforge"
    found = str(beside) if beside.exists() else shutil.which("reelforge")
    if found is None:
        raise BenchError("no `reelforge` command: `pip install -e .` in the venv first")
    return found


def reelforge_command(
    source: Path, outdir: Path, preset: str, thumbnails: bool = True
) -> list[str]:
    """The CLI with the encoder pinned to libx264 (`auto` would pick NVENC on a GPU host);
    without thumbnails it is the ladder alone (`--no-thumbnails`)."""
    return [
        reelforge_binary(), "transcode", str(source), str(outdir), "--json",
        "--encoder", "libx264", "--preset", preset,
        "--segment-seconds", f"{baseline.SEGMENT_SECONDS:g}",
        *([] if thumbnails else ["--no-thumbnails"]),
    ]  # fmt: skip


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_once(
    variant: str, command: list[str], outdir: Path, logs: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One measured run, once the machine is quiet; the output folder is made fresh for it."""
    shutil.rmtree(outdir, ignore_errors=True)
    if not variant.startswith("reelforge"):  # reelforge creates its output folder itself
        outdir.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / f"{variant}.out", logs / f"{variant}.err"
    waited = time.monotonic()
    others_before = wait_for_quiet(args.quiet_cpus, args.quiet_wait)
    waited = time.monotonic() - waited
    load = os.getloadavg()[0]
    measured: Measurement = run_measured(command, stdout=stdout, stderr=stderr)
    if measured.returncode != 0:
        tail = stderr.read_text(errors="replace")[-2000:]
        raise BenchError(f"{variant} exited {measured.returncode}:\n{tail}")
    result: dict[str, Any] = {
        **measured.to_json(),
        "load_before": round(load, 2),
        "others_cpus_before": round(others_before, 2),
        "waited_for_quiet_s": round(waited, 1),
    }
    if variant.startswith("reelforge"):
        report = json.loads((outdir / "report.json").read_text())
        result["stages"] = report["stages"]
        result["ladder"] = report["ladder"]["video"]
        result["output_bytes"] = report["bytes_written"]
    elif variant != "x264_floor":
        result["output_bytes"] = folder_bytes(outdir)
    return result


def prepare_raw(plan: baseline.LadderPlan, rawdir: Path, ffmpeg: str) -> None:
    """Decode + scale once to raw yuv420p per rung (untimed); reused while the marker holds."""
    command = baseline.raw_prepare_command(plan, rawdir, ffmpeg)
    marker = rawdir / "done.json"
    if marker.is_file() and json.loads(marker.read_text()) == command:
        return
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    measured = run_measured(command, stderr=rawdir / "prepare.err")
    if measured.returncode != 0:
        raise BenchError(f"raw frame preparation failed: {(rawdir / 'prepare.err').read_text()}")
    marker.write_text(json.dumps(command))


def commands_for(
    plan: baseline.LadderPlan,
    source: Path,
    outroot: Path,
    rawdir: Path,
    preset: str,
    ffmpeg: str,
    ffmpeg9: str,
) -> dict[str, list[str]]:
    """Every job of a round; the baseline is the same command for both ffmpeg binaries."""
    commands = {
        "reelforge": reelforge_command(source, outroot / "reelforge", preset),
        "reelforge_ladder": reelforge_command(source, outroot / "reelforge_ladder", preset, False),
        "x264_floor": baseline.floor_command(plan, rawdir, ffmpeg),
    }
    for name, binary in (("ffmpeg", ffmpeg), ("ffmpeg9", ffmpeg9)):
        commands[name] = baseline.ladder_command(plan, outroot / name, True, binary)
        ladder = f"{name}_ladder"
        commands[ladder] = baseline.ladder_command(plan, outroot / ladder, False, binary)
    return commands


def bench_source(seconds: float, args: argparse.Namespace) -> Path:
    """The SDR phone upload, or with `--hdr` its HEVC Main 10 HLG/PQ version."""
    source = build_source(seconds, args.work_dir, args.media, args.ffmpeg)
    return build_hdr_source(source, args.hdr, args.ffmpeg9) if args.hdr else source


def check_outputs(
    plan: baseline.LadderPlan, outroot: Path, variants: list[str]
) -> dict[str, dict[str, Any]]:
    """Each job's last outputs read back and compared with the plan, and every job's x264
    options with reelforge's: the problems, if any, per job."""
    found = {
        variant: outputs.describe_outputs(outroot / variant)
        for variant in variants
        if variant != "x264_floor"  # its output is thrown away
    }
    other_options = outputs.option_differences(found)
    checked: dict[str, dict[str, Any]] = {}
    for variant, described in found.items():
        expected = outputs.expected_outputs(plan, thumbnails=not variant.endswith("_ladder"))
        problems = outputs.differences(expected, described) + other_options.get(variant, [])
        for problem in problems:
            log(f"outputs of {variant} differ: {problem}")
        checked[variant] = {"problems": problems, **described}
    return checked


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarize(runs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    walls = [run["wall_s"] for run in runs]
    summary: dict[str, Any] = {
        "wall_s": median(walls),
        "wall_min_s": round(min(walls), 3),
        "wall_max_s": round(max(walls), 3),
        "cpu_s": median([run["cpu_s"] for run in runs]),
        "others_cpu_s": median([run["others_cpu_s"] for run in runs]),
        "peak_rss_bytes": max(run["peak_rss_bytes"] for run in runs),
        "realtime_factor": round(seconds / statistics.median(walls), 3),
    }
    if "output_bytes" in runs[0]:
        summary["output_bytes"] = round(statistics.median([r["output_bytes"] for r in runs]))
    if "stages" in runs[0]:
        names = list(runs[0]["stages"])
        summary["stages"] = {n: median([r["stages"].get(n, 0.0) for r in runs]) for n in names}
        summary["outside_total_s"] = median([r["wall_s"] - r["stages"]["total"] for r in runs])
    return summary


def measure_timing(args: argparse.Namespace) -> dict[str, Any]:
    source = bench_source(args.seconds, args)
    plan = baseline.plan_ladder(source, args.preset)
    rawdir = args.work_dir / f"raw-{source.stem}"
    outroot = args.work_dir / "out"
    commands = commands_for(plan, source, outroot, rawdir, args.preset, args.ffmpeg, args.ffmpeg9)
    variants = [v for v in VARIANTS if v != "x264_floor" or not args.no_floor]
    if "x264_floor" in variants:
        log(f"preparing raw yuv420p rungs in {rawdir} (untimed)")
        prepare_raw(plan, rawdir, args.ffmpeg)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    try:
        for round_index in range(args.rounds):
            order = variants if round_index % 2 == 0 else variants[::-1]
            for variant in order:
                result = run_once(
                    variant, commands[variant], outroot / variant, outroot / "logs", args
                )
                runs[variant].append(result)
                log(
                    f"round {round_index + 1}/{args.rounds} {variant:16} "
                    f"{result['wall_s']:7.2f} s wall {result['cpu_s']:7.2f} s cpu "
                    f"{result['peak_rss_bytes'] / 2**20:6.0f} MiB "
                    f"(others used {result['others_cpu_s']:.1f} s cpu meanwhile)"
                )
    finally:
        if not args.keep_raw:
            shutil.rmtree(rawdir, ignore_errors=True)
    # report.json's ladder rows are built the same way: any difference means the engine
    # encoded something else than the baseline did (e.g. its code changed during the run).
    ladder = json.loads(json.dumps(
        [
            {"name": r.name, "width": r.width, "height": r.height, **s.to_json()}
            for r, s in zip(plan.rungs, plan.settings, strict=True)
        ]
    ))  # fmt: skip
    checked = check_outputs(plan, outroot, variants)
    summary = {v: summarize(runs[v], args.seconds) for v in variants}
    return {
        "source": {
            "path": str(source), "seconds": args.seconds, "hdr": args.hdr,
            **plan.source.to_json(),
        },
        "ladder": ladder,
        "settings_match": all(same_encoding(run["ladder"], ladder) for run in runs["reelforge"]),
        "outputs_match": not any(c["problems"] for c in checked.values()),
        "outputs": checked,
        "commands": commands,
        "summary": summary,
        "ratios": ratios(summary, args.hdr),
        "runs": runs,
    }  # fmt: skip


def same_encoding(reported: list[dict[str, Any]], planned: list[dict[str, Any]]) -> bool:
    """Whether report.json's ladder encodes what the baseline's plan does. Frame threads are
    left out: they are how the engine schedules its encoders on the machine (each rung's
    share of the CPUs, engine/encoders.py `thread_plan`), as ffmpeg schedules its own."""

    def encoding(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**row, "options": {k: v for k, v in row["options"].items() if k != "threads"}}
            for row in rows
        ]

    return encoding(reported) == encoding(planned)


def measure_memory(args: argparse.Namespace) -> dict[str, Any]:
    """One run of each whole job on a longer source: the peak RSS of each process tree."""
    source = bench_source(args.memory_seconds, args)
    plan = baseline.plan_ladder(source, args.preset)
    outroot = args.work_dir / "out-memory"
    commands = {
        "reelforge": reelforge_command(source, outroot / "reelforge", args.preset),
        "ffmpeg": baseline.ladder_command(plan, outroot / "ffmpeg", True, args.ffmpeg),
        "ffmpeg9": baseline.ladder_command(plan, outroot / "ffmpeg9", True, args.ffmpeg9),
    }
    results: dict[str, Any] = {"seconds": args.memory_seconds}
    for variant, command in commands.items():
        result = run_once(variant, command, outroot / variant, outroot / "logs", args)
        result.pop("ladder", None)
        results[variant] = result
        log(
            f"memory {args.memory_seconds:g} s {variant:9} {result['peak_rss_bytes'] / 2**20:6.0f}"
            f" MiB peak tree RSS, {result['wall_s']:.2f} s wall"
        )
    return results


def environment(args: argparse.Namespace) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pyav_ffmpeg": ".".join(map(str, av.ffmpeg_version_info))
        if isinstance(av.ffmpeg_version_info, tuple)
        else str(av.ffmpeg_version_info),
        "ffmpeg": ffmpeg_version(args.ffmpeg),
        "ffmpeg9": ffmpeg_version(args.ffmpeg9),
        "ffmpeg9_path": args.ffmpeg9,
        "hdr": args.hdr,
        "preset": args.preset,
        "rounds": args.rounds,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "engine_at_start": engine_state(),
    }


ENGINE_PATHS = ("cli", "engine", "ladders", "packager", "pyproject.toml")


def engine_state() -> dict[str, Any]:
    """The last commit of the engine's code and its files that differ from it (hashed)."""
    root = Path(__file__).resolve().parents[1]

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", *ENGINE_PATHS).splitlines()
    files = sorted(line[3:] for line in changed)
    digest = hashlib.sha256()
    for name in files:
        path = root / name
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    return {
        "head": git("rev-parse", "HEAD"),
        "engine_commit": git("log", "-1", "--format=%H", "--", *ENGINE_PATHS),
        "changed": files,
        "digest": digest.hexdigest(),
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="timed source length")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    parser.add_argument(
        "--memory-seconds", type=float, default=60.0, help="memory pass source length; 0 skips"
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="x264 preset for both sides")
    parser.add_argument("--no-floor", action="store_true", help="skip the x264 floor")
    parser.add_argument(
        "--keep-raw", action="store_true", help="keep the floor's raw frames (GBs) for next time"
    )
    parser.add_argument(
        "--quiet-cpus",
        type=float,
        default=0.25,
        help="before each run, wait until other processes use at most this many CPUs",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=180.0, help="longest wait for quiet, seconds"
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--media", type=Path, default=MEDIA_DIR)
    parser.add_argument("--ffmpeg", default="ffmpeg", help="the baseline's ffmpeg (Debian's)")
    parser.add_argument(
        "--ffmpeg9", default=None, help="the newest ffmpeg CLI (default: imageio-ffmpeg's 9.0.2)"
    )
    parser.add_argument(
        "--hdr", choices=sorted(TRANSFERS), default=None,
        help="run on an HEVC Main 10 HLG or PQ version of the source (made with ffmpeg 9)",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    try:
        args.ffmpeg9 = args.ffmpeg9 or baseline.newest_ffmpeg()
        results: dict[str, Any] = {"environment": environment(args)}
        results["timing"] = measure_timing(args)
        if args.memory_seconds > 0:
            results["memory"] = measure_memory(args)
    except (BenchError, SourceBuildError, FileNotFoundError, outputs.OutputProbeError) as exc:
        log(f"bench: {exc}")
        return 1
    results["environment"]["engine_at_end"] = engine_state()
    results["table"] = render_table(results)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(results["table"])
    log(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
