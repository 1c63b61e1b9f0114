"""The pure parts of the pool benchmark (bench/pool_bench.py, issue 15 "Benchmark"): CPU lists,
process CPU time from `/proc/<pid>/stat`, the derived ratios and the worker-count estimate.

No I/O here except `tree_cpu_seconds`, which reads `/proc`; everything else takes plain data.

The estimate (issue 15: "how many 2-CPU workers a 10-minute 1080x1920 upload needs to be
published within 5 minutes, and within 60 s"), from figures of chunked runs:

    chunks      = ceil(upload_s / chunk_s)                   chunk_s = segments × segment_s
    chunk_cpu_s = cpu_per_media_s × chunk_s                  CPU-s of one chunk's job
    serial_s    = serial_fixed_s + serial_per_media_s × upload_s   planning + assembly
    preview_s   = preview_per_media_s × upload_s / preview_speedup
    T(W)        = serial_s + max(preview_s, ceil(chunks / (cpus × W)) × chunk_cpu_s / efficiency)

The preview (the lowest rung, the analysis and the thumbnails over the whole video: one job,
api/jobs/chunkwork.py) runs beside the chunks, so it bounds T from below whatever the pool:
`preview_per_media_s` is (first playable − planned) / source seconds of the chunked runs at
the largest pool (measured on one pinned CPU); `preview_speedup` is what a 2-CPU worker's
threads gain on it, not measured here: the estimate is given for 2 (perfect, optimistic) and
1 (none, pessimistic).

`cpu_per_media_s` is the workers' CPU seconds of a chunked run per media second (planner,
parts, audio and assembly: all of it, so the serial part is counted twice, a pessimistic
choice); the serial line is fitted (least squares) to planned_s + assembly_s of the chunked
runs at the largest pool measured, over the source lengths measured (one length: a line
through 0, i.e. all of it proportional to length, the pessimistic reading); `efficiency` is
the chunked pool's own scaling, fully(N=1) / (N × fully(N)), at the largest N measured;
`cpus` = 2 slots per worker (`--processes 2`). W(T) is the smallest W with T(W) ≤ T, or None
when even one chunk per slot cannot make it (T ≤ serial_s + one chunk).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FORMULA = (
    "T(W) = serial_fixed_s + serial_per_media_s*upload_s + max(preview_per_media_s*upload_s"
    " / preview_speedup, ceil(ceil(upload_s/chunk_s) / (cpus_per_worker*W))"
    " * cpu_per_media_s*chunk_s / efficiency); workers_needed(T) = smallest W with T(W) <= T"
)
MAX_WORKERS = 10_000


def parse_cpus(text: str) -> list[int]:
    """`0-3,6,8-9` (taskset's list form) → [0, 1, 2, 3, 6, 8, 9], sorted, no duplicates."""
    cpus: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        first, _, last = item.partition("-")
        low, high = int(first), int(last or first)
        if low < 0 or high < low:
            raise ValueError(f"bad CPU range {item!r}")
        cpus.update(range(low, high + 1))
    if not cpus:
        raise ValueError("no CPUs given")
    return sorted(cpus)


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime (fields 14-17, proc(5)) of one `/proc/<pid>/stat` text:
    the process's own CPU time and that of its children it has waited for."""
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): field k is fields[k - 3].
    return sum(int(fields[k - 3]) for k in (14, 15, 16, 17))


def tree_cpu_seconds(pids: Iterable[int], proc: Path = Path("/proc")) -> float:
    """CPU seconds of the live processes `pids` (a worker's tree), their reaped children
    included; a process gone meanwhile counts as 0 (its parent's cutime holds it once reaped)."""
    ticks = 0
    for pid in pids:
        try:
            ticks += stat_cpu_ticks((proc / str(pid) / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def median_of(runs: Iterable[Mapping[str, Any]], key: str) -> float | None:
    values = [float(run[key]) for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """source → mode → str(N) → medians of the runs' figures."""
    keys = ("first_playable_s", "fully_published_s", "planned_s", "assembly_s", "cpu_s")
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["source"], run["mode"], run["workers"]), []).append(run)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    # Shortest source first (a name sorts "13s" before "3s"), then mode and pool size.
    ordered = sorted(groups.items(), key=lambda item: (item[1][0]["source_s"], item[0]))
    for (source, mode, n), group in ordered:
        medians = {key: median_of(group, key) for key in keys}
        medians["runs"] = len(group)
        medians["source_s"] = group[0]["source_s"]
        out.setdefault(source, {}).setdefault(mode, {})[str(n)] = medians
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def derive(summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]) -> dict[str, Any]:
    """Per source: first playable / single-pass N=1 fully published (target ≤ 0.25), fully(N)
    / fully(N=1) per mode (chunked N=2: target ≤ 0.6), speedup and efficiency (speedup / N)
    against the single pass on one worker."""
    derived: dict[str, Any] = {}
    for source, modes in summary.items():
        base = modes.get("single", {}).get("1", {}).get("fully_published_s")
        entry: dict[str, Any] = {"single_n1_fully_published_s": base}
        for mode, by_n in modes.items():
            one = by_n.get("1", {}).get("fully_published_s")
            for n_text, figures in by_n.items():
                n, fully = int(n_text), figures.get("fully_published_s")
                speedup = _ratio(base, fully)
                entry.setdefault(mode, {})[n_text] = {
                    "first_playable_share": _ratio(figures.get("first_playable_s"), base),
                    "fully_vs_n1": _ratio(fully, one),
                    "speedup": speedup,
                    "efficiency": round(speedup / n, 3) if speedup is not None else None,
                }
        chunked = entry.get("chunked", {})
        entry["targets"] = {
            "first_playable_share_le_0.25": _at_most(
                chunked.get("2", {}).get("first_playable_share"), 0.25
            ),
            "chunked_n2_vs_n1_le_0.6": _at_most(chunked.get("2", {}).get("fully_vs_n1"), 0.6),
        }
        derived[source] = entry
    return derived


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def publish_time(
    workers: int,
    *,
    upload_s: float,
    chunk_s: float,
    cpu_per_media_s: float,
    serial_per_media_s: float,
    efficiency: float,
    serial_fixed_s: float = 0.0,
    cpus_per_worker: int = 2,
    preview_per_media_s: float = 0.0,
    preview_speedup: float = 1.0,
) -> float:
    """T(W) of the module doc: seconds from the publish call to fully published."""
    chunks = math.ceil(upload_s / chunk_s)
    waves = math.ceil(chunks / (cpus_per_worker * workers))
    serial = serial_fixed_s + serial_per_media_s * upload_s
    preview = preview_per_media_s * upload_s / preview_speedup
    return serial + max(preview, waves * cpu_per_media_s * chunk_s / efficiency)


