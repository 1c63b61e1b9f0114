"""The cost of a change: the same job from two checkouts, run in turn, as ratios.

    .venv/bin/python bench/side_by_side.py OLD_TREE NEW_TREE SOURCE [--rounds 5] [--probe]

Runs `python -m cli transcode SOURCE OUT` (or, with `--probe`, the engine's `probe` alone,
50 times a run) with each checkout first on PYTHONPATH, alternating which goes first every
round, and prints the median wall and CPU seconds of each and their ratio new/old. On a
shared machine the CPU ratio is the steadier of the two.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE_LOOP = "import sys; from engine.source import probe\nfor _ in range(50): probe(sys.argv[1])\n"


def run_once(tree: Path, source: Path, probe_only: bool) -> tuple[float, float]:
    """(wall s, CPU s of the child and its children) of one job from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory(prefix="side-") as tmp:
        if probe_only:
            cmd = [sys.executable, "-c", PROBE_LOOP, str(source)]
        else:
            cmd = [sys.executable, "-m", "cli", "transcode", str(source), str(Path(tmp) / "o")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probe", action="store_true", help="time the probe alone")
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    run_once(trees["new"], args.source.resolve(), args.probe)  # warm the page cache
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for name in order:
            runs[name].append(run_once(trees[name], args.source.resolve(), args.probe))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    what = "probe x50" if args.probe else "transcode"
    print(f"{what} {args.source.name}, {args.rounds} rounds, medians")
    for name in ("old", "new"):
        print(f"  {name}: wall {wall[name]:.3f} s  CPU {cpu[name]:.3f} s")
    print(f"  new/old: wall {wall['new'] / wall['old']:.3f}  CPU {cpu['new'] / cpu['old']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
