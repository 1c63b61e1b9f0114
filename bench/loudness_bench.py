"""Loudness normalization (issue 12, part 3): what it does to each source, and what it costs.

    .venv/bin/python bench/loudness_bench.py                      # table + cost, 30 s source
    .venv/bin/python bench/loudness_bench.py --rounds 1 --cost-seconds 0   # the table alone

Table: the generated sources of tests/support/loudness.py (pink noise, speech-like, music and
a source with huge peaks, −40 to −5 LUFS; silence and room tone) and the real clips of
tests/media with audio, each transcoded in this process (ultrafast, no thumbnails). Source
and output are measured by Debian's ffmpeg `ebur128` (the output on init + segments joined);
gain, limiter, the limited trials and whether the audio was encoded again come from
report.json.

Cost, on the bench source (bench/make_source.py, 1080x1920 30 fps, real audio), side by side:
- the whole job, `reelforge transcode` with loudness on and with `--no-loudness`, alternating
  for `--rounds` rounds: CPU seconds of the job's process tree and wall, medians and the
  on/off ratio;
- report.json's own stages: `loudness_measure` (the audio-only pre-pass: demux, decode the
  audio, resample, ebur128) and `loudness_output` (decode and measure the encoded track, and
  any audio-only encode again) as a share of the job's `total`;
- the gain + limiter inside the single pass, apart: the source's decoded audio pushed through
  AudioGraph with and without the plan's filters, CPU time, alternating.

Writes bench/loudness_results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from bench.make_source import build_source  # noqa: E402
from bench.measure import run_measured  # noqa: E402
from bench.run import reelforge_command  # noqa: E402
from engine.audiopass import reencode_audio  # noqa: E402
from engine.graphs import AudioGraph  # noqa: E402
from engine.loudness import GainPlan, LoudnessSpec, measure_track, plan_source  # noqa: E402
from engine.pipeline import TranscodeOptions, transcode  # noqa: E402
from engine.source import probe  # noqa: E402
from ladders import AudioRung  # noqa: E402
from tests.support.loudness import PINK, SOURCES, ebur128, output_audio, source_at  # noqa: E402

MEDIA = ROOT / "tests" / "media"
REAL = ("rotate-buck-bunny.mp4", "video-h265.mp4", "edts.mp4", "0.ts", "cockatoo.mp4")
EXTRA = {"silence": ("anullsrc=r=48000:cl=stereo", None), "roomtone_-60": (PINK, -60.0)}
RESULTS = ROOT / "bench" / "loudness_results.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table_row(name: str, source: Path, work: Path) -> dict[str, Any]:
    before = ebur128(source, stereo=True)
    outdir = work / f"out-{name}"
    report = transcode(source, outdir, TranscodeOptions(preset="ultrafast", thumbnails=False))
    after = output_audio(outdir)
    loud = report["loudness"]
    shutil.rmtree(outdir)
    return {
        "source": name,
        "source_lufs": before.integrated,
        "source_dbtp": before.true_peak,
        "output_lufs": after.integrated,
        "output_dbtp": after.true_peak,
        "gain_db": loud["gain_db"],
        "limiter_dbfs": loud["limiter_dbfs"],
        "rule": loud["rule"],
        "limited_trials": loud["limited_trials"],
        "corrected": loud["corrected"],
        "loudness_stages_s": round(
            sum(report["stages"].get(k, 0.0) for k in ("loudness_measure", "loudness_output")), 3
        ),
    }


def build_table(work: Path) -> list[dict[str, Any]]:
    rows = []
    for name, (graph, lufs) in {**SOURCES, **EXTRA}.items():
        rows.append(table_row(name, source_at(work, name, graph, lufs), work))
        log(f"  {name}: {rows[-1]['output_lufs']} LUFS {rows[-1]['output_dbtp']} dBTP")
    for name in REAL:
        rows.append(table_row(name, MEDIA / name, work))
        log(f"  {name}: {rows[-1]['output_lufs']} LUFS {rows[-1]['output_dbtp']} dBTP")
    return rows


def decoded_audio_frames(path: Path) -> tuple[list[Any], Any]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return list(container.decode(stream)), stream.time_base


def graph_cpu(frames: list[Any], time_base: Any, plan: GainPlan | None) -> float:
    """CPU seconds to push `frames` through AudioGraph (with `plan`'s filters) and pull all."""
    rung = AudioRung()
    total = round(sum(f.samples for f in frames) * rung.sample_rate / frames[0].sample_rate)
    started = time.process_time()
    filters = plan.filters() if plan else []
    graph = AudioGraph(frames[0], time_base, rung, total, level_filters=filters)
    for frame in frames:
        graph.push(frame)
        graph.pull_all()
    graph.push(None)
    graph.pull_all()
    return time.process_time() - started


def measure_filters(source: Path, rounds: int) -> dict[str, Any]:
    """The gain + limiter in the audio path, apart: the worst case (the limiter always on)."""
    frames, time_base = decoded_audio_frames(source)
    plan = GainPlan(12.0, -2.5, "normalized")
    off, on = [], []
    for _ in range(rounds * 3):
        off.append(graph_cpu(frames, time_base, None))
        on.append(graph_cpu(frames, time_base, plan))
    return {
        "plan": plan.to_json(),
        "audio_graph_cpu_s_off": round(statistics.median(off), 4),
        "audio_graph_cpu_s_on": round(statistics.median(on), 4),
        "added_cpu_s": round(statistics.median(on) - statistics.median(off), 4),
    }


def cpu_median(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return round(statistics.median(times), 4)


def measure_parts(source: Path, seconds: float, track_dir: Path, rounds: int) -> dict[str, Any]:
    """CPU seconds of each part of the feature, in this process (a busy machine slows wall
    times, not these): the pre-pass, the check of the encoded track, an audio-only encode
    again (only when the check asks), and the gain + limiter in the single pass."""
    info = probe(source)
    again = track_dir.with_name("audio-again")
    shutil.copytree(track_dir, again)
    plan = GainPlan(-6.0, -2.5, "normalized")
    return {
        "pre_pass_cpu_s": cpu_median(lambda: plan_source(source, seconds, LoudnessSpec()), rounds),
        "output_check_cpu_s": cpu_median(lambda: measure_track(track_dir), rounds),
        "encode_again_cpu_s": cpu_median(
            lambda: reencode_audio(info, AudioRung(), info.output_frame_rate, 2.0, plan, again),
            rounds,
        ),
        "filters_in_the_single_pass": measure_filters(source, rounds),
    }


def measure_cost(seconds: float, rounds: int, preset: str, work: Path) -> dict[str, Any]:
    source = build_source(seconds)
    measured_plan = plan_source(source, seconds, LoudnessSpec())
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for index in range(rounds):
        order = ("on", "off") if index % 2 == 0 else ("off", "on")
        for variant in order:
            outdir = work / f"job-{variant}"
            shutil.rmtree(outdir, ignore_errors=True)
            command = reelforge_command(source, outdir, preset)
            if variant == "off":
                command.append("--no-loudness")
            result = run_measured(command)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} exited {result.returncode}")
            report = json.loads((outdir / "report.json").read_text())
            stages = report["stages"]
            runs[variant].append(
                {
                    **result.to_json(),
                    "total_s": stages["total"],
                    "loudness_measure_s": stages.get("loudness_measure", 0.0),
                    "loudness_output_s": stages.get("loudness_output", 0.0),
                    "loudness": report.get("loudness"),
                }
            )
            log(f"  round {index + 1} {variant}: cpu {result.cpu_s:.2f} s wall {result.wall_s:.2f}")

    def med(variant: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[variant])

    stage_s = med("on", "loudness_measure_s") + med("on", "loudness_output_s")
    parts = measure_parts(source, seconds, work / "job-on" / "audio", max(3, rounds))
    job_cpu = med("off", "cpu_s")
    usual = (
        parts["pre_pass_cpu_s"]
        + parts["output_check_cpu_s"]
        + parts["filters_in_the_single_pass"]["added_cpu_s"]
    )
    return {
        "source": str(source.relative_to(ROOT)),
        "seconds": seconds,
        "preset": preset,
        "rounds": rounds,
        "source_loudness": measured_plan[0].to_json(),
        "plan": measured_plan[1].to_json(),
        "cpu_s": {"on": round(med("on", "cpu_s"), 3), "off": round(med("off", "cpu_s"), 3)},
        "wall_s": {"on": round(med("on", "wall_s"), 3), "off": round(med("off", "wall_s"), 3)},
        "cpu_ratio_on_off": round(med("on", "cpu_s") / med("off", "cpu_s"), 4),
        "wall_ratio_on_off": round(med("on", "wall_s") / med("off", "wall_s"), 4),
        "others_cpu_s_median": round(
            statistics.median(r["others_cpu_s"] for v in runs.values() for r in v), 2
        ),
        "loudness_measure_s": round(med("on", "loudness_measure_s"), 4),
        "loudness_output_s": round(med("on", "loudness_output_s"), 4),
        "loudness_stages_share_of_total": round(stage_s / med("on", "total_s"), 5),
        "parts": parts,
        "parts_share_of_job_cpu": round(usual / job_cpu, 5),
        "parts_with_encode_again_share_of_job_cpu": round(
            (usual + parts["encode_again_cpu_s"]) / job_cpu, 5
        ),
        "runs": runs,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'source':24} {'src LUFS':>9} {'src dBTP':>9} {'out LUFS':>9} {'out dBTP':>9} "
          f"{'gain dB':>8} {'limiter':>8} {'rule':>10} {'again':>5}")  # fmt: skip
    for r in rows:
        limiter = "-" if r["limiter_dbfs"] is None else f"{r['limiter_dbfs']:.2f}"
        print(f"{r['source']:24} {r['source_lufs']:9.1f} {r['source_dbtp']:9.1f} "
              f"{r['output_lufs']:9.1f} {r['output_dbtp']:9.1f} {r['gain_db']:8.2f} "
              f"{limiter:>8} {r['rule']:>10} {'yes' if r['corrected'] else 'no':>5}")  # fmt: skip


