"""The Markdown tables of a benchmark run (bench/README.md says what each column means)."""

from __future__ import annotations

from typing import Any

MIB = 2**20
# The targets the engine is held to.
WHOLE_JOB_RATIO = 0.95
LADDER_RATIO = 1.0
PEAK_MEMORY_BYTES = 2**30
# Other processes' CPU use, in CPUs, above which a run's wall time says little.
NOISY_CPUS = 0.2
LABELS = {
    "reelforge": "reelforge",
    "ffmpeg": "ffmpeg",
    "reelforge_ladder": "reelforge ladder",
    "ffmpeg_ladder": "ffmpeg ladder",
}
HEADER = [
    "job", "tool", "median wall s", "min–max s", "realtime", "CPU s", "peak RSS MiB",
    "output MB", "reelforge/ffmpeg wall", "(CPU)", "target",
]  # fmt: skip


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def ratio_cells(
    ours: float, theirs: float, ours_cpu: float, theirs_cpu: float, target: float
) -> list[str]:
    """Wall ratio (the target), and CPU ratio (steadier on a shared, loaded machine)."""
    ratio = ours / theirs
    return [
        f"**{ratio:.2f}×**",
        f"{ours_cpu / theirs_cpu:.2f}×",
        f"≤ {target:.2f}× {verdict(ratio <= target)}",
    ]


def engine_key(state: dict[str, Any] | None) -> tuple[Any, ...]:
    return (state or {}).get("engine_commit"), (state or {}).get("digest")


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run_cells(label: str, tool: str, s: dict[str, Any]) -> list[str]:
    spread = f"{s['wall_min_s']:.2f}–{s['wall_max_s']:.2f}"
    output = f"{s['output_bytes'] / 1e6:.1f}" if "output_bytes" in s else "—"
    return [
        label,
        tool,
        f"{s['wall_s']:.2f}",
        spread,
        f"{s['realtime_factor']:.2f}×",
        f"{s['cpu_s']:.1f}",
        f"{s['peak_rss_bytes'] / MIB:.0f}",
        output,
    ]


def render_table(results: dict[str, Any]) -> str:
    timing, env = results["timing"], results["environment"]
    summary = timing["summary"]
    ours, theirs = summary["reelforge"], summary["ffmpeg"]
    seconds = timing["source"]["seconds"]
    lines = [
        f"### reelforge vs ffmpeg: {seconds:g} s 1080x1920 "
        f"{timing['source']['output_frame_rate']} fps source, {env['rounds']} rounds, "
        f"{env['cpus']} CPUs, x264 {env['preset']}",
        "",
        row(HEADER),
        row(["---"] * (len(HEADER) - 3) + ["---:", "---:", "---"]),
    ]
    ratios = ratio_cells(
        ours["wall_s"], theirs["wall_s"], ours["cpu_s"], theirs["cpu_s"], WHOLE_JOB_RATIO
    )
    lines.append(row([*run_cells("whole job", "reelforge", ours), *ratios]))
    lines.append(row([*run_cells("", "ffmpeg", theirs), "", "", ""]))
    if "ffmpeg_ladder" in summary and "reelforge_ladder" in summary:
        ladder, ours_ladder = summary["ffmpeg_ladder"], summary["reelforge_ladder"]
        ratios = ratio_cells(
            ours_ladder["wall_s"], ladder["wall_s"], ours_ladder["cpu_s"], ladder["cpu_s"],
            LADDER_RATIO,
        )  # fmt: skip
        ours_cells = run_cells("ladder alone", "reelforge --no-thumbnails", ours_ladder)
        lines.append(row([*ours_cells, *ratios]))
        lines.append(row([*run_cells("", "ffmpeg", ladder), "", "", ""]))
    if "x264_floor" in summary:
        floor = summary["x264_floor"]
        lines.append(row([*run_cells("x264 floor", "ffmpeg, raw yuv in", floor), "", "", ""]))
        above = [
            f"{name} {summary[key]['wall_s'] - floor['wall_s']:+.2f} s wall, "
            f"{summary[key]['cpu_s'] - floor['cpu_s']:+.1f} s CPU"
            for key, name in LABELS.items()
            if key in summary
        ]
        lines += ["", f"Above the x264 floor (medians): {'; '.join(above)}."]
    busiest = max(s["others_cpu_s"] / s["wall_s"] for s in summary.values())
    lines += [
        "",
        f"Other processes took up to {busiest:.2f} of the machine's {env['cpus']} CPUs during a"
        " median run (0 on an idle machine; the wall figures are only as good as that is low).",
    ]
    if busiest > NOISY_CPUS:
        lines += [
            "",
            "**Noisy: other work shared the CPUs during these runs, so the wall times and their"
            " ratios (and pass/fail) are not trustworthy; the CPU ratio still is.**",
        ]
    if engine_key(env.get("engine_at_start")) != engine_key(env.get("engine_at_end")):
        lines += [
            "",
            "**Warning: the engine's code changed during the run: its runs mix versions.**",
        ]
    if not timing.get("settings_match", True):
        lines += ["", "**Warning: report.json's ladder differs from the baseline's plan.**"]
    memory = results.get("memory")
    if memory:
        ours_peak = memory["reelforge"]["peak_rss_bytes"]
        memory_verdict = verdict(ours_peak <= PEAK_MEMORY_BYTES)
        lines += [
            "",
            f"Peak memory on a {memory['seconds']:g} s source (summed RSS of the process tree): "
            f"reelforge **{ours_peak / MIB:.0f} MiB** "
            f"(target ≤ {PEAK_MEMORY_BYTES / MIB:.0f} MiB: {memory_verdict}),"
            f" ffmpeg {memory['ffmpeg']['peak_rss_bytes'] / MIB:.0f} MiB; largest single process:"
            f" reelforge {memory['reelforge']['max_single_rss_bytes'] / MIB:.0f} MiB,"
            f" ffmpeg {memory['ffmpeg']['max_single_rss_bytes'] / MIB:.0f} MiB.",
        ]
    stages = ours.get("stages")
    if stages:
        names = [n for n in stages if n != "total"]
        values = [f"{stages[n]:.2f}" for n in (*names, "total")]
        lines += [
            "",
            "reelforge stages (median s, report.json):",
            "",
            row([*names, "total", "outside total"]),
            row(["---:"] * (len(names) + 2)),
            row([*values, f"{ours['outside_total_s']:.2f}"]),
        ]
    return "\n".join(lines)