def workers_needed(budget_s: float, **model: Any) -> int | None:
    """The smallest W with publish_time(W) ≤ budget_s, or None when no pool is enough."""
    cpus = int(model.get("cpus_per_worker", 2))
    chunks = math.ceil(model["upload_s"] / model["chunk_s"])
    # Beyond one chunk per slot more workers change nothing.
    for workers in range(1, min(MAX_WORKERS, math.ceil(chunks / cpus)) + 1):
        if publish_time(workers, **model) <= budget_s:
            return workers
    return None


def _serial(figures: Mapping[str, Any]) -> float:
    return float(figures.get("planned_s") or 0.0) + float(figures.get("assembly_s") or 0.0)


def fit_serial(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per media second) of the serial work, from (source seconds,
    serial seconds) points: least squares over two lengths or more, clamped to no negative
    part; one length (or one repeated): all of it proportional to length."""
    xs = [x for x, _ in points]
    proportional = (0.0, sum(y for _, y in points) / sum(xs)) if sum(xs) else (0.0, 0.0)
    if len(set(xs)) < 2:
        return proportional
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = max(sum((x - mean_x) * (y - mean_y) for x, y in points) / spread, 0.0)
    fixed = mean_y - slope * mean_x
    return proportional if fixed < 0 else (fixed, slope)


def estimate(
    runs: list[dict[str, Any]],
    summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
    *,
    chunk_s: float,
    upload_s: float = 600.0,
    budgets_s: tuple[float, ...] = (300.0, 60.0),
    cpus_per_worker: int = 2,
) -> dict[str, Any] | None:
    """The worker-count estimate of the module doc from the longest source's chunked runs;
    None without chunked runs on one worker and on more than one."""
    chunked = [run for run in runs if run["mode"] == "chunked" and run.get("cpu_s") is not None]
    if not chunked:
        return None
    longest = max(chunked, key=lambda run: run["source_s"])
    by_n = summary[longest["source"]]["chunked"]
    largest = max(by_n, key=int)
    if largest == "1" or "1" not in by_n:
        return None
    one, many = by_n["1"], by_n[largest]
    if not (one["fully_published_s"] and many["fully_published_s"]):
        return None
    cpu = [run["cpu_s"] / run["source_s"] for run in chunked if run["source"] == longest["source"]]
    fixed, per_s = fit_serial(
        [
            (float(modes["chunked"][largest]["source_s"]), _serial(modes["chunked"][largest]))
            for modes in summary.values()
            if largest in modes.get("chunked", {})
        ]
    )
    # The preview's floor, from runs published early (fewer renditions than the whole
    # ladder); a run without a preview part (the default since issue 15) has none.
    ladder = max(len(run.get("first_playable_renditions") or []) for run in runs)
    previews = [
        (run["first_playable_s"] - (run.get("planned_s") or 0.0)) / run["source_s"]
        for run in chunked
        if run["workers"] == int(largest)
        and run.get("first_playable_s") is not None
        and len(run.get("first_playable_renditions") or []) < ladder
    ]
    model = {
        "upload_s": upload_s,
        "chunk_s": chunk_s,
        "cpu_per_media_s": round(statistics.median(cpu), 3),
        "serial_fixed_s": round(fixed, 2),
        "serial_per_media_s": round(per_s, 4),
        "efficiency": round(
            one["fully_published_s"] / (int(largest) * many["fully_published_s"]), 3
        ),
        "cpus_per_worker": cpus_per_worker,
        "preview_per_media_s": round(statistics.median(previews), 4) if previews else 0.0,
    }
    speedups = {"optimistic": float(cpus_per_worker), "pessimistic": 1.0}
    return {
        "formula": FORMULA,
        "from": {"source": longest["source"], "largest_pool": int(largest)},
        "model": model,
        "workers_needed": {
            name: {
                f"{budget:g}s": workers_needed(budget, **model, preview_speedup=speedup)
                for budget in budgets_s
            }
            for name, speedup in speedups.items()
        },
        "floor_s": {
            name: round(publish_time(10**9, **model, preview_speedup=speedup), 1)
            for name, speedup in speedups.items()
        },
    }