def print_cost(cost: dict[str, Any]) -> None:
    parts = cost["parts"]
    filters = parts["filters_in_the_single_pass"]
    print(f"\ncost on {cost['source']} ({cost['seconds']:g} s, preset {cost['preset']}, "
          f"{cost['rounds']} rounds, medians):")  # fmt: skip
    print(f"  whole job CPU  on {cost['cpu_s']['on']:.2f} s  off {cost['cpu_s']['off']:.2f} s"
          f"  ratio {cost['cpu_ratio_on_off']:.4f}")  # fmt: skip
    print(f"  whole job wall on {cost['wall_s']['on']:.2f} s  off {cost['wall_s']['off']:.2f} s"
          f"  ratio {cost['wall_ratio_on_off']:.4f}  (others' CPU meanwhile "
          f"{cost['others_cpu_s_median']:.1f} s)")  # fmt: skip
    print(f"  pre-pass {cost['loudness_measure_s']:.3f} s + output check "
          f"{cost['loudness_output_s']:.3f} s = {cost['loudness_stages_share_of_total']:.2%} "
          "of the job's total")  # fmt: skip
    print(f"  CPU: pre-pass {parts['pre_pass_cpu_s']:.3f} s, output check "
          f"{parts['output_check_cpu_s']:.3f} s, gain + limiter in the audio path "
          f"{filters['added_cpu_s']:.3f} s (AudioGraph {filters['audio_graph_cpu_s_off']:.3f} → "
          f"{filters['audio_graph_cpu_s_on']:.3f} s): {cost['parts_share_of_job_cpu']:.2%} of the "
          f"job's CPU; with an audio-only encode again ({parts['encode_again_cpu_s']:.3f} s) "
          f"{cost['parts_with_encode_again_share_of_job_cpu']:.2%}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-seconds", type=float, default=30.0, help="0: no cost runs")
    parser.add_argument("--rounds", type=int, default=3, help="whole jobs per variant (>= 1)")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--no-table", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"target_lufs": -14.0, "true_peak_ceiling_dbtp": -1.0}
    with tempfile.TemporaryDirectory(prefix="loudness-bench-") as tmp:
        work = Path(tmp)
        if not args.no_table:
            log("table:")
            results["table"] = build_table(work)
            print_table(results["table"])
        if args.cost_seconds > 0:
            log("cost:")
            results["cost"] = measure_cost(args.cost_seconds, args.rounds, args.preset, work)
            print_cost(results["cost"])
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
