"""Run one command and measure it from outside: wall time, CPU time and peak memory.

Peak memory is that of the whole process tree: `reelforge` does its work in a child process
(engine.sandbox), so the RSS of every descendant is summed, sampled from /proc (no psutil).
The kernel's own figure for the largest single process (`ru_maxrss` from wait4, what
`/usr/bin/time -v` prints as "Maximum resident set size") is kept too; the tree peak is never
reported below it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Measurement:
    wall_s: float
    cpu_s: float  # user + system of the process and every descendant it waited for
    peak_rss_bytes: int  # max over samples of the summed RSS of the process tree
    max_single_rss_bytes: int  # ru_maxrss: the largest single process of the tree
    returncode: int
    # CPU seconds the rest of the machine used meanwhile: other people's jobs on a shared
    # machine. A figure taken while this is high is not worth much.
    others_cpu_s: float

    def to_json(self) -> dict[str, float | int]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "others_cpu_s": round(self.others_cpu_s, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "max_single_rss_bytes": self.max_single_rss_bytes,
            "returncode": self.returncode,
        }


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])


def descendants(root: int) -> set[int]:
    """`root` and every live process below it, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    tree, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat, all CPUs)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def wait_for_quiet(max_cpus: float, max_wait_s: float, window_s: float = 2.0) -> float:
    """Wait until the rest of the machine uses at most `max_cpus` CPUs over a `window_s`
    window, or `max_wait_s` has passed; return the last share seen (in CPUs).

    Called between runs, when nothing of ours is running: what is busy is someone else.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()
        time.sleep(window_s)
        share = (machine_busy_seconds() - before) / window_s
        if share <= max_cpus or time.monotonic() >= deadline:
            return share


def rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE


def run_measured(
    command: Sequence[str],
    stdout: Path | None = None,
    stderr: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measurement:
    """Run `command` to the end; its output goes to the given files (else is discarded)."""
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL  # noqa: SIM115
    try:
        busy_before = machine_busy_seconds()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd
        )
        sampler = TreeSampler(process.pid)
        sampler.start()
        # wait4 in this thread, the sampling in another: the wall time is exact to the exit.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        busy = machine_busy_seconds() - busy_before
        sampler.stop()
    finally:
        for handle in (out, err):
            if not isinstance(handle, int):
                handle.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    max_single = usage.ru_maxrss * 1024  # Linux reports kilobytes
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(
        wall_s=wall,
        cpu_s=cpu,
        others_cpu_s=max(0.0, busy - cpu),
        peak_rss_bytes=max(sampler.peak, max_single),
        max_single_rss_bytes=max_single,
        returncode=process.returncode,
    )


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every SAMPLE_SECONDS until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(name=f"rss-{root}", daemon=True)
        self.root = root
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total = sum(rss_bytes(pid) for pid in descendants(self.root))
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
