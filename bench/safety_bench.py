"""What trust & safety costs a transcode (issue 5, "Speed": "Moderation + PDQ + fingerprinting of
a 30 s 1080x1920 upload adds ≤ 10% to the transcode's wall time on this machine").

    .venv/bin/python bench/safety_bench.py --seconds 30 --rounds 3

The source is bench/make_source.py's (real footage, 1080x1920 30 fps H.264 + AAC). Each round
transcodes it, one job at a time, in alternating order, as the worker does
(`engine.jobs.transcode_limited`: the sandboxed child, libx264, the engine's preset):

- `plain`: no analysis;
- `thread` (the default): moderation (open_nsfw with the default settings: 1 frame/s + scene
  cuts, batches of 2) scored on a background thread while the decode goes on, + PDQ + the
  audio fingerprint;
- `end`: the same, the moderation batches scored after the decode instead.

First each analyzer runs alone on the source's decoded frames (`analyzers_alone`: the CPU
seconds it adds to a decode-only pass, no encoder competing). Medians of wall and CPU time go
to stdout and, with every run and the analyzers' own timings from report.json, to
bench/safety_results.json. Like bench/run.py, each run first waits for
the rest of the machine to be quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and the engine importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_source import MEDIA_DIR, WORK_DIR, build_source
from bench.measure import run_measured, wait_for_quiet

RESULTS = Path(__file__).resolve().parent / "safety_results.json"
VARIANTS = ("plain", "thread", "end")


def child(variant: str, source: Path, outdir: Path, artifacts: Path) -> int:
    """One transcode as the worker runs it (the measured process)."""
    from api.core.settings import Settings
    from api.safety.config import analysis_spec
    from engine.jobs import transcode_limited
    from engine.pipeline import TranscodeOptions

    settings = Settings(moderation_inference="end" if variant == "end" else "thread")
    analysis = None if variant == "plain" else analysis_spec(settings, artifacts)
    options = TranscodeOptions(encoder="libx264", analysis=analysis)
    transcode_limited(source, outdir, options)
    return 0


def profile_analyzers(source: Path, repeats: int = 3) -> dict[str, Any]:
    """Each analyzer alone on the source's decoded frames (no encoders competing): the CPU
    seconds it adds to a decode-only pass, median of `repeats` passes (the decode-only
    pass is measured in the same way and subtracted)."""
    import av

    from api.core.settings import Settings
    from api.safety.config import analysis_spec
    from engine.analysis import AnalysisSpec, build_analyzers

    full = analysis_spec(Settings(fingerprint_enabled=True))
    specs = {
        "decode_only": AnalysisSpec(),
        "moderation": AnalysisSpec(sampling=full.sampling, moderation=full.moderation),
        "pdq": AnalysisSpec(sampling=full.sampling, pdq=full.pdq),
        "fingerprint": AnalysisSpec(fingerprint=full.fingerprint),
        "all": AnalysisSpec(
            sampling=full.sampling,
            moderation=full.moderation,
            pdq=full.pdq,
            fingerprint=full.fingerprint,
        ),
    }

    def one_pass(spec: AnalysisSpec) -> float:
        started = time.process_time()
        analyzers = build_analyzers(spec, duration=None) if spec.enabled else []
        with av.open(str(source)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            video.thread_type = "AUTO"
            frame: Any
            for frame in container.decode(video, audio):
                t = float(frame.pts * frame.time_base)
                for analyzer in analyzers:
                    if isinstance(frame, av.VideoFrame):
                        analyzer.on_video(frame, t)
                    else:
                        analyzer.on_audio(frame, t)
        for analyzer in analyzers:
            analyzer.result()
        return time.process_time() - started

    one_pass(specs["all"])  # warm: imports, page cache
    seconds = {name: [one_pass(spec) for _ in range(repeats)] for name, spec in specs.items()}
    base = statistics.median(seconds["decode_only"])
    return {
        "decode_only_cpu_s": round(base, 3),
        **{
            f"{name}_cpu_s": round(statistics.median(values) - base, 3)
            for name, values in seconds.items()
            if name != "decode_only"
        },
    }


def run_once(variant: str, source: Path, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    outdir, artifacts = root / variant, root / f"{variant}-artifacts"
    for folder in (outdir, artifacts):
        shutil.rmtree(folder, ignore_errors=True)
    waited = time.monotonic()
    others_before = wait_for_quiet(args.quiet_cpus, args.quiet_wait)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", variant,
        str(source), str(outdir), str(artifacts),
    ]  # fmt: skip
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    measured = run_measured(command, stderr=logs / f"{variant}.err")
    if measured.returncode != 0:
        raise RuntimeError((logs / f"{variant}.err").read_text(errors="replace")[-2000:])
    report = json.loads((outdir / "report.json").read_text())
    result: dict[str, Any] = {
        **measured.to_json(),
        "others_cpus_before": round(others_before, 2),
        "waited_for_quiet_s": round(time.monotonic() - waited - measured.wall_s, 1),
        "stages": report["stages"],
    }
    analysis = report.get("analysis")
    if analysis:
        moderation = analysis["moderation"]
        result["analysis"] = {
            "frames": moderation["frames"],
            "sampling": moderation["sampling"],
            "moderation_timing": moderation["timing"],
            "pdq_timing": analysis["pdq"]["timing"],
            "fingerprint_landmarks": analysis.get("fingerprint", {}).get("count"),
            "nsfw": {k: v for k, v in moderation["categories"]["nsfw"].items() if k != "worst"},
        }
    return result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant, results in runs.items():
        summary[variant] = {
            "wall_s": median([r["wall_s"] for r in results]),
            "wall_min_s": round(min(r["wall_s"] for r in results), 3),
            "wall_max_s": round(max(r["wall_s"] for r in results), 3),
            "cpu_s": median([r["cpu_s"] for r in results]),
            "peak_rss_mib": round(median([r["peak_rss_bytes"] for r in results]) / 2**20),
            "analysis_stage_s": median([r["stages"].get("analysis", 0.0) for r in results]),
        }
        if results and "analysis" in results[0]:
            timing = [r["analysis"]["moderation_timing"] for r in results]
            summary[variant]["moderation"] = {
                key: median([t[key] for t in timing])
                for key in ("tap_cpu_s", "load_s", "inference_cpu_s", "wait_s")
            }
            summary[variant]["pdq_tap_cpu_s"] = median(
                [r["analysis"]["pdq_timing"]["tap_cpu_s"] for r in results]
            )
            summary[variant]["frames"] = results[0]["analysis"]["frames"]
    plain = summary["plain"]
    for variant in VARIANTS[1:]:
        if variant in summary:
            summary[variant]["wall_overhead"] = round(
                summary[variant]["wall_s"] / plain["wall_s"] - 1, 4
            )
            summary[variant]["cpu_overhead"] = round(
                summary[variant]["cpu_s"] / plain["cpu_s"] - 1, 4
            )
    return summary


def table(summary: dict[str, Any]) -> str:
    rows = [
        "| job | wall (median) | CPU | wall vs plain | CPU vs plain |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        s = summary[variant]
        wall = f"{s['wall_overhead'] * 100:+.1f} %" if "wall_overhead" in s else ""
        cpu = f"{s['cpu_overhead'] * 100:+.1f} %" if "cpu_overhead" in s else ""
        rows.append(f"| {variant} | {s['wall_s']:.2f} s | {s['cpu_s']:.1f} s | {wall} | {cpu} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--media", type=Path, default=MEDIA_DIR)
    parser.add_argument("--quiet-cpus", type=float, default=0.25)
    parser.add_argument("--quiet-wait", type=float, default=180.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "SRC", "OUT", "ART"))
    parser.add_argument(
        "--profile-only", action="store_true", help="only each analyzer's own CPU cost"
    )
    args = parser.parse_args(argv)
    if args.child:
        variant, source, outdir, artifacts = args.child
        return child(variant, Path(source), Path(outdir), Path(artifacts))
    source = build_source(args.seconds, args.work_dir, args.media)
    wait_for_quiet(args.quiet_cpus, args.quiet_wait)
    alone = profile_analyzers(source)
    print(json.dumps({"analyzers_alone": alone}), file=sys.stderr, flush=True)
    if args.profile_only:
        return 0
    root = args.work_dir / "safety"
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for index in range(args.rounds):
        for variant in VARIANTS if index % 2 == 0 else VARIANTS[::-1]:
            result = run_once(variant, source, root, args)
            runs[variant].append(result)
            print(
                f"round {index + 1}/{args.rounds} {variant:6} {result['wall_s']:7.2f} s wall "
                f"{result['cpu_s']:7.2f} s cpu (others used {result['others_cpu_s']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    summary = summarize(runs)
    print(table(summary))
    args.results.write_text(
        json.dumps(
            {
                "source": {"path": str(source), "seconds": args.seconds},
                "environment": {
                    "cpus": os.cpu_count(),
                    "started": started,
                    "rounds": args.rounds,
                },
                "analyzers_alone": alone,
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
