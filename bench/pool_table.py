"""The pool benchmark's tables (issue 15, "Benchmark"; bench/pool_bench.py) for the README.

    .venv/bin/python bench/pool_table.py [--results bench/pool_results.json]

Prints Markdown: per source, mode and pool size the medians from the enqueue to first
playable and to fully published, the workers' CPU seconds, and the ratios against the single
pass on one worker; the targets; the 2-CPU-worker estimate for a 10-minute upload; and, when
the threshold sweep ran, single against chunked per source length on two workers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "pool_results.json"
POOL_HEADER = [
    "source", "mode", "workers", "first playable", "fully published", "worker CPU",
    "fully / 1 worker", "speedup vs single 1 worker", "efficiency", "first playable / single 1",
]  # fmt: skip
SWEEP_HEADER = ["source", "single pass", "chunked", "chunked / single", "chunks"]


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "missed")


def machine_line(section: dict[str, Any]) -> str:
    m = section["machine"]
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), commit {m['commit'][:12]}, {m['date']}; "
        f"load at start {' '.join(m['load_average_at_start'])}"
    )


def pool_table(section: dict[str, Any]) -> str:
    lines = [row(POOL_HEADER), "|" + "---|" * len(POOL_HEADER)]
    for source, modes in section["summary"].items():
        derived = section["derived"][source]
        for mode, by_n in modes.items():
            for n, figures in sorted(by_n.items(), key=lambda item: int(item[0])):
                d = derived[mode][n]
                lines.append(
                    row(
                        [
                            f"{source} ({figures['source_s']:g} s)", mode, n,
                            seconds(figures["first_playable_s"]),
                            seconds(figures["fully_published_s"]),
                            seconds(figures["cpu_s"]), ratio(d["fully_vs_n1"]),
                            ratio(d["speedup"]), ratio(d["efficiency"]),
                            ratio(d["first_playable_share"]),
                        ]
                    )
                )  # fmt: skip
    lines.append("")
    for source, derived in section["derived"].items():
        targets = derived["targets"]
        lines.append(
            f"- {source}: first playable ≤ 25 % of the single pass on one worker: "
            f"{verdict(targets['first_playable_share_le_0.25'])}; chunked on 2 workers ≤ 0.6× "
            f"of 1: {verdict(targets['chunked_n2_vs_n1_le_0.6'])}"
        )
    estimate = section.get("estimate_10min_upload")
    if estimate:
        model = estimate["model"]
        for case, needed in estimate["workers_needed"].items():
            lines.append(
                f"- a 10-minute 1080x1920 upload on 2-CPU workers ({model['cpu_per_media_s']} "
                f"CPU-s per media second, pool efficiency {model['efficiency']} at "
                f"{estimate['from']['largest_pool']} workers, the preview "
                f"{model.get('preview_per_media_s', 0)} s per media second on one CPU, {case} "
                "on its threads): "
                + "; ".join(
                    f"published within {budget}: {count if count is not None else 'no pool'}"
                    for budget, count in needed.items()
                )
                + f" (floor {estimate['floor_s'][case]} s)"
            )
        lines.append(f"- the estimate: {estimate['formula']}")
    lines.append(f"- {machine_line(section)}")
    return "\n".join(lines)


def sweep_table(section: dict[str, Any]) -> str:
    lines = [row(SWEEP_HEADER), "|" + "---|" * len(SWEEP_HEADER)]
    parts = {(r["source"], r["mode"]): r.get("parts", 0) for r in section["runs"]}
    for source, modes in section["summary"].items():
        single = modes.get("single", {})
        chunked = modes.get("chunked", {})
        for n in sorted(set(single) | set(chunked), key=int):
            one = single.get(n, {}).get("fully_published_s")
            split = chunked.get(n, {}).get("fully_published_s")
            share = split / one if one and split else None
            figures = single.get(n) or chunked[n]
            label = f"{source} ({figures['source_s']:g} s), {n} workers"
            lines.append(
                row([label, seconds(one), seconds(split), ratio(share),
                     str(parts.get((source, "chunked"), "–"))])
            )  # fmt: skip
    lines.append("")
    lines.append(f"- {machine_line(section)}")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    out = []
    if "pool" in results:
        out.append(pool_table(results["pool"]))
    if "sweep" in results:
        out.append(sweep_table(results["sweep"]))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
