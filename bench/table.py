"""The Markdown tables of a benchmark run (bench/README.md says what each column means)."""

from __future__ import annotations

from typing import Any

MIB = 2**20
# The targets the engine is held to.
WHOLE_JOB_RATIO = 0.95
LADDER_RATIO = 1.0
# Issue 12: tone mapping and loudness may cost at most 5 % over ffmpeg 9's whole job.
FFMPEG9_WHOLE_JOB_RATIO = 1.05
PEAK_MEMORY_BYTES = 2**30
# Other processes' CPU use, in CPUs, above which a run's wall time says little.
NOISY_CPUS = 0.2
LABELS = {
    "reelforge": "reelforge",
    "ffmpeg": "ffmpeg",
    "ffmpeg9": "ffmpeg 9",
    "reelforge_ladder": "reelforge ladder",
    "ffmpeg_ladder": "ffmpeg ladder",
    "ffmpeg9_ladder": "ffmpeg 9 ladder",
}
# (reelforge job, baseline job) → the most reelforge's wall time may be of the baseline's
# (None: the ratio is shown, with no target). An HDR source is tone mapped by reelforge
# only, so there the one target is the issue's: the whole job against ffmpeg 9's.
TARGETS: dict[tuple[str, str], float | None] = {
    ("reelforge", "ffmpeg"): WHOLE_JOB_RATIO,
    ("reelforge", "ffmpeg9"): FFMPEG9_WHOLE_JOB_RATIO,
    ("reelforge_ladder", "ffmpeg_ladder"): LADDER_RATIO,
    ("reelforge_ladder", "ffmpeg9_ladder"): None,
}
HDR_TARGETS: dict[tuple[str, str], float | None] = {
    pair: (FFMPEG9_WHOLE_JOB_RATIO if pair == ("reelforge", "ffmpeg9") else None)
    for pair in TARGETS
}
# The table's rows: a job, reelforge's variant, the baselines' variants.
JOBS = (
    ("whole job", "reelforge", "reelforge", ("ffmpeg", "ffmpeg9")),
    ("ladder alone", "reelforge_ladder", "reelforge --no-thumbnails",
     ("ffmpeg_ladder", "ffmpeg9_ladder")),
)  # fmt: skip
HEADER = [
    "job", "tool", "median wall s", "min–max s", "realtime", "CPU s", "peak RSS MiB",
    "output MB", "reelforge/this wall", "(CPU)", "target",
]  # fmt: skip


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def ratios(summary: dict[str, Any], hdr: str | None = None) -> dict[str, dict[str, Any]]:
    """reelforge's median wall and CPU time over each baseline's, with its target (results.json
    `timing.ratios`, keyed `reelforge/ffmpeg9` etc.)."""
    found: dict[str, dict[str, Any]] = {}
    for (ours, theirs), target in (HDR_TARGETS if hdr else TARGETS).items():
        if ours in summary and theirs in summary:
            wall = summary[ours]["wall_s"] / summary[theirs]["wall_s"]
            found[f"{ours}/{theirs}"] = {
                "wall": round(wall, 3),
                "cpu": round(summary[ours]["cpu_s"] / summary[theirs]["cpu_s"], 3),
                "target": target,
                "pass": None if target is None else wall <= target,
            }
    return found


def ratio_cells(ratio: dict[str, Any]) -> list[str]:
    """Wall ratio (the target), and CPU ratio (steadier on a shared, loaded machine)."""
    target = ratio["target"]
    return [
        f"**{ratio['wall']:.2f}×**",
        f"{ratio['cpu']:.2f}×",
        "—" if target is None else f"≤ {target:.2f}× {verdict(ratio['pass'])}",
    ]


def version_label(version: str | None, fallback: str) -> str:
    """'ffmpeg version 5.1.9-0+deb12u1 Copyright…' → 'ffmpeg 5.1.9'."""
    words = (version or "").split()
    if len(words) < 3:
        return fallback
    return f"ffmpeg {words[2].removeprefix('n').split('-')[0]}"


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


def memory_figures(memory: dict[str, Any], tools: dict[str, str], key: str) -> str:
    return ", ".join(
        f"{tools[name]} {memory[name][key] / MIB:.0f} MiB" for name in tools if name in memory
    )


def render_table(results: dict[str, Any]) -> str:
    timing, env = results["timing"], results["environment"]
    summary = timing["summary"]
    ours = summary["reelforge"]
    source = timing["source"]
    hdr = source.get("hdr")
    kind = f"HEVC Main 10 {hdr.upper()}" if hdr else "H.264"
    tools = {
        "ffmpeg": version_label(env.get("ffmpeg"), "ffmpeg"),
        "ffmpeg9": version_label(env.get("ffmpeg9"), "ffmpeg 9"),
    }
    lines = [
        f"### reelforge vs ffmpeg: {source['seconds']:g} s 1080x1920 "
        f"{source['output_frame_rate']} fps {kind} source, {env['rounds']} rounds, "
        f"{env['cpus']} CPUs, x264 {env['preset']}",
        "",
        row(HEADER),
        row(["---"] * (len(HEADER) - 3) + ["---:", "---:", "---"]),
    ]
    found = ratios(summary, hdr)
    for label, mine, tool, baselines in JOBS:
        if mine not in summary:
            continue
        lines.append(row([*run_cells(label, tool, summary[mine]), "", "", ""]))
        for theirs in baselines:
            if theirs in summary:
                cells = run_cells("", tools[theirs.removesuffix("_ladder")], summary[theirs])
                lines.append(row([*cells, *ratio_cells(found[f"{mine}/{theirs}"])]))
    if "x264_floor" in summary:
        floor = summary["x264_floor"]
        floor_tool = f"{tools['ffmpeg']}, raw yuv in"
        lines.append(row([*run_cells("x264 floor", floor_tool, floor), "", "", ""]))
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
    if not timing.get("outputs_match", True):
        problems = [
            f"{variant}: {problem}"
            for variant, checked in timing["outputs"].items()
            for problem in checked["problems"]
        ]
        lines += ["", "**Warning: outputs differ from the plan:** " + "; ".join(problems[:8])]
    memory = results.get("memory")
    if memory:
        ours_peak = memory["reelforge"]["peak_rss_bytes"]
        memory_verdict = verdict(ours_peak <= PEAK_MEMORY_BYTES)
        lines += [
            "",
            f"Peak memory on a {memory['seconds']:g} s source (summed RSS of the process tree): "
            f"reelforge **{ours_peak / MIB:.0f} MiB** "
            f"(target ≤ {PEAK_MEMORY_BYTES / MIB:.0f} MiB: {memory_verdict}),"
            f" {memory_figures(memory, tools, 'peak_rss_bytes')}; largest single process:"
            f" reelforge {memory['reelforge']['max_single_rss_bytes'] / MIB:.0f} MiB,"
            f" {memory_figures(memory, tools, 'max_single_rss_bytes')}.",
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
